"""A contract change reaches the running evaluator without a restart (issue 3, "Done when").

The api recomputes some figures under the terms in force when it answers, so its status endpoint
alone cannot tell whether the evaluator reloaded. The test reads what the evaluator itself wrote:
its `objective_status` row, whose budget_consumed depends on the target it evaluated with.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable

import asyncpg
import httpx
import pytest
from support import ServiceProcess, wait_until

pytestmark = pytest.mark.slow


async def test_a_target_changed_through_the_api_is_used_by_the_evaluator(
    launch: Callable[..., ServiceProcess], database_url: str
) -> None:
    api = launch("accord-api")
    await api.wait_ready()
    async with httpx.AsyncClient(base_url=api.url) as client:
        r = await client.post("/v1/indicators", json={"key": "checkout.availability", "kind": "ratio"})
        assert r.status_code == 201, r.text
        r = await client.post(
            "/v1/agreements",
            json={
                "name": "Acme checkout SLA", "provider": "Shop Platform", "customer": "Acme Corp",
                "objectives": [{"name": "availability", "indicator": "checkout.availability", "target": 0.99}],
            },
        )  # fmt: skip
        assert r.status_code == 201, r.text
        agreement_id, objective_id = r.json()["id"], r.json()["objectives"][0]["id"]

    # The evaluator starts after the agreement exists: its first load knows the objective, so the
    # target change below is the one thing that only a reload can bring.
    ingest, evaluator = launch("accord-ingest"), launch("accord-evaluator")
    for svc in (api, ingest, evaluator):
        await svc.wait_ready()
    now = time.time()
    db = await asyncpg.connect(database_url)
    async with httpx.AsyncClient(base_url=api.url) as client, httpx.AsyncClient(base_url=ingest.url) as sender:
        ids = itertools.count()

        async def send(good: int, total: int) -> bool:
            body = [{"id": f"m-{next(ids)}", "indicator": "checkout.availability", "timestamp": now,
                     "good": good, "total": total}]  # fmt: skip
            r = await sender.post("/v1/measurements", json=body)
            assert r.status_code in (202, 422), r.text
            return r.status_code == 202

        async def evaluator_reading(total: int) -> asyncpg.Record | None:
            """The evaluator's own latest reading of the objective, once it has counted `total` events."""
            row = await db.fetchrow(
                "SELECT total, budget_consumed, burn_rate FROM objective_status WHERE objective_id = $1",
                uuid.UUID(objective_id),
            )
            return row if row is not None and row["total"] == total else None

        try:
            await wait_until(lambda: send(995, 1000), timeout=15, what="ingest to know the indicator")
            first = await wait_until(lambda: evaluator_reading(1000), what="the evaluator's first count")
            assert first["budget_consumed"] == pytest.approx(0.5)  # 5 bad of (1 - 0.99) × 1000 allowed

            r = await client.patch(
                f"/v1/agreements/{agreement_id}/objectives/{objective_id}",
                json={"target": 0.98, "author": "jane", "reason": "renegotiated"},
                headers={"If-Match": '"1"'},
            )
            assert r.status_code == 200, r.text

            # The evaluator reloads on the NOTIFY and evaluates at the indicator's next measurement.
            assert await send(1000, 1000)

            async def evaluated_with_new_target() -> asyncpg.Record | None:
                # 5 bad of (1 - 0.98) × 2000 allowed = 0.125; under the old target it would stay 0.25.
                row = await evaluator_reading(2000)
                if row is not None and row["budget_consumed"] == pytest.approx(5 / (0.02 * 2000)):
                    return row
                await send(0, 0)  # another evaluation, in case the reload came after the measurement
                return None

            reading = await wait_until(evaluated_with_new_target, timeout=20, what="an evaluation under the new target")
            assert reading["burn_rate"] == pytest.approx((5 / 2000) / 0.02)
        finally:
            await db.close()

        final = (await client.get(f"/v1/objectives/{objective_id}/status")).json()
        assert final["target"] == 0.98
        assert final["total"] == 2000
        assert final["budget"]["remaining"] == pytest.approx(1 - 0.125)
