"""`alert_after` across an evaluator restart, on the real embedded PostgreSQL: a tier whose condition has held
for part of its alert_after is checkpointed (its pending start in the stored alert state), a new engine loads
the partition as a restarted evaluator does (services/evaluator/store.py), and the tier fires at the same
event-time instant with the same event id as in an engine that never stopped."""

from __future__ import annotations

from dataclasses import replace

import asyncpg
import httpx
from support import engine_for

from services.evaluator.engine import Engine, EventRow
from services.evaluator.store import load_objectives, load_partition, write_checkpoint
from shared.measurements import Measurement
from shared.timeutil import MINUTE_MS

INDICATOR = "api.availability"
T0 = 1_780_000_000_000 // MINUTE_MS * MINUTE_MS
TIER = {"name": "fast", "long_window": "1h", "short_window": "5m", "factor": 2, "alert_after": "10m"}


def bad(minute: int) -> list[Measurement]:
    return [Measurement(INDICATOR, T0 + minute * MINUTE_MS, 0, 10)]


def feed(engine: Engine, minutes: list[int]) -> list[EventRow]:
    out: list[EventRow] = []
    for minute in minutes:
        engine.apply(0, INDICATOR, bad(minute))
        out.extend(e for e in engine.drain().events if e.type.startswith("accord.burnrate"))
    return out


async def test_a_pending_tier_fires_at_the_same_instant_with_the_same_id_after_a_restart(
    api: httpx.AsyncClient, database_url: str
) -> None:
    r = await api.post("/v1/indicators", json={"key": INDICATOR, "kind": "ratio", "unit": "requests"})
    assert r.status_code == 201, r.text
    objective_in = {"name": "availability", "indicator": INDICATOR, "target": 0.99, "window": "30d",
                    "alert_policy": {"tiers": [TIER]}}  # fmt: skip
    r = await api.post("/v1/agreements", json={"name": "A", "provider": "P", "customer": "C",
                                                "objectives": [objective_in]})  # fmt: skip
    assert r.status_code == 201, r.text
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await _restart(conn)
    finally:
        await conn.close()


async def _restart(conn: asyncpg.Connection) -> None:
    (objective,) = await load_objectives(conn)  # as the evaluator reads it
    assert objective.terms.tiers[0].alert_after_minutes == 10
    before, after = [0, 4], [8, 10, 12]  # the condition holds from minute 0; alert_after is 10 minutes

    steady = engine_for(objective)
    assert feed(steady, before) == []
    expected = feed(steady, after)
    assert [(e.type, e.time_ms) for e in expected] == [("accord.burnrate.firing", T0 + 10 * MINUTE_MS)]

    first = engine_for(objective)
    for minute in before:
        first.apply(0, INDICATOR, bad(minute))
    changes = first.drain()
    assert [e for e in changes.events if e.type.startswith("accord.burnrate")] == []
    assert dict(first.alert_states[objective.id].pending) == {"fast": T0}  # waiting, not firing
    await write_checkpoint(conn, changes, group="g", topic="measurements", offsets={0: len(before)})

    restarted = engine_for(objective)  # a new process: nothing but what Postgres holds
    loaded = await load_partition(conn, restarted, group="g", topic="measurements", partition=0)
    assert (loaded.next_offset, loaded.indicators) == (len(before), 1)
    assert dict(restarted.alert_states[objective.id].pending) == {"fast": T0}
    fired = feed(restarted, after)

    forgetful = engine_for(objective)  # the same restart, had the pending start not been stored
    await load_partition(conn, forgetful, group="g", topic="measurements", partition=0)
    state = forgetful.alert_states[objective.id]
    forgetful.alert_states[objective.id] = replace(state, pending=())
    late = feed(forgetful, after)
    assert [(e.id, e.type, e.seq, e.time_ms) for e in fired] == [(e.id, e.type, e.seq, e.time_ms) for e in expected]
    assert late == []  # it would wait 10 minutes from minute 8 again: the stored state is what keeps the instant
