"""Exactly-once effects through real Kafka and Postgres (docs/design.md §5.3).

One fixed workload is run three ways: by one evaluator that is never disturbed (the
baseline), by one evaluator killed with SIGKILL at several random points, and by two
evaluators in one consumer group with a rebalance in the middle. All three must end with
the same buckets, the same statuses and the same set of breach event ids, none stored twice.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from support import (
    Servers,
    ServiceProcess,
    Topics,
    create_database,
    insert_objectives_per_indicator,
    produce,
    read_topic,
    stored_offsets,
    wait_until,
)

from shared.kafka import ensure_topics
from shared.measurements import Measurement, encode_record

pytestmark = pytest.mark.slow

INDICATORS = [f"shop{n}.availability" for n in range(6)]
MINUTES = 150
START_MS = (int(time.time()) // 60 - MINUTES - 5) * 60_000
POLICY = {
    "tiers": [
        {"name": "fast", "severity": "page", "long_window": "30m", "short_window": "5m", "factor": 4},
        {"name": "slow", "severity": "ticket", "long_window": "1h", "short_window": "10m", "factor": 1.5},
    ],
    "budget_thresholds": [0.5, 0.9, 1.0],
}


def _workload() -> list[tuple[str, list[Measurement]]]:
    """Records in publish order: each a few measurements of one indicator, with bad spells and repeats."""
    rng = random.Random(20261127)
    records = []
    for minute in range(MINUTES):
        for n, key in enumerate(INDICATORS):
            spell = (minute // 15 + n) % 5 == 0  # one 15-minute bad spell in every 75 minutes
            batch = []
            for k in range(3):
                total = rng.randint(50, 150)
                bad = rng.randint(10, 40) if spell else rng.randint(0, 2)
                ts = START_MS + minute * 60_000 + k * 15_000 - rng.choice((0, 0, 0, 120_000))  # some late
                batch.append(Measurement(key, ts, good=total - bad, total=total, id=f"{key}/{minute}/{k}"))
            if minute % 17 == 0:
                batch.append(batch[0])  # a repeated id counts once
            records.append((key, batch))
    return records


@dataclass
class Run:
    database_url: str
    topics: Topics
    final_offsets: dict[int, int]


async def _prepare(servers: Servers, create_database: Callable[[], Any], publish: bool = True) -> Run:
    """A database with fixed objectives and a topic holding the whole workload."""
    url = await create_database()
    suffix = uuid.uuid4().hex[:10]
    topics = Topics(f"x.measurements.{suffix}", f"x.breaches.{suffix}", f"x-evaluator-{suffix}")
    await ensure_topics(servers.bootstrap, {topics.measurements: 4, topics.breaches: 2})
    conn = await asyncpg.connect(url)
    try:
        await insert_objectives_per_indicator(
            conn, uuid.UUID(int=1), INDICATORS, POLICY, lambda n, m: uuid.UUID(int=100 + 10 * n + m)
        )
    finally:
        await conn.close()
    run = Run(url, topics, {})
    if publish:
        await _publish(servers, run, _workload())
    return run


async def _publish(servers: Servers, run: Run, records: list[tuple[str, list[Measurement]]]) -> None:
    encoded = [(key, encode_record(key, batch)) for key, batch in records]
    await produce(servers.bootstrap, run.topics.measurements, encoded, run.final_offsets)


async def _wait_done(conn: asyncpg.Connection, run: Run) -> None:
    async def done() -> bool:
        return await stored_offsets(conn, run.topics.group) == run.final_offsets

    await wait_until(done, timeout=120, what="the evaluator to reach the end of the workload")


async def _outcome(conn: asyncpg.Connection) -> dict[str, Any]:
    buckets = await conn.fetch("SELECT indicator_key, minute, good, total FROM series_buckets ORDER BY 1, 2")
    # hour roll-ups are added as deltas: one applied twice (or lost) shows here, against the baseline
    hours = await conn.fetch("SELECT indicator_key, series, hour, good, total FROM series_hours ORDER BY 1, 2, 3")
    statuses = await conn.fetch(
        "SELECT objective_id, good, total, sli, budget_consumed, burn_rate, alert_state::text, evaluated_at"
        " FROM objective_status ORDER BY 1"
    )
    events = await conn.fetch("SELECT id, type, objective_id, seq, time FROM breach_events ORDER BY id")
    return {
        "buckets": [tuple(r) for r in buckets],
        "hours": [tuple(r) for r in hours],
        "statuses": [tuple(r) for r in statuses],
        "events": [tuple(r) for r in events],
    }


def _env(run: Run, servers: Servers, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": run.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap,
        "ACCORD_EVALUATOR_SESSION_TIMEOUT_MS": "3000",
        "ACCORD_EVALUATOR_RELAY_INTERVAL_MS": "100",
        **run.topics.env(),
        **extra,
    }


@pytest.fixture(scope="module")
async def baseline(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The workload through one undisturbed evaluator."""
    run = await _prepare(servers, lambda: create_database(servers))
    log = tmp_path_factory.mktemp("baseline") / "evaluator.log"
    evaluator = ServiceProcess("accord-evaluator", _env(run, servers), log=log).start()
    conn = await asyncpg.connect(run.database_url)
    try:
        await _wait_done(conn, run)
        outcome = await _outcome(conn)
        published = await read_topic(
            servers.bootstrap, run.topics.breaches, until=lambda recs: {e["id"] for e in recs} >= _ids(outcome)
        )
    finally:
        evaluator.stop()
        await conn.close()
    assert outcome["events"], "the workload must cause breach events, or the comparison proves little"
    types = {e[1] for e in outcome["events"]}
    assert {"accord.budget.exhausted", "accord.budget.recovered", "accord.burnrate.firing"} <= types, types
    assert {e["id"] for e in published} == _ids(outcome)
    return outcome


