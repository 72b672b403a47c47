"""Ingest as a real process against a broker of its own that the tests pause (SIGSTOP) and kill.

The session broker is shared by every test, so these tests start a dedicated one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from support import Servers, ServiceProcess, Topics, read_topic, wait_until

from accord.localstack import Broker, free_port
from shared.kafka import ensure_topics

pytestmark = pytest.mark.slow

INDICATOR = "checkout.availability"
TIMEOUT = 1.5  # ACCORD_INGEST_PUBLISH_TIMEOUT_SECONDS of these tests
READINESS_BOUND = 3.0  # README: a broker that stops answering makes /readyz 503 within 3 s


@pytest.fixture
async def broker(servers: Servers, topics: Topics, tmp_path: Path) -> AsyncIterator[Broker]:
    if servers.broker is None:
        pytest.skip("KAFKA_BOOTSTRAP_SERVERS names an external broker; pause/kill tests need the local one (tansu)")
    own = Broker(free_port(), tmp_path / "tansu-own.log")
    own.start()
    try:
        await ensure_topics(own.bootstrap, {topics.measurements: 4, topics.breaches: 2})
        yield own
    finally:
        own.stop()


@pytest.fixture
async def ingest(launch: Callable[..., ServiceProcess], broker: Broker, database_url: str) -> ServiceProcess:
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await conn.execute("INSERT INTO indicators (key, kind) VALUES ($1, 'ratio')", INDICATOR)
    finally:
        await conn.close()
    svc = launch(
        "accord-ingest",
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        ACCORD_INGEST_PUBLISH_TIMEOUT_SECONDS=str(TIMEOUT),
    )
    await svc.wait_ready()
    return svc


def body(prefix: str, n: int = 10) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {"id": f"{prefix}-{i}", "indicator": INDICATOR, "timestamp": now - i, "good": i % 3, "total": 3}
        for i in range(n)
    ]


async def post(client: httpx.AsyncClient, measurements: list[dict[str, Any]]) -> tuple[int, float, httpx.Response]:
    started = time.monotonic()
    r = await client.post("/v1/measurements", json=measurements, timeout=30)
    return r.status_code, time.monotonic() - started, r


async def test_a_paused_broker_gets_503_in_bounded_time_and_every_202_is_on_the_topic_and_counted_once(
    launch: Callable[..., ServiceProcess], broker: Broker, ingest: ServiceProcess, topics: Topics, database_url: str
) -> None:
    accepted: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(base_url=ingest.url) as client:
        before = body("before")
        assert (await post(client, before))[0] == 202
        accepted.update({m["id"]: m for m in before})

        broker.pause()
        try:
            during = [body(f"paused{n}") for n in range(20)]
            answers = await asyncio.gather(*(post(client, b) for b in during))
            for status, elapsed, r in answers:
                assert status == 503, r.text
                assert r.headers["retry-after"] == "1"
                assert r.headers["content-type"] == "application/problem+json"
                assert elapsed < TIMEOUT + 2.5, f"a request waited {elapsed:.1f}s for a paused broker"
        finally:
            broker.resume()

        # The senders retry with the same ids; the broker may or may not already hold them.
        for b in during:

            async def retried(b: list[dict[str, Any]] = b) -> bool:
                return (await post(client, b))[0] == 202

            await wait_until(retried, timeout=30, what="a retry to be accepted after the broker resumed")
            accepted.update({m["id"]: m for m in b})

    # Every id answered 202 is on the topic: read_topic fails (times out) otherwise.
    await read_topic(
        broker.bootstrap,
        topics.measurements,
        until=lambda recs: {m["id"] for r in recs for m in r["measurements"]} >= set(accepted),
    )

    # The evaluator counts each id once, duplicates on the topic or not.
    evaluator = launch("accord-evaluator", KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap)
    await evaluator.wait_ready()
    expected = (sum(m["good"] for m in accepted.values()), sum(m["total"] for m in accepted.values()))
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:

        async def counted() -> tuple[int, int] | None:
            row = await conn.fetchrow(
                "SELECT coalesce(sum(good), 0) AS g, coalesce(sum(total), 0) AS t"
                " FROM series_buckets WHERE indicator_key = $1",
                INDICATOR,
            )
            got = (row["g"], row["t"])
            return got if got == expected else None

        await wait_until(counted, timeout=60, what=f"the evaluator to count {expected} once")
    finally:
        await conn.close()


async def test_in_flight_bytes_at_the_limit_answer_503_at_once(
    launch: Callable[..., ServiceProcess], broker: Broker, ingest: ServiceProcess
) -> None:
    small = launch(
        "accord-ingest",
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        ACCORD_INGEST_PUBLISH_TIMEOUT_SECONDS="5",
        ACCORD_INGEST_MAX_IN_FLIGHT_BYTES="20000",
    )
    await small.wait_ready()
    async with httpx.AsyncClient(base_url=small.url) as client:
        broker.pause()
        try:
            first = asyncio.create_task(post(client, body("first", 200)))

            async def first_waits_for_the_broker() -> bool:
                return "accord_ingest_in_flight_bytes 0.0" not in (await client.get("/metrics")).text

            await wait_until(first_waits_for_the_broker, timeout=5, what="the first request's bytes in flight")
            status, elapsed, r = await post(client, body("second", 200))
            assert status == 503
            assert elapsed < 0.5, "a full in-flight budget must be answered at once"
            assert "retry" in r.json()["detail"]
            status, elapsed, _ = await first
            assert status == 503
            assert 4 < elapsed < 6.5
        finally:
            broker.resume()
        metrics = (await client.get("/metrics")).text
        assert "accord_ingest_overloaded_total 1.0" in metrics
        assert 'accord_ingest_measurements_rejected_total{reason="unavailable"} 400.0' in metrics


async def test_a_killed_broker_gets_503_in_bounded_time(broker: Broker, ingest: ServiceProcess) -> None:
    async with httpx.AsyncClient(base_url=ingest.url) as client:
        assert (await post(client, body("alive")))[0] == 202
        broker.stop()
        answers = await asyncio.gather(*(post(client, body(f"dead{n}")) for n in range(5)))
        for status, elapsed, r in answers:
            assert status == 503, r.text
            assert r.headers["retry-after"] == "1"
            assert elapsed < TIMEOUT + 2.5
        assert (await client.get("/healthz")).status_code == 200


async def test_readiness_is_503_within_its_bound_while_the_broker_is_frozen_and_200_after(
    broker: Broker, ingest: ServiceProcess
) -> None:
    async with httpx.AsyncClient(base_url=ingest.url, timeout=10) as client:
        assert (await client.get("/readyz")).status_code == 200
        broker.pause()
        paused = time.monotonic()
        try:

            async def not_ready() -> httpx.Response | None:
                r = await client.get("/readyz")
                return r if r.status_code == 503 else None

            r = await wait_until(not_ready, timeout=10, what="/readyz to notice the frozen broker")
            noticed = time.monotonic() - paused
            assert noticed <= READINESS_BOUND, f"/readyz answered 200 for {noticed:.1f}s with the broker frozen"
            assert r.headers["content-type"] == "application/problem+json"
            assert "broker" in r.json()["dependencies"]
            # It stays 503 (never 200, never 500) while the broker is frozen: 10 s in all.
            while time.monotonic() - paused < 10:
                assert (await client.get("/readyz")).status_code == 503
        finally:
            broker.resume()
        resumed = time.monotonic()

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await wait_until(ready, timeout=15, what="/readyz to be 200 again after the broker resumed")
        back = time.monotonic() - resumed
        print(f"/readyz: 503 {noticed:.2f}s after the broker froze, 200 again {back:.2f}s after it resumed")
        assert (await post(client, body("after-resume")))[0] == 202
