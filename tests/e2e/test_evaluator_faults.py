"""The evaluator as a real process, under the faults that used to lose accepted measurements.

Records are produced straight to Kafka (bypassing ingest, which refuses bad ids), so a record
can carry what another producer might send. Expected results come from the same records
applied to an in-process Engine: counts and breach event ids depend only on the records and
their order per indicator, never on checkpoints, failures or restarts.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from support import (
    Record,
    Servers,
    ServiceProcess,
    Topics,
    insert_objectives_per_indicator,
    produce,
    wait_offsets,
    wait_until,
)

from services.evaluator.engine import Engine
from services.evaluator.store import load_objectives
from shared.measurements import Measurement, decode_record, encode_record

pytestmark = pytest.mark.slow

INDICATORS = ["shop.availability", "shop.checkout"]
MINUTES = 90
START_MS = (int(time.time()) // 60 - MINUTES - 5) * 60_000
POLICY = {
    "tiers": [{"name": "fast", "severity": "page", "long_window": "30m", "short_window": "5m", "factor": 4}],
    "budget_thresholds": [0.5, 0.9, 1.0],
}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def workload(minutes: range) -> list[Record]:
    """Records of both indicators, with a bad spell that makes alerts fire and resolve."""
    out = []
    for minute in minutes:
        for n, key in enumerate(INDICATORS):
            bad = 30 if 30 <= minute < 45 + 5 * n else 1
            batch = [
                Measurement(key, START_MS + minute * 60_000 + k * 20_000, 100 - bad, 100, id=f"{key}/{minute}/{k}")
                for k in range(3)
            ]
            out.append((key, encode_record(key, batch)))
    return out


async def add_objectives(conn: asyncpg.Connection) -> None:
    await insert_objectives_per_indicator(conn, uuid.uuid4(), INDICATORS, POLICY)


async def reference(conn: asyncpg.Connection, records: list[Record]) -> dict[str, set[Any]]:
    """What an undisturbed evaluator stores for `records`: buckets and breach event ids."""
    engine = Engine(await load_objectives(conn), dedup_horizon_minutes=24 * 60, max_age_minutes=400 * 24 * 60)
    for _, value in records:
        decoded = decode_record(value)
        engine.apply(0, decoded.indicator, decoded.measurements)
    changes = engine.drain(quiet_statuses=None)
    return {
        "buckets": {tuple(b) for b in changes.buckets},
        "hours": {tuple(h) for h in changes.hours},  # one drain: the deltas are the hours' sums
        "events": {e.id for e in changes.events},
    }


async def stored(conn: asyncpg.Connection) -> dict[str, set[Any]]:
    buckets = await conn.fetch("SELECT indicator_key, series, minute, good, total FROM series_buckets")
    hours = await conn.fetch("SELECT indicator_key, series, hour, good, total FROM series_hours")
    events = await conn.fetch("SELECT id FROM breach_events")
    return {
        "buckets": {tuple(r) for r in buckets},
        "hours": {tuple(r) for r in hours},
        "events": {r["id"] for r in events},
    }


async def metric(evaluator: ServiceProcess, name: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{evaluator.url}/metrics", timeout=5)).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def start_evaluator(launch: Callable[..., ServiceProcess], **env: str) -> tuple[ServiceProcess, int]:
    """A ready evaluator and its pid (a restart would change it: `assert_alive` checks it did not)."""
    evaluator = launch("accord-evaluator", **env)
    await evaluator.wait_ready()
    assert evaluator.proc is not None
    return evaluator, evaluator.proc.pid


def assert_alive(evaluator: ServiceProcess, pid: int) -> None:
    assert evaluator.proc is not None
    assert evaluator.proc.poll() is None, f"the evaluator exited ({evaluator.proc.returncode}); log {evaluator.log}"
    assert evaluator.proc.pid == pid


async def test_bad_ids_are_dead_lettered_and_everything_else_in_their_record_counts(
    launch: Callable[..., ServiceProcess], servers: Servers, topics: Topics, database_url: str
) -> None:
    evaluator, pid = await start_evaluator(launch)
    a, b = "api.availability", "api.latency"
    ts = ms("2026-11-25T11:00:30")
    mixed = {
        "schema": 1,
        "indicator": a,
        "measurements": [
            {"ts": ts, "id": "nul\x00id", "good": 0, "total": 1000},
            {"ts": ts, "id": "x" * 4000, "good": 0, "total": 1000},
            {"ts": ts, "id": "fine-1", "good": 9, "total": 10},
            {"ts": ts + 60_000, "good": 5, "total": 10},
        ],
    }
    records = [
        (a, orjson.dumps(mixed)),
        (b, encode_record(b, [Measurement(b, ts, 7, 8, id="b-1")])),
        (a, b"this is not json"),
        (a, encode_record(a, [Measurement(a, ts + 120_000, 3, 3, id="fine-2")])),
    ]
    offsets: dict[int, int] = {}
    await produce(servers.bootstrap, topics.measurements, records, offsets)
    await wait_offsets(database_url, topics.group, offsets)

    conn = await asyncpg.connect(database_url)
    try:
        buckets = {
            (r[0], r[1]): (r[2], r[3])
            for r in await conn.fetch("SELECT indicator_key, minute, good, total FROM series_buckets")
        }
        letters = await conn.fetch(
            'SELECT topic, partition, "offset", measurement_index, reason, value FROM dead_letters'
            ' ORDER BY "offset", measurement_index'
        )
        seen = {r["measurement_id"] for r in await conn.fetch("SELECT measurement_id FROM seen_measurements")}
    finally:
        await conn.close()
    minute = ts // 60_000
    assert buckets == {(a, minute): (9, 10), (a, minute + 1): (5, 10), (a, minute + 2): (3, 3), (b, minute): (7, 8)}
    assert seen == {"fine-1", "fine-2", "b-1"}
    assert [(r["measurement_index"], r["topic"]) for r in letters] == [
        (0, topics.measurements),
        (1, topics.measurements),
        (None, topics.measurements),
    ]
    assert "control characters" in letters[0]["reason"]
    assert "at most 256" in letters[1]["reason"]
    assert orjson.loads(letters[1]["value"])["id"] == "x" * 4000
    assert letters[2]["value"] == b"this is not json"
    assert letters[0]["offset"] < letters[2]["offset"]
    assert await metric(evaluator, 'accord_evaluator_dead_letters_total{reason="id"}') == 2
    assert await metric(evaluator, 'accord_evaluator_dead_letters_total{reason="malformed"}') == 1
    assert await metric(evaluator, "accord_evaluator_checkpoint_failures_total") == 0
    assert 0 < await metric(evaluator, "accord_evaluator_checkpoint_age_seconds") < 5
    assert_alive(evaluator, pid)


async def test_a_checkpoint_that_fails_once_changes_nothing_and_loses_nothing(
    launch: Callable[..., ServiceProcess], servers: Servers, topics: Topics, database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await add_objectives(conn)
        first, second = workload(range(40)), workload(range(40, MINUTES))
        expected = await reference(conn, first + second)
        assert expected["events"], "the workload must cause breach events, or the check proves little"
        evaluator, pid = await start_evaluator(launch)
        offsets: dict[int, int] = {}
        await produce(servers.bootstrap, topics.measurements, first, offsets)
        await wait_offsets(database_url, topics.group, offsets)
        # The next statement inserting buckets fails, once: a sequence counts outside transactions.
        await conn.execute(
            """
            CREATE SEQUENCE fault_once;
            CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('fault_once') = 1 THEN
                    RAISE EXCEPTION 'injected checkpoint failure';
                END IF;
                RETURN NULL;
            END $$;
            CREATE TRIGGER fail_once BEFORE INSERT ON series_buckets
                FOR EACH STATEMENT EXECUTE FUNCTION fail_once();
            """
        )
        await produce(servers.bootstrap, topics.measurements, second, offsets)
        await wait_offsets(database_url, topics.group, offsets)
        assert await conn.fetchval("SELECT last_value FROM fault_once") >= 2, "the fault never fired"
        outcome = await stored(conn)
    finally:
        await conn.close()
    assert outcome["buckets"] == expected["buckets"]
    assert outcome["events"] == expected["events"]
    assert await metric(evaluator, "accord_evaluator_checkpoint_failures_total") == 1
    assert await metric(evaluator, "accord_evaluator_postgres_up") == 1
    assert_alive(evaluator, pid)
    assert evaluator.log is not None
    assert "injected checkpoint failure" in evaluator.log.read_text()


async def test_postgres_refusing_connections_for_a_while_is_waited_out_exactly_once(
    launch: Callable[..., ServiceProcess], servers: Servers, topics: Topics, database_url: str
) -> None:
    name = database_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(database_url)
    try:
        await add_objectives(conn)
        first, during, after = workload(range(30)), workload(range(30, 60)), workload(range(60, MINUTES))
        expected = await reference(conn, first + during + after)
    finally:
        await conn.close()
    evaluator, pid = await start_evaluator(launch, ACCORD_EVALUATOR_CONFIG_REFRESH_SECONDS="1")
    offsets: dict[int, int] = {}
    await produce(servers.bootstrap, topics.measurements, first, offsets)
    await wait_offsets(database_url, topics.group, offsets)

    codes: list[int] = []

    async def readyz(client: httpx.AsyncClient) -> int:
        code = (await client.get(f"{evaluator.url}/readyz", timeout=10)).status_code
        codes.append(code)
        return code

    admin = await asyncpg.connect(servers.admin_url)
    try:
        async with httpx.AsyncClient() as client:
            await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            outage_started = time.monotonic()
            await produce(servers.bootstrap, topics.measurements, during, offsets)

            async def refused() -> bool:
                return await readyz(client) == 503 and await metric(evaluator, "accord_evaluator_postgres_up") == 0

            await wait_until(refused, timeout=30, what="the evaluator to notice Postgres is gone")
            # The outage lasts a while (several retry periods), records keep arriving, readiness is asked.
            while time.monotonic() - outage_started < 6:
                assert await readyz(client) == 503
                assert_alive(evaluator, pid)
                await asyncio.sleep(0.2)
            assert await metric(evaluator, "accord_evaluator_checkpoint_age_seconds") > 3
            await produce(servers.bootstrap, topics.measurements, after[:20], offsets)
            await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            await produce(servers.bootstrap, topics.measurements, after[20:], offsets)
            await wait_offsets(database_url, topics.group, offsets)

            async def ready() -> bool:
                return await readyz(client) == 200

            await wait_until(ready, timeout=30, what="the evaluator to be ready again")
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
    conn = await asyncpg.connect(database_url)
    try:
        outcome = await stored(conn)
    finally:
        await conn.close()
    assert set(codes) <= {200, 503}, codes
    assert outcome["buckets"] == expected["buckets"]
    assert outcome["events"] == expected["events"]
    assert_alive(evaluator, pid)
    assert await metric(evaluator, "accord_evaluator_postgres_up") == 1
    assert evaluator.log is not None
    log_text = evaluator.log.read_text()
    assert log_text.count("checkpoint failed") + log_text.count("loading partition state failed") <= 3, (
        "failures are logged once per outage, not once per retry"
    )


async def test_an_id_repeated_past_the_dedup_horizon_within_one_checkpoint_is_stored(
    launch: Callable[..., ServiceProcess], servers: Servers, topics: Topics, database_url: str
) -> None:
    key = "api.availability"
    counted, old, new = ms("2026-11-25T11:00:00"), ms("2026-11-23T12:00:30"), ms("2026-11-25T12:00:30")
    records = [
        (key, encode_record(key, [Measurement(key, counted, 10, 10)])),
        (
            key,
            encode_record(
                key,
                [
                    Measurement(key, old, 0, 50, id="x"),
                    Measurement(key, old, 0, 50, id="x"),
                    Measurement(key, new, 10, 10),
                ],
            ),
        ),
    ]
    offsets: dict[int, int] = {}
    await produce(servers.bootstrap, topics.measurements, records[:1], offsets)
    evaluator, pid = await start_evaluator(launch)
    await wait_offsets(database_url, topics.group, offsets)
    await produce(servers.bootstrap, topics.measurements, records[1:], offsets)
    await wait_offsets(database_url, topics.group, offsets)
    conn = await asyncpg.connect(database_url)
    try:
        buckets = {r[0]: (r[1], r[2]) for r in await conn.fetch("SELECT minute, good, total FROM series_buckets")}
        seen = [tuple(r) for r in await conn.fetch("SELECT measurement_id, minute FROM seen_measurements")]
    finally:
        await conn.close()
    assert buckets == {counted // 60_000: (10, 10), old // 60_000: (0, 100), new // 60_000: (10, 10)}
    assert seen == [("x", old // 60_000)]
    assert await metric(evaluator, "accord_evaluator_checkpoint_failures_total") == 0
    assert_alive(evaluator, pid)
