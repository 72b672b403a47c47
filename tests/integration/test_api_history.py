"""History series through the api: recomputed from stored buckets, equal to what the evaluator computed live.

The evaluator's `Engine` runs in-process (see test_api_status.Live); after each record the
engine's evaluation at its watermark is compared with the history point at the same instant.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from support import (
    AVAILABILITY,
    LATENCY,
    MINUTE,
    MONTHLY,
    T0,
    Live,
    availability,
    create_agreement,
    register,
    workload,
)

from shared.budget import Evaluation

pytestmark = pytest.mark.asyncio


STEP = 10  # minutes between the instants compared


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def check_point(point: dict[str, Any], ev: Evaluation) -> None:
    assert datetime.fromisoformat(point["time"]) == datetime.fromtimestamp(ev.now_ms / 1000, UTC)
    assert point["sli"] == ev.sli
    assert (point["good"], point["total"]) == (ev.counts.good, ev.counts.total)
    assert point["budget_consumed"] == ev.budget_consumed
    assert point["budget_remaining"] == ev.budget_remaining
    assert point["burn_rate"] == ev.burn_rate
    assert point["burn_rates"] == {
        r.name: {"long": r.long_burn_rate, "short": r.short_burn_rate, "burning": r.burning} for r in ev.tiers
    }


def on_grid(records: list[tuple[str, list[Any]]], minutes: range) -> list[tuple[str, list[Any]]]:
    """The records of `workload`, with every STEP-th minute's measurements ending exactly on T0 + k·STEP minutes."""
    out = []
    for indicator, batch in records:
        minute = (batch[0].timestamp_ms - T0) // MINUTE
        if minute % STEP == 0 and minute in minutes:
            batch = [m._replace(timestamp_ms=T0 + minute * MINUTE - 1_000 * n) for n, m in enumerate(batch)]
        out.append((indicator, batch))
    return out


