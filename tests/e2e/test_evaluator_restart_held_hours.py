"""A restarted evaluator holding old hours as cells only (a one-hour band) stores what one holding every minute
would: records that move the watermark hours past what it holds pause their partition until the minutes the
one-day window's start edge reaches are fetched, and a late record into an hour held only as a cell adds to the
stored minute. Compared with the same records applied to an in-process engine holding every minute."""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg
import pytest
from support import (
    Record,
    Servers,
    ServiceProcess,
    Topics,
    insert_objectives_per_indicator,
    produce,
    wait_offsets,
)

from services.evaluator.engine import Engine
from services.evaluator.store import load_objectives
from shared.measurements import Measurement, decode_record, encode_record

pytestmark = pytest.mark.slow

KEY = "held.availability"
NOW_MINUTE = int(time.time()) // 60
START_MS = (NOW_MINUTE - 28 * 60) * 60_000  # 28 hours of history before the restart
POLICY = {
    "tiers": [{"name": "fast", "severity": "page", "long_window": "30m", "short_window": "5m", "factor": 4}],
    "budget_thresholds": [0.5, 0.9, 1.0],
}


async def stored(conn: asyncpg.Connection) -> dict[str, set[Any]]:
    buckets = await conn.fetch("SELECT indicator_key, series, minute, good, total FROM series_buckets")
    events = await conn.fetch("SELECT id FROM breach_events")
    return {"buckets": {tuple(r) for r in buckets}, "events": {r["id"] for r in events}}


async def start_evaluator(launch: Any, **env: str) -> ServiceProcess:
    evaluator: ServiceProcess = launch("accord-evaluator", **env)
    await evaluator.wait_ready()
    return evaluator


def record(minute: int, bad: int, mid: str) -> Record:
    return KEY, encode_record(KEY, [Measurement(KEY, START_MS + minute * 60_000 + 7_000, 100 - bad, 100, id=mid)])


async def reference(conn: asyncpg.Connection, records: list[Record]) -> tuple[dict[str, set[Any]], set[Any]]:
    engine = Engine(await load_objectives(conn), dedup_horizon_minutes=24 * 60, max_age_minutes=400 * 24 * 60)
    statuses: dict[str, tuple[int, int]] = {}
    events: set[str] = set()
    buckets: dict[tuple[str, str, int], tuple[Any, ...]] = {}
    for _, value in records:
        decoded = decode_record(value)
        engine.apply(0, decoded.indicator, decoded.measurements)
        changes = engine.drain(quiet_statuses=None)
        events |= {e.id for e in changes.events}
        buckets.update({b[:3]: tuple(b) for b in changes.buckets})
        statuses.update(
            {s.objective_id: (s.evaluation.counts.good, s.evaluation.counts.total) for s in changes.statuses}
        )
    return {"buckets": set(buckets.values()), "events": events}, set(statuses.items())


async def test_a_restart_with_hour_cells_fetches_the_sliding_edge_and_stores_what_every_minute_would(
    launch: Any, servers: Servers, topics: Topics, database_url: str
) -> None:
    env = {"ACCORD_EVALUATOR_MINUTE_BAND_MINUTES": "60", "ACCORD_EVALUATOR_RECENT_MINUTES": "60"}
    before = [record(m, 40 if 200 <= m < 260 else 1, f"a{m}") for m in range(0, 28 * 60, 5)]
    # after the restart: three hours past what is held at once, then late data into an hour held as a cell
    after = [record(28 * 60 + 180, 1, "jump")]
    after += [record(m, 2, f"b{m}") for m in range(28 * 60 + 185, 28 * 60 + 300, 5)]
    after += [record(9 * 60 + 31, 50, "late")]
    after += [record(m, 1, f"c{m}") for m in range(28 * 60 + 300, 28 * 60 + 420, 5)]
    conn = await asyncpg.connect(database_url)
    try:
        await insert_objectives_per_indicator(conn, uuid.uuid4(), [KEY], POLICY, objectives=((0.9, "1d"), (0.97, "6h")))
        expected, expected_statuses = await reference(conn, before + after)
        assert expected["events"], "the workload must cause breach events, or the check proves little"
        evaluator = await start_evaluator(launch, **env)
        offsets: dict[int, int] = {}
        await produce(servers.bootstrap, topics.measurements, before, offsets)
        await wait_offsets(database_url, topics.group, offsets)
        evaluator.kill()
        restarted = await start_evaluator(launch, **env)
        await produce(servers.bootstrap, topics.measurements, after, offsets)
        await wait_offsets(database_url, topics.group, offsets)
        outcome = await stored(conn)
        statuses = {
            (str(r["objective_id"]), (r["good"], r["total"]))
            for r in await conn.fetch("SELECT objective_id, good, total FROM objective_status")
        }
    finally:
        await conn.close()
    assert outcome["buckets"] == expected["buckets"]
    assert outcome["events"] == expected["events"]
    assert statuses == expected_statuses
    assert restarted.log is not None
    log = restarted.log.read_text()
    assert "Traceback" not in log
    held_back = [line for line in log.splitlines() if "held back until" in line]
    assert held_back, "no record waited for minutes: the test did not cross into hours held as cells"
    assert any(" 0 hours" not in line for line in held_back), held_back
