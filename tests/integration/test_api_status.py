"""Status per objective, agreement and customer, and the breach-event filters, through the api (issue 4.5).

The evaluator's own `Engine` and checkpoint writer (`services.evaluator.store`) put real
readings, buckets and events into a fresh Postgres, in-process and without Kafka; the api
must show exactly what the engine computed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from support import (
    AVAILABILITY,
    MINUTE,
    MONTHLY,
    T0,
    Live,
    availability,
    create_agreement,
    register,
    run,
    workload,
)

from services.api import repository as repo
from shared.budget import AlertState, Evaluation, thresholds_announced
from shared.budget.model import tier_name
from shared.db import make_engine, make_sessionmaker
from shared.series import series_key

pytestmark = pytest.mark.asyncio


def ms_iso(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def check_status(body: dict[str, Any], ev: Evaluation, state: AlertState) -> None:
    """The api's status equals the engine's evaluation exactly, and its announced alert state."""
    assert body["sli"] == ev.sli
    assert (body["good"], body["total"]) == (ev.counts.good, ev.counts.total)
    assert body["events"] == {"good": ev.events.good, "total": ev.events.total}
    budget = body["budget"]
    assert budget["consumed"] == ev.budget_consumed
    assert budget["remaining"] == ev.budget_remaining
    assert budget["allowed_events"] == ev.budget_allowed
    assert budget["consumed_events"] == ev.budget_spent
    assert budget["remaining_events"] == ev.budget_left
    assert budget["time_left_minutes"] == ev.time_left_minutes
    assert body["burn_rate"] == ev.burn_rate
    assert datetime.fromisoformat(body["evaluated_at"]) == ms_iso(ev.now_ms)
    assert datetime.fromisoformat(body["window_start"]) == ms_iso(ev.window_start * MINUTE)
    tiers = {t["name"]: t for t in body["tiers"]}
    assert set(tiers) == {r.name for r in ev.tiers}
    for r in ev.tiers:
        t = tiers[r.name]
        assert (t["long_burn_rate"], t["short_burn_rate"]) == (r.long_burn_rate, r.short_burn_rate)
        assert (t["burning"], t["long_events"], t["long_window"]) == (
            r.burning,
            r.long_total,
            tier_name(r.long_minutes),
        )
        assert t["firing"] == (r.name in state.firing)
    assert body["alerts"] == {
        "firing": sorted(state.firing),
        "exhausted": state.exhausted,
        "thresholds_crossed": thresholds_announced(state),
        "announced_at": body["evaluated_at"],
        "pending": [],  # the numbers and the announced states agree (terms unchanged)
    }
    assert (1.0 in body["alerts"]["thresholds_crossed"]) == state.exhausted
    assert body["exhausted"] == state.exhausted


async def test_objective_status_is_the_evaluators_reading_with_budget_time_left_and_alert_states(
    api: httpx.AsyncClient, live: Live
) -> None:
    await register(api)
    agreement = await create_agreement(api)
    ids = {o["name"]: o["id"] for o in agreement["objectives"]}

    r = await api.get(f"/v1/objectives/{ids['Availability']}/status")
    assert r.status_code == 200, r.text
    empty = r.json()
    assert (empty["sli"], empty["evaluated_at"], empty["good"], empty["total"]) == (None, None, 0, 0)
    assert empty["budget"]["remaining"] == 1.0
    assert [t["name"] for t in empty["tiers"]] == ["1h", "6h", "1d", "3d"]

    await live.reload()
    latest = await run(live, workload(range(100)))
    for name, objective_id in ids.items():
        body = (await api.get(f"/v1/objectives/{objective_id}/status")).json()
        check_status(body, latest[objective_id], live.states[objective_id])
        assert body["name"] == name

    availability_status = (await api.get(f"/v1/objectives/{ids['Availability']}/status")).json()
    assert availability_status["alerts"]["firing"]  # the bad spell fires the page tiers
    assert availability_status["budget"]["unit"] == "events"
    assert availability_status["exhausted"]
    assert (availability_status["budget"]["time_left_minutes"], availability_status["budget"]["exhausts_at"]) == (
        None,
        None,
    )
    # exhausted_at is when it happened: the evaluation instant the exhaustion was announced at
    exhausted_at = datetime.fromisoformat(availability_status["budget"]["exhausted_at"])
    assert exhausted_at <= datetime.fromisoformat(availability_status["evaluated_at"])
    assert availability_status["budget"]["remaining_events"] < 0
    assert availability_status["tiers"][0]["short_window"] == "5m"
    assert datetime.fromisoformat(availability_status["last_measurement_at"]) == ms_iso(T0 + 99 * MINUTE + 7_000)
    latency_status = (await api.get(f"/v1/objectives/{ids['Latency']}/status")).json()
    assert latency_status["budget"]["unit"] == "slices"
    assert latency_status["events"]["total"] > latency_status["total"]  # events vs slices
    # The stored row says the same as the recomputation.
    row = await live.conn.fetchrow(
        "SELECT sli, good, total, budget_consumed FROM objective_status WHERE objective_id = $1", ids["Availability"]
    )
    assert (row["sli"], row["good"], row["total"]) == (
        availability_status["sli"],
        availability_status["good"],
        availability_status["total"],
    )
    assert row["budget_consumed"] == availability_status["budget"]["consumed"]

    agreement_status = (await api.get(f"/v1/agreements/{agreement['id']}/status")).json()
    assert agreement_status["customer"] == "Acme Corp"
    assert agreement_status["revision"] == 1
    assert {o["objective_id"]: o for o in agreement_status["objectives"]}[ids["Availability"]] == availability_status


async def test_an_objective_added_after_the_last_measurement_is_evaluated_at_its_indicators_watermark(
    api: httpx.AsyncClient, live: Live
) -> None:
    await register(api)
    agreement = await create_agreement(api, objectives=[AVAILABILITY])
    await live.reload()
    await run(live, workload(range(30)))
    r = await api.patch(
        f"/v1/agreements/{agreement['id']}",
        json={"objectives": [{**AVAILABILITY, "id": agreement["objectives"][0]["id"]}, {**MONTHLY}]},
        headers={"If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    added = next(o["id"] for o in r.json()["objectives"] if o["name"] == MONTHLY["name"])
    body = (await api.get(f"/v1/objectives/{added}/status")).json()
    assert datetime.fromisoformat(body["evaluated_at"]) == ms_iso(T0 + 29 * MINUTE + 7_000)
    assert body["last_measurement_at"] is None
    assert body["total"] > 0
    await live.reload()  # the evaluator picks it up and computes the same at the next measurement instant
    latest = await live.apply("checkout.availability", [availability(29, 0, 0, 2)])
    check_status((await api.get(f"/v1/objectives/{added}/status")).json(), latest[added], live.states[added])


async def test_after_a_target_change_status_is_the_evaluators_reading_until_it_evaluates_the_new_terms(
    api: httpx.AsyncClient, live: Live
) -> None:
    await register(api)
    agreement = await create_agreement(api, objectives=[AVAILABILITY])
    objective = agreement["objectives"][0]["id"]
    await live.reload()
    latest = await run(live, workload(range(100)))
    r = await api.patch(
        f"/v1/agreements/{agreement['id']}/objectives/{objective}", json={"target": 0.5}, headers={"If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    # The evaluator has not evaluated under revision 2 yet: status is its revision-1 reading, as the row is.
    body = (await api.get(f"/v1/objectives/{objective}/status")).json()
    assert body["target"] == AVAILABILITY["target"]
    check_status(body, latest[objective], live.states[objective])
    row = await live.conn.fetchrow(
        "SELECT budget_consumed, revision FROM objective_status WHERE objective_id = $1", objective
    )
    assert (row["revision"], row["budget_consumed"]) == (1, body["budget"]["consumed"])

    await live.reload()
    latest = await live.apply("checkout.availability", [availability(99, 0, 0, 2)])
    body = (await api.get(f"/v1/objectives/{objective}/status")).json()
    assert body["target"] == 0.5
    check_status(body, latest[objective], live.states[objective])
    row = await live.conn.fetchrow("SELECT revision FROM objective_status WHERE objective_id = $1", objective)
    assert row["revision"] == 2


async def test_customer_status_covers_every_agreement_of_the_customer_that_is_not_archived(
    api: httpx.AsyncClient, live: Live
) -> None:
    await register(api)
    checkout = await create_agreement(api)
    second = await create_agreement(api, name="Acme search SLA", objectives=[{**AVAILABILITY, "target": 0.5}])
    archived = await create_agreement(api, name="Acme old SLA", objectives=[AVAILABILITY])
    other = await create_agreement(api, customer="Globex", objectives=[AVAILABILITY])
    r = await api.delete(f"/v1/agreements/{archived['id']}", params={"author": "jane"}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    await live.reload()
    latest = await run(live, workload(range(100)))

    r = await api.get("/v1/customers/Acme Corp/status")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer"] == "Acme Corp"
    assert [a["agreement_id"] for a in body["agreements"]] == [checkout["id"], second["id"]]  # by name
    assert body["objectives"] == 4
    statuses = {o["objective_id"]: o for a in body["agreements"] for o in a["objectives"]}
    assert other["objectives"][0]["id"] not in statuses
    for objective_id, status in statuses.items():
        check_status(status, latest[objective_id], live.states[objective_id])
    assert body["firing"] == sum(bool(s["alerts"]["firing"]) for s in statuses.values())
    assert body["exhausted"] == sum(s["exhausted"] for s in statuses.values())
    relaxed = statuses[second["objectives"][0]["id"]]  # a 50 % target: burning slowly, budget left
    assert not relaxed["alerts"]["firing"]
    assert not relaxed["exhausted"]
    # Burning slowly: at this rate the budget outlasts the window, so no exhaustion is projected.
    assert relaxed["burn_rate"] > 0
    assert relaxed["budget"]["remaining"] > 0
    assert (relaxed["budget"]["time_left_minutes"], relaxed["budget"]["exhausts_at"]) == (None, None)
    assert relaxed["budget"]["exhausted_at"] is None

    r = await api.get("/v1/customers/Initech/status")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_breach_events_are_filtered_by_agreement_customer_objective_type_and_time_and_paged(
    api: httpx.AsyncClient, live: Live
) -> None:
    await register(api)
    acme = await create_agreement(api, objectives=[AVAILABILITY])
    globex = await create_agreement(api, customer="Globex", objectives=[{**AVAILABILITY, "target": 0.995}])
    await live.reload()
    await run(live, workload(range(100)))
    everything = (await api.get("/v1/breaches", params={"limit": 1000})).json()["items"]
    assert {e["customer"] for e in everything} == {"Acme Corp", "Globex"}
    stored = await live.conn.fetch("SELECT id FROM breach_events")
    assert sorted(e["id"] for e in everything) == sorted(r["id"] for r in stored)
    assert [e["time"] for e in everything] == sorted(e["time"] for e in everything)

    async def ids(**params: Any) -> list[str]:
        r = await api.get("/v1/breaches", params={"limit": 1000, **params})
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()["items"]]

    acme_objective = acme["objectives"][0]["id"]
    assert await ids(agreement=acme["id"]) == [e["id"] for e in everything if e["agreement_id"] == acme["id"]]
    assert await ids(customer="Globex") == [e["id"] for e in everything if e["customer"] == "Globex"]
    assert await ids(objective=acme_objective) == [e["id"] for e in everything if e["objective_id"] == acme_objective]
    firing = [e["id"] for e in everything if e["type"] == "accord.burnrate.firing"]
    assert firing
    assert await ids(type="accord.burnrate.firing") == firing
    assert await ids(type="accord.burnrate.firing", customer="Globex") == [
        e["id"] for e in everything if e["type"] == "accord.burnrate.firing" and e["customer"] == "Globex"
    ]
    middle = everything[len(everything) // 2]["time"]
    assert await ids(since=middle) == [e["id"] for e in everything if e["time"] >= middle]
    assert await ids(until=middle) == [e["id"] for e in everything if e["time"] < middle]
    assert all(e["event"]["data"]["customer"] == e["customer"] for e in everything)
    assert globex["id"] in {e["agreement_id"] for e in everything}

    paged: list[str] = []
    cursor = None
    while True:
        r = await api.get("/v1/breaches", params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        paged += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == [e["id"] for e in everything]
    assert (await api.get("/v1/breaches", params={"cursor": "nope"})).status_code == 422
    assert (await api.get("/v1/breaches", params={"since": "yesterday"})).status_code == 422


async def test_a_status_read_is_one_snapshot_from_its_first_statement(
    api: httpx.AsyncClient, database_url: str
) -> None:
    """The inputs and the roll-up cells of a status read come from one REPEATABLE READ snapshot: a checkpoint
    committed between them (here, a roll-up cell) is not seen, so a stored reading is recomputed from the
    buckets it was computed from."""
    await register(api)
    agreement = await create_agreement(api)
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            await repo.read_snapshot(session)
            agreements, found = await repo.status_inputs(session, agreement_id=uuid.UUID(agreement["id"]))
            assert [a.id for a in agreements] == [uuid.UUID(agreement["id"])]
            indicator = found[0].objective.indicator_key
            other = await asyncpg.connect(database_url)
            try:
                await other.execute(
                    "INSERT INTO series_hours (indicator_key, series, hour, good, total) VALUES ($1, '{}|', 1, 5, 5)",
                    indicator,
                )
            finally:
                await other.close()
            hours, _ = await repo.rolled_up(session, [(indicator, 0, 10)], [])
            assert hours == {}
        async with make_sessionmaker(engine)() as session:  # a later read sees it
            await repo.read_snapshot(session)
            await repo.status_inputs(session, agreement_id=uuid.UUID(agreement["id"]))
            hours, _ = await repo.rolled_up(session, [(indicator, 0, 10)], [])
            assert [list(c) for c in hours[indicator][series_key("{}|")]] == [[1], [5], [5]]
    finally:
        await engine.dispose()