def _ids(outcome: dict[str, Any]) -> set[str]:
    return {e[0] for e in outcome["events"]}


async def test_killing_the_evaluator_at_random_points_changes_nothing(
    servers: Servers, baseline: dict[str, Any], tmp_path: Any
) -> None:
    run = await _prepare(servers, lambda: create_database(servers))
    total = sum(run.final_offsets.values())
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    kill_points = sorted(rng.sample(range(total // 10, total * 9 // 10), 3))
    conn = await asyncpg.connect(run.database_url)
    try:
        for n, point in enumerate(kill_points):
            evaluator = ServiceProcess(
                "accord-evaluator",
                _env(run, servers, ACCORD_EVALUATOR_MAX_BATCH="3", ACCORD_EVALUATOR_CHECKPOINT_INTERVAL_MS="5"),
                log=tmp_path / f"evaluator-{n}.log",
            ).start()

            async def reached(point: int = point) -> bool:
                return sum((await stored_offsets(conn, run.topics.group)).values()) >= point

            await wait_until(reached, timeout=60, what=f"offset sum {point} (seed {seed})")
            evaluator.kill()
        last = ServiceProcess("accord-evaluator", _env(run, servers), log=tmp_path / "evaluator-last.log").start()
        try:
            await _wait_done(conn, run)
            outcome = await _outcome(conn)
            published = await read_topic(
                servers.bootstrap, run.topics.breaches, until=lambda recs: {e["id"] for e in recs} >= _ids(outcome)
            )
        finally:
            last.stop()
    finally:
        await conn.close()
    _assert_same(outcome, baseline, f"kill points {kill_points} (seed {seed})")
    # At least once on the topic: a relay killed mid-batch may publish an event twice, never a new id.
    assert {e["id"] for e in published} == _ids(baseline)


async def test_two_evaluators_with_a_rebalance_in_the_middle_agree_with_one(
    servers: Servers, baseline: dict[str, Any], tmp_path: Any
) -> None:
    run = await _prepare(servers, lambda: create_database(servers), publish=False)
    records = _workload()
    half = len(records) // 2
    await _publish(servers, run, records[:half])
    conn = await asyncpg.connect(run.database_url)
    first = ServiceProcess("accord-evaluator", _env(run, servers), log=tmp_path / "first.log").start()
    second = ServiceProcess("accord-evaluator", _env(run, servers), log=tmp_path / "second.log")
    try:
        await _wait_done(conn, run)
        # The second evaluator joins the group: partitions move while half the stream is still to come.
        await second.start().wait_ready()
        await _publish(servers, run, records[half:])
        await _wait_done(conn, run)
        outcome = await _outcome(conn)
    finally:
        second.stop()
        first.stop()
        await conn.close()
    assert second.log is not None
    assert "assigned" in second.log.read_text(), "the second evaluator never took partitions"
    _assert_same(outcome, baseline, f"logs in {tmp_path}")


def _assert_same(outcome: dict[str, Any], baseline: dict[str, Any], context: str) -> None:
    """Equal, part by part, naming what is missing or extra when not."""
    for part in ("buckets", "statuses", "events"):
        missing = set(baseline[part]) - set(outcome[part])
        extra = set(outcome[part]) - set(baseline[part])
        assert (missing, extra) == (set(), set()), f"{part} differ ({context})"
