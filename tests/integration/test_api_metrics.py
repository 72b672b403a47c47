"""Per-objective gauges on the api's /metrics, read from the evaluator's stored readings at scrape time."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from support import AVAILABILITY, LATENCY, Live, create_agreement, register, workload

pytestmark = pytest.mark.asyncio


async def scrape(api: httpx.AsyncClient) -> dict[str, list[Sample]]:
    r = await api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


async def test_metrics_expose_labelled_gauges_per_objective_for_grafana(api: httpx.AsyncClient, live: Live) -> None:
    await register(api)
    assert "accord_objective_sli" not in {k for k, v in (await scrape(api)).items() if v}  # nothing evaluated yet
    acme = await create_agreement(api, objectives=[AVAILABILITY, LATENCY])
    globex = await create_agreement(api, customer="Globex", objectives=[{**AVAILABILITY, "target": 0.5}])
    await live.reload()
    for indicator, batch in workload(range(100)):
        await live.apply(indicator, batch)

    families = await scrape(api)
    objective = acme["objectives"][0]["id"]
    status = (await api.get(f"/v1/objectives/{objective}/status")).json()

    def one(name: str, **labels: str) -> float:
        found = [s for s in families[name] if all(s.labels.get(k) == v for k, v in labels.items())]
        assert len(found) == 1, (name, labels, found)
        return found[0].value

    sli = [s for s in families["accord_objective_sli"] if s.labels["objective_id"] == objective]
    assert sli[0].labels == {
        "objective_id": objective,
        "objective": "Availability",
        "agreement_id": acme["id"],
        "agreement": "Acme Corp checkout SLA",
        "customer": "Acme Corp",
        "provider": "Shop Platform",
        "indicator": "checkout.availability",
    }
    assert sli[0].value == status["sli"]
    assert one("accord_objective_budget_remaining", objective_id=objective) == status["budget"]["remaining"]
    assert one("accord_objective_target", objective_id=objective) == 0.99
    assert one("accord_objective_window_events", objective_id=objective) == status["total"]
    assert one("accord_objective_budget_exhausted", objective_id=objective) == 1.0
    for tier in status["tiers"]:
        long = one("accord_objective_burn_rate", objective_id=objective, tier=tier["name"], span="long")
        short = one("accord_objective_burn_rate", objective_id=objective, tier=tier["name"], span="short")
        assert (long, short) == (tier["long_burn_rate"], tier["short_burn_rate"])
        assert one("accord_objective_burn_rate", objective_id=objective, tier=tier["name"], window=tier["short_window"])
        firing = one(
            "accord_objective_alert_firing", objective_id=objective, tier=tier["name"], severity=tier["severity"]
        )
        assert firing == (1.0 if tier["firing"] else 0.0)
    assert one("accord_objective_alert_firing", objective_id=objective, tier="1h") == 1.0
    relaxed = globex["objectives"][0]["id"]
    assert one("accord_objective_alert_firing", objective_id=relaxed, tier="1h", customer="Globex") == 0.0
    assert one("accord_objective_budget_exhausted", objective_id=relaxed) == 0.0
    latency = acme["objectives"][1]["id"]
    assert one("accord_objective_burn_rate", objective_id=latency, tier="fast", window="1h", span="long") >= 0
    assert {s.labels["customer"] for s in families["accord_objective_sli"]} == {"Acme Corp", "Globex"}

    # An archived agreement's objectives leave the exposition at the next scrape.
    r = await api.delete(f"/v1/agreements/{globex['id']}", params={"author": "jane"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    families = await scrape(api)
    assert {s.labels["customer"] for s in families["accord_objective_sli"]} == {"Acme Corp"}