async def history(api: httpx.AsyncClient, objective_id: str, **params: Any) -> dict[str, Any]:
    r = await api.get(f"/v1/objectives/{objective_id}/history", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_history_agrees_exactly_with_the_live_evaluator_at_every_instant(
    api: httpx.AsyncClient, live: Live
) -> None:
    await register(api)
    agreement = await create_agreement(api, objectives=[AVAILABILITY, MONTHLY, LATENCY])
    await live.reload()
    minutes = range(0, 121)
    live_points: dict[tuple[str, int], Evaluation] = {}
    for indicator, batch in on_grid(workload(minutes), minutes):
        for objective_id, ev in (await live.apply(indicator, batch)).items():
            live_points[(objective_id, ev.now_ms)] = ev

    for objective in agreement["objectives"]:
        body = await history(
            api, objective["id"], **{"from": iso(T0), "to": iso(T0 + 120 * MINUTE), "step": f"{STEP}m"}
        )
        assert body["from"] == "2030-03-29T12:00:00Z"
        assert body["step_seconds"] == STEP * 60
        points = body["points"]
        assert len(points) == 120 // STEP + 1
        compared = 0
        for k, point in enumerate(points):
            assert point["revision"] == 1
            assert point["target"] == objective["target"]
            at = live_points.get((objective["id"], T0 + k * STEP * MINUTE))
            if at is not None:
                check_point(point, at)
                compared += 1
        assert compared == len(points)  # every instant was one the engine evaluated at


async def test_history_uses_the_terms_of_the_revision_in_force_at_each_instant(
    api: httpx.AsyncClient, live: Live
) -> None:
    await register(api)
    agreement = await create_agreement(api, objectives=[AVAILABILITY])
    objective_id = agreement["objectives"][0]["id"]
    await live.reload()  # the evaluator holds target 0.99
    change = T0 + 60 * MINUTE + 30_000
    minutes = range(0, 121)
    live_points: dict[int, Evaluation] = {}
    changed = False
    for indicator, batch in on_grid(workload(minutes), minutes):
        if not changed and batch[0].timestamp_ms > change:
            # The target changes to 0.9; the evaluator applies it from the next measurement on.
            r = await api.patch(
                f"/v1/agreements/{agreement['id']}/objectives/{objective_id}",
                json={"target": 0.9, "author": "jane", "reason": "renegotiated"},
                headers={"If-Match": '"1"'},
            )
            assert r.status_code == 200, r.text
            await live.reload()
            changed = True
        for ev in (await live.apply(indicator, batch)).values():
            live_points[ev.now_ms] = ev
    # The revisions took effect at chosen instants (event time): the agreement a day before T0, the change at `change`.
    await live.conn.execute(
        "UPDATE agreement_revisions SET valid_from = CASE revision WHEN 1 THEN $2::timestamptz ELSE $3 END "
        "WHERE agreement_id = $1",
        agreement["id"],
        datetime.fromtimestamp((T0 - 1440 * MINUTE) / 1000, UTC),
        datetime.fromtimestamp(change / 1000, UTC),
    )

    body = await history(
        api,
        objective_id,
        **{"from": iso(T0 - (1440 + STEP) * MINUTE), "to": iso(T0 + 120 * MINUTE), "step": f"{STEP}m"},
    )
    points = body["points"]
    before_agreement, *points = points
    assert before_agreement["revision"] is None
    assert before_agreement["sli"] is None
    assert before_agreement["burn_rates"] == {}
    on_time = [p for p in points if datetime.fromisoformat(p["time"]) >= datetime.fromtimestamp(T0 / 1000, UTC)]
    assert len(on_time) == 13
    for point in on_time:
        t = int(datetime.fromisoformat(point["time"]).timestamp() * 1000)
        assert (point["revision"], point["target"]) == ((1, 0.99) if t < change else (2, 0.9))
        check_point(point, live_points[t])
    assert [p["revision"] for p in on_time].count(2) == 6


async def test_history_parameters_are_validated_with_a_422_naming_the_field(api: httpx.AsyncClient) -> None:
    await register(api)
    agreement = await create_agreement(api, objectives=[AVAILABILITY])
    url = f"/v1/objectives/{agreement['objectives'][0]['id']}/history"
    span = {"from": iso(T0), "to": iso(T0 + 3_600_000)}
    for params, field in (
        ({**span, "step": "0"}, "query.step"),
        ({**span, "step": "0m"}, "query.step"),
        ({**span, "step": "-5m"}, "query.step"),
        ({**span, "step": "5 minutes"}, "query.step"),
        ({"from": iso(T0), "to": iso(T0), "step": "1m"}, "query.to"),
        ({"from": iso(T0 + 60_000), "to": iso(T0), "step": "1m"}, "query.to"),
        ({"from": iso(T0), "to": iso(T0 + 10_000 * 60_000), "step": "1m"}, "query.step"),  # 10,001 points
        ({"from": "2030-03-29T12:00:00", "to": iso(T0 + 60_000)}, "query.from"),  # no offset
        ({"from": "yesterday"}, "query.from"),
    ):
        r = await api.get(url, params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert {e["field"] for e in r.json()["errors"]} == {field}, params
    ok = await api.get(url, params={"from": iso(T0), "to": iso(T0 + 9_999 * 60_000), "step": "1m"})
    assert ok.status_code == 200
    assert len(ok.json()["points"]) == 10_000
    missing = await api.get("/v1/objectives/00000000-0000-0000-0000-000000000000/history")
    assert missing.status_code == 404
    # By default the objective's life on a 5-minute grid ending now: it was created moments ago, so one point.
    default = (await api.get(url)).json()
    assert len(default["points"]) == 1
    assert default["from"] == default["to"] == default["points"][0]["time"]
    assert default["points"][0]["revision"] == 1
    assert abs(datetime.fromisoformat(default["to"]).timestamp() - time.time()) < 60
    seconds = (await api.get(url, params={**span, "step": "90"})).json()
    assert seconds["step_seconds"] == 90
    assert len(seconds["points"]) == 41
    # A timeslices objective walks its window's buckets at every point: fewer points per request.
    sliced = await create_agreement(api, name="Latency SLA", objectives=[LATENCY])
    url = f"/v1/objectives/{sliced['objectives'][0]['id']}/history"
    r = await api.get(url, params={"from": iso(T0), "to": iso(T0 + 999 * 60_000), "step": "1m"})
    assert {e["field"] for e in r.json()["errors"]} == {"query.step"}
    assert (await api.get(url, params={"from": iso(T0), "to": iso(T0 + 99 * 60_000), "step": "1m"})).status_code == 200


async def test_a_30_day_history_at_5_minute_steps_over_dense_buckets_is_quick(
    api: httpx.AsyncClient, live: Live
) -> None:
    await register(api)
    agreement = await create_agreement(api, objectives=[AVAILABILITY])
    objective_id = agreement["objectives"][0]["id"]
    await live.conn.execute(
        "UPDATE agreement_revisions SET valid_from = $2 WHERE agreement_id = $1",
        agreement["id"],
        datetime.fromtimestamp((T0 - 90 * 1440 * MINUTE) / 1000, UTC),
    )
    # 60 days of minute buckets (the 30 days shown and the 30-day window before them), written as the evaluator would.
    first = T0 // MINUTE - 60 * 1440
    await live.conn.execute(
        "INSERT INTO series_buckets (indicator_key, series, minute, good, total) "
        "SELECT 'checkout.availability', '{}|', m, 1000 - (m % 7), 1000 FROM generate_series($1::bigint, $2) AS m",
        first,
        T0 // MINUTE,
    )
    await live.reload()
    stored = await live.conn.fetch("SELECT series, minute, good, total FROM series_buckets")
    live.engine.load_indicator("checkout.availability", 0, T0 - 1, [tuple(r) for r in stored], [])
    last = await live.apply("checkout.availability", [availability(0, 1000, 3)])
    started = time.perf_counter()
    body = await history(
        api, objective_id, **{"from": iso(T0 - 30 * 1440 * MINUTE), "to": iso(T0 + 7_000), "step": "5m"}
    )
    elapsed = time.perf_counter() - started
    assert len(body["points"]) == 30 * 288 + 1
    check_point(body["points"][-1], last[objective_id])
    assert all(p["total"] for p in body["points"])
    assert elapsed < 10, elapsed
