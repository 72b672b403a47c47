"""A contract change reaches the running evaluator without a restart (issue 3, "Done when")."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import httpx
import pytest
from support import ServiceProcess, wait_until

pytestmark = pytest.mark.slow


async def test_a_target_changed_through_the_api_is_used_by_the_evaluator(
    launch: Callable[..., ServiceProcess],
) -> None:
    api, ingest, evaluator = launch("accord-api"), launch("accord-ingest"), launch("accord-evaluator")
    for svc in (api, ingest, evaluator):
        await svc.wait_ready()
    now = time.time()
    async with httpx.AsyncClient(base_url=api.url) as client, httpx.AsyncClient(base_url=ingest.url) as sender:
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
        ids = itertools.count()

        async def send(good: int, total: int) -> bool:
            body = [{"id": f"m-{next(ids)}", "indicator": "checkout.availability", "timestamp": now,
                     "good": good, "total": total}]  # fmt: skip
            r = await sender.post("/v1/measurements", json=body)
            assert r.status_code in (202, 422), r.text
            return r.status_code == 202

        async def status() -> dict:
            return (await client.get(f"/v1/objectives/{objective_id}/status")).json()

        await wait_until(lambda: send(995, 1000), timeout=15, what="ingest to know the indicator")
        first = await wait_until(lambda: _when(status(), lambda s: s["total"] == 1000), what="the first count")
        assert first["budget"]["consumed"] == pytest.approx(0.5)  # 5 bad of (1 - 0.99) × 1000 allowed

        r = await client.patch(
            f"/v1/agreements/{agreement_id}/objectives/{objective_id}",
            json={"target": 0.98, "author": "jane", "reason": "renegotiated"},
            headers={"If-Match": '"1"'},
        )
        assert r.status_code == 200, r.text

        # The evaluator reloads on the NOTIFY and evaluates at the indicator's next measurement.
        assert await send(1000, 1000)

        async def evaluated_with_new_target() -> dict | None:
            s = await status()
            if s["total"] == 2000 and s["budget"]["consumed"] == pytest.approx(5 / (0.02 * 2000)):
                return s
            await send(0, 0)  # another evaluation, in case the reload came after the measurement
            return None

        final = await wait_until(evaluated_with_new_target, timeout=20, what="an evaluation under the new target")
        assert final["target"] == 0.98
        assert final["budget"]["remaining"] == pytest.approx(1 - 0.125)
        assert final["burn_rate"] == pytest.approx((5 / 2000) / 0.02)


async def _when(value, predicate):
    got = await value
    return got if predicate(got) else None
