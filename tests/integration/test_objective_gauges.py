"""Per-objective gauges on the evaluator's /metrics, rendered from the engine's memory (services/evaluator/gauges.py):
the same numbers as the api's status, exported only while the objective's partition is held, and back from the
stored readings when a partition is loaded again."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import AVAILABILITY, LATENCY, Live, create_agreement, register, workload

from services.evaluator.engine import Engine
from services.evaluator.gauges import FAMILIES, ObjectiveGauges
from services.evaluator.store import load_objectives, load_partition

pytestmark = pytest.mark.asyncio

Samples = dict[str, list[tuple[dict[str, str], float]]]


def parse(text: bytes) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text.decode()):
        assert family.type == "gauge", family.name
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


async def test_gauges_match_the_status_and_follow_the_objectives_and_partitions(
    api: httpx.AsyncClient, live: Live
) -> None:
    await register(api)
    gauges = ObjectiveGauges(live.engine)
    assert parse(gauges.render()) == {}  # nothing evaluated yet: every family, no sample
    assert gauges.render().count(b"# TYPE ") == len(FAMILIES)
    acme = await create_agreement(api, objectives=[AVAILABILITY, LATENCY])
    globex = await create_agreement(api, customer="Globex", objectives=[{**AVAILABILITY, "target": 0.5}])
    await live.reload()
    for indicator, batch in workload(range(100)):
        await live.apply(indicator, batch)

    families = parse(gauges.render())
    objective = acme["objectives"][0]["id"]
    status = (await api.get(f"/v1/objectives/{objective}/status")).json()

    def one(name: str, **labels: str) -> float:
        found = [v for lbl, v in families[name] if all(lbl.get(k) == x for k, x in labels.items())]
        assert len(found) == 1, (name, labels, found)
        return found[0]

    sli = [lbl for lbl, _ in families["accord_objective_sli"] if lbl["objective_id"] == objective]
    assert sli == [
        {
            "objective_id": objective,
            "objective": "Availability",
            "agreement_id": acme["id"],
            "agreement": "Acme Corp checkout SLA",
            "customer": "Acme Corp",
            "provider": "Shop Platform",
            "indicator": "checkout.availability",
        }
    ]
    assert one("accord_objective_sli", objective_id=objective) == status["sli"]
    assert one("accord_objective_budget_remaining", objective_id=objective) == status["budget"]["remaining"]
    assert one("accord_objective_target", objective_id=objective) == 0.99
    assert one("accord_objective_window_events", objective_id=objective) == status["total"]
    assert one("accord_objective_window_good_events", objective_id=objective) == status["good"]
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
    assert {lbl["customer"] for lbl, _ in families["accord_objective_sli"]} == {"Acme Corp", "Globex"}

    # A partition loaded again (a restart, or the partition moving here) brings the stored readings back:
    # the same samples before any new record.
    restarted = Engine(await load_objectives(live.conn), dedup_horizon_minutes=1440, max_age_minutes=576_000)
    await load_partition(live.conn, restarted, group="test", topic="test.measurements", partition=0)
    assert parse(ObjectiveGauges(restarted).render()) == families

    # An archived agreement's objectives leave the exposition once the objectives are reloaded.
    r = await api.delete(f"/v1/agreements/{globex['id']}", params={"author": "jane"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    await live.reload()
    families = parse(gauges.render())
    assert {lbl["customer"] for lbl, _ in families["accord_objective_sli"]} == {"Acme Corp"}

    # A revoked partition's objectives leave it at once: its new owner exports them.
    live.engine.forget_partitions({0})
    assert parse(gauges.render()) == {}


async def test_labels_are_escaped(api: httpx.AsyncClient, live: Live) -> None:
    await register(api)
    await create_agreement(api, customer='Quote " and \\ backslash', objectives=[AVAILABILITY])
    await live.reload()
    for indicator, batch in workload(range(3)):
        await live.apply(indicator, batch)
    families = parse(ObjectiveGauges(live.engine).render())
    assert {lbl["customer"] for lbl, _ in families["accord_objective_target"]} == {'Quote " and \\ backslash'}
