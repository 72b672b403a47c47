"""The whole flow over real processes, HTTP, Kafka and Postgres (foundation issue, point 3)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from support import Servers, ServiceProcess, Topics, post_until_accepted, read_topic, setup_objective, wait_until

pytestmark = pytest.mark.slow


async def test_measurements_flow_to_status_and_an_exhausted_budget_reaches_the_breach_topic(
    launch: Callable[..., ServiceProcess], servers: Servers, topics: Topics
) -> None:
    api, ingest, evaluator = launch("accord-api"), launch("accord-ingest"), launch("accord-evaluator")
    for svc in (api, ingest, evaluator):
        await svc.wait_ready()
    agreement = await setup_objective(api, "checkout.availability")
    objective_id = agreement["objectives"][0]["id"]
    now = time.time()

    await post_until_accepted(
        ingest, [{"id": "m-1", "indicator": "checkout.availability", "timestamp": now, "good": 995, "total": 1000}]
    )
    async with httpx.AsyncClient(base_url=api.url) as client:

        async def status() -> dict[str, Any] | None:
            body = (await client.get(f"/v1/objectives/{objective_id}/status")).json()
            return body if body["total"] == 1000 else None

        first = await wait_until(status, what="the evaluator to count the first measurement")
        assert first["sli"] == pytest.approx(0.995)
        assert first["budget"]["remaining"] == pytest.approx(0.5)
        assert first["burn_rate"] == pytest.approx(0.5)
        assert first["exhausted"] is False

        r = await client.get("/v1/breaches", params={"objective": objective_id, "type": "accord.budget.exhausted"})
        assert r.json()["items"] == []

    async with httpx.AsyncClient(base_url=ingest.url) as client:
        r = await client.post(
            "/v1/measurements",
            json=[
                {"id": "m-2", "indicator": "checkout.availability", "timestamp": now + 1, "good": 900, "total": 1000}
            ],
        )
        assert r.status_code == 202
        assert r.json() == {"accepted": 1}

    events = await read_topic(
        servers.bootstrap,
        topics.breaches,
        until=lambda recs: any(e["type"] == "accord.budget.exhausted" for e in recs),
    )
    exhausted = next(e for e in events if e["type"] == "accord.budget.exhausted")
    assert exhausted["specversion"] == "1.0"
    assert exhausted["subject"] == objective_id
    assert exhausted["data"]["customer"] == "Acme Corp"
    assert exhausted["data"]["good"] == 1895
    assert exhausted["data"]["total"] == 2000
    assert exhausted["data"]["budget_remaining"] < 0
    assert len({e["id"] for e in events}) == len(events)

    async with httpx.AsyncClient(base_url=api.url) as client:
        body = (await client.get(f"/v1/objectives/{objective_id}/status")).json()
        assert body["exhausted"] is True
        assert body["budget"]["remaining"] == pytest.approx(1 - 105 / 20)
        listed = (await client.get("/v1/breaches", params={"objective": objective_id})).json()["items"]
        assert exhausted["id"] in {e["id"] for e in listed}


async def test_a_killed_evaluator_resumes_from_its_stored_offsets_with_the_same_counts(
    launch: Callable[..., ServiceProcess], database_url: str
) -> None:
    api, ingest = launch("accord-api"), launch("accord-ingest")
    await api.wait_ready()
    await ingest.wait_ready()
    indicators = [f"svc{n}.availability" for n in range(4)]
    objectives = {}
    for key in indicators:
        agreement = await setup_objective(api, key, target=0.9)
        objectives[key] = agreement["objectives"][0]["id"]

    # Half the stream is on the topic before the evaluator starts, the other half is posted after it was killed:
    # it is killed mid-stream for sure, however fast it applies (it may or may not have stored all of the first half).
    now = time.time()
    expected = {key: [0, 0] for key in indicators}
    await post_until_accepted(ingest, [{"indicator": k, "timestamp": now, "good": 0, "total": 0} for k in indicators])

    async def post(requests: range) -> None:
        async with httpx.AsyncClient(base_url=ingest.url) as client:
            for request in requests:
                body = []
                for n in range(10):
                    key = indicators[(request + n) % len(indicators)]
                    good, total = (request * 7 + n) % 20, 20
                    expected[key][0] += good
                    expected[key][1] += total
                    body.append(
                        {
                            "id": f"r{request}-{n}",
                            "indicator": key,
                            "timestamp": now - request,
                            "good": good,
                            "total": total,
                        }
                    )
                r = await client.post("/v1/measurements", json=body)
                assert r.status_code == 202, r.text

    await post(range(150))
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:

        async def stored_offsets() -> int:
            return int(await conn.fetchval("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets"))

        evaluator = launch(
            "accord-evaluator", ACCORD_EVALUATOR_MAX_BATCH="5", ACCORD_EVALUATOR_CHECKPOINT_INTERVAL_MS="20"
        )
        await wait_until(lambda: _positive(stored_offsets()), timeout=30, what="a first checkpoint")
        evaluator.kill()
        at_kill = await stored_offsets()
        await post(range(150, 300))
        # One record per indicator for the warm-up request and for each of the 300 requests.
        total_records = 4 + 300 * 4
        assert 0 < at_kill < total_records, "the evaluator was not killed mid-stream"

        restarted = launch("accord-evaluator")

        async def totals() -> dict[str, list[int]] | None:
            rows = await conn.fetch(
                "SELECT o.indicator_key, s.good, s.total"
                " FROM objective_status s JOIN objectives o ON o.id = s.objective_id"
            )
            got = {r["indicator_key"]: [r["good"], r["total"]] for r in rows}
            return got if got == expected else None

        await wait_until(totals, timeout=60, what="the restarted evaluator to finish the stream")
        await restarted.wait_ready()
        log = restarted.log.read_text() if restarted.log else ""
        assert "resuming at offset" in log
        buckets = await conn.fetch(
            "SELECT indicator_key, sum(good) AS g, sum(total) AS t FROM series_buckets GROUP BY 1"
        )
        assert {r["indicator_key"]: [r["g"], r["t"]] for r in buckets} == expected
    finally:
        await conn.close()


async def _positive(value: Awaitable[int]) -> bool:
    return (await value) > 0
