"""No request can take the api down (issue 8): every input bounded, every error problem+json.

In-process against a real (fresh, migrated) Postgres per test; the last tests run the api as a
real process, to measure /healthz while a heavy-but-allowed request runs and to send a chunked body.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from support import ServiceProcess, register

from services.api.app import create_app
from services.api.settings import ApiSettings

pytestmark = pytest.mark.asyncio

OBJECTIVE: dict[str, Any] = {"name": "Availability", "indicator": "checkout.availability", "target": 0.999}
HOURLY_2000 = "DTSTART:20000101T000000\nRRULE:FREQ=HOURLY"
MINUTE = 60_000


def body(**overrides: Any) -> dict[str, Any]:
    agreement: dict[str, Any] = {
        "name": "Acme SLA",
        "provider": "Shop Platform",
        "customer": "Acme Corp",
        "timezone": "Europe/Berlin",
        "objectives": [copy.deepcopy(OBJECTIVE)],
    }
    agreement.update(overrides)
    return agreement


def problem(r: httpx.Response, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    document: dict[str, Any] = r.json()
    assert document["status"] == status
    return document


def fields(r: httpx.Response) -> set[str]:
    return {e["field"] for e in problem(r)["errors"]}


async def evaluated_now(database_url: str, *statements: str) -> None:
    """Run `statements`, then give checkout.availability a watermark at the current time, as if the evaluator
    had seen a measurement just now: status evaluates its objectives there."""
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        for statement in statements:
            await conn.execute(statement)
        await conn.execute(
            "INSERT INTO indicator_state (indicator_key, topic, partition, watermark_ms) VALUES ($1, 't', 0, $2)",
            "checkout.availability",
            int(time.time() * 1000),
        )
    finally:
        await conn.close()


async def create(api: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    r = await api.post("/v1/agreements", json=body(**overrides))
    assert r.status_code == 201, r.text
    created: dict[str, Any] = r.json()
    return created


# --- terms that would exhaust the services -------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("DTSTART:20250101T000000\nRRULE:FREQ=MINUTELY", "at most hourly"),
        ("DTSTART:20250101T000000\nRRULE:FREQ=SECONDLY", "at most hourly"),
        ("DTSTART:20250101T000000\nRRULE:FREQ=HOURLY;BYMINUTE=0,30", "BYMINUTE takes one value"),
        ("DTSTART:20250101T000000\nRRULE:FREQ=DAILY;BYHOUR=3;BYMINUTE=0;BYSECOND=0,1", "BYSECOND takes one value"),
        ("DTSTART:20250101T000000\nRRULE:FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30", "never occur"),
        ("DTSTART:20250101T000000\nRRULE:FREQ=MONTHLY;BYDAY=6MO", "never occurs"),
        ("DTSTART:20250101T000000\nRRULE:FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6", "BYSETPOS is not supported"),
        ("DTSTART:20250101T000000\nRRULE:FREQ=DAILY;INTERVAL=99999999999999999999", "INTERVAL must lie in"),
        ("DTSTART:19000101T000000\nRRULE:FREQ=DAILY", "DTSTART must lie in the years 2000"),
        ("DTSTART:20250101T000000\nRRULE:FREQ=DAILY\nRRULE:FREQ=WEEKLY", "one RRULE"),
        ("RRULE:FREQ=DAILY", "needs a DTSTART"),
        ("DTSTART;TZID=localtime:20250101T000000\nRRULE:FREQ=DAILY", "not an IANA timezone"),
        ("DTSTART:20250101T000000\nRRULE:FREQ=DAILY;UNTIL=99991231T235959", "invalid recurrence rule"),
    ],
)
async def test_maintenance_rules_that_recur_too_often_or_never_are_refused(
    api: httpx.AsyncClient, rule: str, reason: str
) -> None:
    await register(api)
    r = await api.post("/v1/agreements", json=body(maintenance=[{"rrule": rule, "duration": "1h"}]))
    if reason == "invalid recurrence rule" and r.status_code == 201:
        return  # UNTIL in 9999 is legal: the rule is daily, so bounded
    found = problem(r)["errors"]
    assert [e["field"] for e in found] == ["maintenance.0.rrule"], found
    assert reason in found[0]["reason"], found


async def test_maintenance_is_capped_in_entries_and_in_occurrences(api: httpx.AsyncClient) -> None:
    await register(api)
    one_off = {"start": "2025-03-01T01:00:00Z", "end": "2025-03-01T02:00:00Z"}
    assert "maintenance" in fields(await api.post("/v1/agreements", json=body(maintenance=[one_off] * 101)))
    assert (await api.post("/v1/agreements", json=body(maintenance=[one_off] * 100))).status_code == 201
    hourly = {"rrule": HOURLY_2000, "duration": "5m"}  # 9,600 occurrences in 400 days: allowed alone
    assert (await api.post("/v1/agreements", json=body(maintenance=[hourly]))).status_code == 201
    second = {"rrule": "DTSTART:20000101T003000\nRRULE:FREQ=HOURLY", "duration": "5m"}
    r = await api.post("/v1/agreements", json=body(maintenance=[hourly, second]))
    assert fields(r) == {"maintenance.1.rrule"}
    assert "more than 10000 times in 400 days" in r.json()["errors"][0]["reason"]


@pytest.mark.parametrize(
    "window", ["99999999999999999999d", "1000000d", "100000d", "401d", "576001m", "３0d", "0m", "30 d", "-5d"]
)
async def test_absurd_windows_are_refused_before_any_overflow(api: httpx.AsyncClient, window: str) -> None:
    await register(api)
    r = await api.post("/v1/agreements", json=body(objectives=[{**OBJECTIVE, "window": window}]))
    assert fields(r) == {"objectives.0.window"}


async def test_the_longest_window_is_400_days(api: httpx.AsyncClient) -> None:
    await register(api)
    created = await create(api, objectives=[{**OBJECTIVE, "window": "400d"}])
    tiers = created["objectives"][0]["effective_tiers"]
    assert tiers[3]["factor"] == 0.1 * 400 / 3  # exact ratio, not rounded


@pytest.mark.parametrize(
    ("objective", "field"),
    [
        ({"alert_policy": {"tiers": [{"long_window": "1000000d", "short_window": "5m", "factor": 2}]}},
         "objectives.0.alert_policy.tiers.0.long_window"),
        ({"alert_policy": {"tiers": [{"long_window": "1h", "short_window": "5m", "factor": 1e300}]}},
         "objectives.0.alert_policy.tiers.0.factor"),
        ({"alert_policy": {"min_events": 10**30}}, "objectives.0.alert_policy.min_events"),
        ({"alert_policy": {"min_events": -1}}, "objectives.0.alert_policy.min_events"),
        ({"alert_policy": {"budget_thresholds": [0.5] * 21}}, "objectives.0.alert_policy.budget_thresholds"),
        ({"target": 1e308}, "objectives.0.target"),
        ({"target": -1}, "objectives.0.target"),
        ({"budgeting": "timeslices", "slice_length": "99999999999m", "slice_target": 0.9}, "objectives.0.slice_length"),
    ],
)  # fmt: skip
async def test_huge_and_negative_numbers_are_refused(
    api: httpx.AsyncClient, objective: dict[str, Any], field: str
) -> None:
    await register(api)
    r = await api.post("/v1/agreements", json=body(objectives=[{**OBJECTIVE, **objective}]))
    assert field in fields(r)


async def test_business_hours_and_maintenance_durations_are_bounded(api: httpx.AsyncClient) -> None:
    await register(api)
    many = {"mon": [f"{h:02d}:00-{h:02d}:30" for h in range(9)]}
    assert "business_hours.weekly.mon" in fields(await api.post("/v1/agreements", json=body(
        business_hours={"weekly": many})))  # fmt: skip
    days = [f"{2000 + n // 365}-01-01" for n in range(1001)]
    r = await api.post("/v1/agreements", json=body(business_hours={"weekly": {"mon": "09:00-17:00"}, "holidays": days}))
    assert "business_hours.holidays" in fields(r)
    r = await api.post("/v1/agreements", json=body(business_hours={"weekly": {"mon": "０9:00-17:00"}}))
    assert "business_hours.weekly.mon.0" in fields(r)
    r = await api.post("/v1/agreements", json=body(maintenance=[{"rrule": HOURLY_2000, "duration": "401d"}]))
    assert "maintenance.0.duration" in fields(r)


async def test_a_61_point_history_of_a_400_day_business_hours_objective_is_quick(
    api: httpx.AsyncClient, database_url: str
) -> None:
    """The tester's 100000-day business-hours window is refused; the longest allowed one answers 61 points fast."""
    await register(api)
    hours = {"weekly": {d: [f"{h:02d}:00-{h:02d}:30" for h in range(9, 17)] for d in ("mon", "tue", "wed", "thu")}}
    refused = await api.post("/v1/agreements", json=body(business_hours=hours, objectives=[
        {**OBJECTIVE, "window": "100000d", "business_hours_only": True}]))  # fmt: skip
    assert fields(refused) == {"objectives.0.window"}
    created = await create(
        api, business_hours=hours, objectives=[{**OBJECTIVE, "window": "400d", "business_hours_only": True}]
    )
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:  # in force since 2024, so every point below is evaluated
        await conn.execute("UPDATE agreement_revisions SET valid_from = '2024-01-01T00:00:00Z'")
    finally:
        await conn.close()
    url = f"/v1/objectives/{created['objectives'][0]['id']}/history"
    started = time.perf_counter()
    r = await api.get(url, params={"from": "2025-01-01T00:00:00Z", "to": "2025-03-02T00:00:00Z", "step": "1d"})
    elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text
    assert len(r.json()["points"]) == 61
    assert all(p["revision"] == 1 for p in r.json()["points"])
    assert elapsed < 10, elapsed
    # 2,000,000 work units / (30 + 576,000 / 30) per point: at most 104 points of this objective per request.
    over = await api.get(url, params={"from": "2025-01-01T00:00:00Z", "to": "2025-04-16T00:00:00Z", "step": "1d"})
    assert fields(over) == {"query.step"}


# --- text: NUL, control characters, blanks, lengths ----------------------------------------------------------

NUL = "a\x00b"


def _agreement_with(path: str, value: Any) -> dict[str, Any]:
    document = body(
        maintenance=[{"reason": "x", "rrule": "DTSTART:20250105T020000\nRRULE:FREQ=WEEKLY", "duration": "1h"}],
        objectives=[
            {**OBJECTIVE, "alert_policy": {"tiers": [{"long_window": "1h", "short_window": "5m", "factor": 2}]}}
        ],
    )
    node: Any = document
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if last == "<key>":
        node[value] = "v"
    else:
        node[int(last) if isinstance(node, list) else last] = value
    return document


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("name", "name"),
        ("provider", "provider"),
        ("customer", "customer"),
        ("description", "description"),
        ("labels.team", "labels.team"),
        ("labels.<key>", "labels"),
        ("maintenance.0.reason", "maintenance.0.reason"),
        ("maintenance.0.rrule", "maintenance.0.rrule"),
        ("objectives.0.name", "objectives.0.name"),
        ("objectives.0.description", "objectives.0.description"),
        ("objectives.0.matchers.region", "objectives.0.matchers.region"),
        ("objectives.0.alert_policy.tiers.0.name", "objectives.0.alert_policy.tiers.0.name"),
        ("timezone", "timezone"),
        ("author", "author"),
        ("reason", "reason"),
    ],
)
async def test_a_nul_in_any_text_field_is_a_422_naming_it(api: httpx.AsyncClient, path: str, field: str) -> None:
    await register(api)
    r = await api.post("/v1/agreements", json=_agreement_with(path, NUL))
    found = fields(r)
    assert any(f == field or f.startswith(field + ".") for f in found), found


async def test_nul_in_indicator_and_review_fields_is_a_422(api: httpx.AsyncClient) -> None:
    assert fields(await api.post("/v1/indicators", json={"key": "k", "kind": "ratio", "unit": NUL})) == {"unit"}
    assert fields(await api.post("/v1/indicators", json={"key": "k", "kind": "ratio", "description": NUL})) == {
        "description"
    }
    await register(api)
    assert fields(await api.patch("/v1/indicators/checkout.latency", json={"unit": NUL})) == {"unit"}
    created = await create(api)
    url = f"/v1/agreements/{created['id']}/reviews"
    for review, field in (
        ({"author": NUL}, "author"),
        ({"author": "jane", "notes": NUL}, "notes"),
        ({"author": "jane", "participants": ["ok", NUL]}, "participants.1"),
        ({"author": "jane", "decisions": [NUL]}, "decisions.0"),
        ({"author": "jane", "changes": {"description": NUL}}, "changes.description"),
    ):
        assert fields(await api.post(url, json=review, headers={"If-Match": '"1"'})) == {field}, review


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/v1/agreements", {"customer": NUL}),
        ("/v1/agreements", {"provider": NUL}),
        ("/v1/agreements", {"indicator": NUL}),
        ("/v1/agreements", {"label": f"team={NUL}"}),
        ("/v1/agreements", {"cursor": NUL}),
        ("/v1/objectives", {"customer": NUL}),
        ("/v1/objectives", {"provider": NUL}),
        ("/v1/objectives", {"indicator": NUL}),
        ("/v1/objectives", {"label": NUL}),
        ("/v1/indicators", {"cursor": NUL}),
        ("/v1/breaches", {"customer": NUL}),
        ("/v1/breaches", {"type": NUL}),
        ("/v1/breaches", {"cursor": NUL}),
        ("/v1/customers/a%00b/status", {}),
        ("/v1/indicators/a%00b", {}),
    ],
)
async def test_a_nul_in_any_query_parameter_is_a_422(api: httpx.AsyncClient, url: str, params: dict[str, str]) -> None:
    problem(await api.get(url, params=params))


async def test_a_nul_in_change_query_parameters_and_openslo_parameters_is_a_422(api: httpx.AsyncClient) -> None:
    await register(api)
    created = await create(api)
    url = f"/v1/agreements/{created['id']}"
    problem(await api.delete(url, params={"author": NUL}, headers={"If-Match": '"1"'}))
    problem(await api.delete(url, params={"author": "jane", "reason": NUL}, headers={"If-Match": '"1"'}))
    for name in ("customer", "provider", "name", "author"):
        r = await api.post(
            "/v1/openslo", params={name: NUL}, content=b"kind: SLO", headers={"content-type": "application/yaml"}
        )
        assert f"query.{name}" in fields(r)


async def test_blank_names_host_zones_and_oversized_text_are_refused(api: httpx.AsyncClient) -> None:
    await register(api)
    for name in ("   ", "\t"):
        assert "name" in fields(await api.post("/v1/agreements", json=body(name=name)))
    for zone in ("localtime", "Factory", "posixrules", "/etc/localtime", "../../etc/passwd"):
        assert fields(await api.post("/v1/agreements", json=body(timezone=zone))) == {"timezone"}, zone
    assert fields(await api.post("/v1/agreements", json=body(description="x" * 10_001))) == {"description"}
    assert (await api.post("/v1/agreements", json=body(description="line\n\ttab\r\n" * 500))).status_code == 201
    assert fields(await api.post("/v1/agreements", json=body(name="x\ny"))) == {"name"}  # one line
    labels = {f"l{n}": "v" for n in range(65)}
    assert fields(await api.post("/v1/agreements", json=body(labels=labels))) == {"labels"}
    assert fields(await api.post("/v1/agreements", json=body(labels={"team": "v" * 257}))) == {"labels.team"}
    long_name = fields(await api.post("/v1/agreements", json=body(labels={"x" * 129: "v"})))
    assert all(f.startswith("labels.") for f in long_name), long_name
    matchers = {f"m{n}": "v" for n in range(33)}
    r = await api.post("/v1/agreements", json=body(objectives=[{**OBJECTIVE, "matchers": matchers}]))
    assert fields(r) == {"objectives.0.matchers"}
    assert fields(await api.post("/v1/agreements", json=body(objectives=[OBJECTIVE] * 101))) == {"objectives"}
    surrogate = b'{"name": "\\ud800", "provider": "p", "customer": "c"}'  # a lone surrogate, escaped in JSON
    r = await api.post("/v1/agreements", content=surrogate, headers={"content-type": "application/json"})
    assert fields(r) == {"name"}


# --- query parameters ------------------------------------------------------------------------------------


async def test_revisions_and_instants_out_of_range_are_422(api: httpx.AsyncClient) -> None:
    await register(api)
    created = await create(api)
    url = f"/v1/agreements/{created['id']}"
    for params, field in (
        ({"revision": "2147483648"}, "query.revision"),
        ({"revision": "-1"}, "query.revision"),
        ({"revision": str(10**30)}, "query.revision"),
        ({"at": "0001-01-01T00:00:00+14:00"}, "query.at"),
        ({"at": "1969-12-31T23:59:59Z"}, "query.at"),
        ({"at": "100000000001"}, "query.at"),  # milliseconds: refused, not guessed
        ({"at": "1e400"}, "query.at"),
        ({"at": "-1"}, "query.at"),
        ({"at": "2025-01-01T00:00:00"}, "query.at"),  # no offset
    ):
        assert fields(await api.get(url, params=params)) == {field}, params
    r = await api.get(url, params={"at": "100000000001"})
    assert "epoch seconds expected" in r.json()["errors"][0]["reason"]
    assert fields(await api.get(f"{url}/revisions/2147483648")) == {"path.revision"}
    assert fields(await api.get(f"{url}/openslo", params={"revision": "2147483648"})) == {"query.revision"}
    assert fields(await api.get("/v1/agreements", params={"limit": str(10**20)})) == {"query.limit"}
    assert fields(await api.get("/v1/breaches", params={"since": "99999999999999"})) == {"query.since"}
    # Epoch seconds up to 1e11 are seconds (pydantic alone would read 99999999999 as milliseconds, in 1973).
    future = await api.get(url, params={"at": "99999999999"})
    assert future.status_code == 200
    assert future.json()["revision"] == 1
    assert (await api.get(url, params={"at": "1970-01-01T00:00:00Z"})).status_code == 404  # before it existed
    history = f"/v1/objectives/{created['objectives'][0]['id']}/history"
    assert fields(await api.get(history, params={"from": "1700000000000", "to": "1700003600"})) == {"query.from"}
    assert fields(await api.get(history, params={"from": "1700000000", "to": "1700003600", "step": "５m"})) == {
        "query.step"
    }


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("/v1/indicators", ["a\x00b"]),
        ("/v1/indicators", [10**30]),
        ("/v1/agreements", ["0001-01-01T00:00:00+14:00", "00000000-0000-0000-0000-000000000000"]),
        ("/v1/agreements", ["2025-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"]),
        ("/v1/objectives", [1, 2]),
        ("/v1/breaches", ["0001-01-01T00:00:00+14:00", "x"]),
        ("/v1/breaches", ["2025-01-01T00:00:00Z", "a\x00b"]),
        ("/v1/agreements/00000000-0000-0000-0000-000000000000/revisions", [2**31]),
        ("/v1/agreements/00000000-0000-0000-0000-000000000000/reviews", [-1]),
    ],
)
async def test_forged_cursors_are_a_422(api: httpx.AsyncClient, url: str, parts: list[Any]) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()
    assert fields(await api.get(url, params={"cursor": cursor})) == {"cursor"}


async def test_a_customer_with_a_slash_is_found(api: httpx.AsyncClient) -> None:
    await register(api)
    await create(api, customer="Acme/EU")
    r = await api.get("/v1/customers/Acme%2FEU/status")
    assert r.status_code == 200, r.text
    assert r.json()["customer"] == "Acme/EU"
    assert (await api.get("/v1/customers/Acme/EU/status")).json()["customer"] == "Acme/EU"
    problem(await api.get("/v1/customers/Acme%2FUS/status"), 404)


async def test_stored_terms_that_break_the_limits_answer_422_not_500(api: httpx.AsyncClient, database_url: str) -> None:
    """Terms stored before the limits existed (a 10^20-day window) are reported, not crashed on."""
    await register(api)
    created = await create(api)
    await evaluated_now(
        database_url, "UPDATE objectives SET spec = jsonb_set(spec, '{window}', '\"99999999999999999999d\"')"
    )
    r = await api.get(f"/v1/objectives/{created['objectives'][0]['id']}/status")
    assert "invalid window" in problem(r)["errors"][0]["reason"]
    problem(await api.get(f"/v1/agreements/{created['id']}/status"))
    problem(await api.get("/v1/customers/Acme Corp/status"))


# --- bodies --------------------------------------------------------------------------------------------


async def test_bodies_over_the_limit_are_413_chunked_or_not(api: httpx.AsyncClient) -> None:
    big = body(description="x" * 10_000_000)
    problem(await api.post("/v1/agreements", json=big), 413)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(20):
            yield b"x" * 100_000
        yield b'"}'

    problem(await api.post("/v1/agreements", content=chunks(), headers={"content-type": "application/json"}), 413)
    yaml_body = b"a: " + b"x" * 2_000_000
    r = await api.post("/v1/openslo", content=yaml_body, headers={"content-type": "application/yaml"})
    problem(r, 413)


async def test_100k_deep_json_is_a_4xx_problem(api: httpx.AsyncClient) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    r = await api.post("/v1/agreements", content=deep, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    deep_object = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    r = await api.post("/v1/indicators", content=deep_object, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text


@pytest.mark.parametrize(
    ("yaml_text", "reason"),
    [
        ("[" * 50_000 + "]" * 50_000, "nesting deeper than 64"),
        ("- " * 5_000 + "x", "nesting deeper than 64"),
        ("a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\n", "aliases are not supported"),
        ("{{{", "not acceptable YAML"),
        ("apiVersion: openslo/v1\nkind: Service\nmetadata: [1]\nspec: [2]\n", "cannot be represented"),
    ],
)
async def test_hostile_openslo_yaml_is_a_422(api: httpx.AsyncClient, yaml_text: str, reason: str) -> None:
    r = await api.post("/v1/openslo", content=yaml_text.encode(), headers={"content-type": "application/yaml"})
    document = problem(r)
    assert reason in document["detail"] + document["errors"][0]["reason"], document


async def test_an_agreement_s_evaluation_work_is_capped(api: httpx.AsyncClient) -> None:
    await register(api)
    sliced = {**OBJECTIVE, "window": "400d", "budgeting": "timeslices", "slice_length": "1m", "slice_target": 0.9}
    plain = [{**OBJECTIVE, "name": f"plain {n}"} for n in range(98)]
    assert (await api.post("/v1/agreements", json=body(objectives=[sliced, *plain]))).status_code == 201
    two = [sliced, {**sliced, "name": "sliced again"}]
    r = await api.post("/v1/agreements", json=body(objectives=two))
    assert fields(r) == {"objectives.1"}
    assert "1000000 work units" in r.json()["errors"][0]["reason"]


async def test_list_pages_stay_bounded_in_bytes(api: httpx.AsyncClient) -> None:
    """Agreements near the largest a body allows: a page ends at 4 MiB of them, whatever `limit` says."""
    await register(api)
    large = body(
        description="d" * 10_000,
        labels={f"label{n}": "v" * 256 for n in range(64)},
        objectives=[{**OBJECTIVE, "name": f"objective {n}", "description": "o" * 8_000} for n in range(100)],
    )
    for n in range(6):
        r = await api.post("/v1/agreements", json={**large, "name": f"Large {n}"})
        assert r.status_code == 201, r.text[:500]
    first = await api.get("/v1/agreements", params={"customer": "Acme Corp", "limit": 1000})
    assert first.status_code == 200
    assert len(first.content) < 5 * 1024 * 1024
    page = first.json()
    assert 1 <= len(page["items"]) < 6
    assert page["next_cursor"] is not None
    rest = (await api.get("/v1/agreements", params={"customer": "Acme Corp", "cursor": page["next_cursor"]})).json()
    names = [a["name"] for a in page["items"] + rest["items"]]
    assert names == [f"Large {n}" for n in range(6)]


# --- the unexpected ------------------------------------------------------------------------------------


async def test_an_unexpected_error_is_a_500_problem_with_a_logged_correlation_id(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app: FastAPI = create_app(ApiSettings(DATABASE_URL=database_url))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            with caplog.at_level(logging.ERROR, logger="accord.http"):
                r = await client.get("/boom")
    document = problem(r, 500)
    assert "secret internals" not in r.text
    assert "Traceback" not in r.text
    correlation_id = document["correlation_id"]
    assert correlation_id in document["detail"]
    logged = [rec for rec in caplog.records if correlation_id in rec.getMessage()]
    assert logged
    assert logged[0].levelno == logging.ERROR
    assert logged[0].exc_info is not None


# --- a real api process -----------------------------------------------------------------------------------


async def _largest_allowed_history(client: httpx.AsyncClient, database_url: str) -> tuple[str, dict[str, str]]:
    """A timeslices objective with a 400-day window over 400 days of minute buckets, and the longest range of
    points ACCORD_API_MAX_HISTORY_WORK (default) allows at a 1-day step."""
    await register(client)
    r = await client.post(
        "/v1/agreements",
        json=body(
            objectives=[
                {**OBJECTIVE, "window": "400d", "budgeting": "timeslices", "slice_length": "1m", "slice_target": 0.9}
            ]
        ),
    )
    assert r.status_code == 201, r.text
    objective_id = r.json()["objectives"][0]["id"]
    now = int(time.time() // 60)
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await conn.execute(
            "UPDATE agreement_revisions SET valid_from = $1", datetime.fromtimestamp((now - 900 * 1440) * 60, UTC)
        )
        await conn.execute(
            "INSERT INTO series_buckets (indicator_key, series, minute, good, total) "
            "SELECT 'checkout.availability', '{}|', m, 99 + (m % 2), 100 FROM generate_series($1::bigint, $2) AS m",
            now - 407 * 1440,
            now,
        )
    finally:
        await conn.close()
    to = datetime.fromtimestamp(now * 60, UTC)
    # 2,000,000 units / (576,000 + 30) per point: 3 points.
    start = datetime.fromtimestamp((now - 2 * 1440) * 60, UTC)
    return f"/v1/objectives/{objective_id}/history", {"from": start.isoformat(), "to": to.isoformat(), "step": "1d"}


def assert_not_held(latencies: list[float], elapsed: float) -> None:
    """/healthz, asked every 50 ms while a heavy request ran, was never queued behind it: had the heavy work run on
    the event loop, a /healthz asked at its start would have waited about as long as the request itself. Relative to
    the request's own duration, so a loaded machine slows both sides alike (how fast they are is bench/'s job)."""
    assert max(latencies) < elapsed / 3, (elapsed, latencies)


async def _polling_healthz(client: httpx.AsyncClient, request: Any) -> tuple[httpx.Response, float, list[float]]:
    """Run `request` while asking /healthz every 50 ms; its response, its duration and /healthz's latencies."""
    heavy = asyncio.create_task(request)
    started = time.perf_counter()
    latencies = []
    while not heavy.done():
        t = time.perf_counter()
        assert (await client.get("/healthz", timeout=5)).status_code == 200
        latencies.append(time.perf_counter() - t)
        await asyncio.sleep(0.05)
    response = await heavy
    return response, time.perf_counter() - started, latencies


async def test_healthz_is_not_held_behind_the_largest_allowed_history_and_status(
    api_process: ServiceProcess, database_url: str
) -> None:
    async with httpx.AsyncClient(base_url=api_process.url, timeout=120) as client:
        url, params = await _largest_allowed_history(client, database_url)
        more = {**params, "from": datetime.fromtimestamp(
            datetime.fromisoformat(params["from"]).timestamp() - 86_400, UTC).isoformat()}  # fmt: skip
        assert "query.step" in fields(await client.get(url, params=more))  # one point more: over the work limit
        r, elapsed, latencies = await _polling_healthz(client, client.get(url, params=params))
        assert r.status_code == 200, r.text
        assert len(r.json()["points"]) == 3
        assert len(latencies) >= 3, (elapsed, latencies)  # /healthz was asked while the history ran
        assert_not_held(latencies, elapsed)
        print(f"\nlargest allowed history: {elapsed:.2f} s; /healthz max {max(latencies) * 1000:.0f} ms")

        # The heaviest agreement status allowed: a 400-day timeslices objective over dense buckets, 7 more 400-day
        # objectives, and an hourly maintenance rule from 2000 (its occurrences are generated from DTSTART on).
        sliced = {**OBJECTIVE, "window": "400d", "budgeting": "timeslices", "slice_length": "1m", "slice_target": 0.9}
        heavy = body(
            name="Heavy SLA",
            maintenance=[{"rrule": HOURLY_2000, "duration": "5m"}],
            objectives=[sliced, *({**OBJECTIVE, "name": f"plain {n}", "window": "400d"} for n in range(7))],
        )
        created = await client.post("/v1/agreements", json=heavy)
        assert created.status_code == 201, created.text
        await evaluated_now(database_url)
        status_url = f"/v1/agreements/{created.json()['id']}/status"
        r, elapsed, latencies = await _polling_healthz(client, client.get(status_url))
        assert r.status_code == 200, r.text
        assert all(o["total"] > 0 for o in r.json()["objectives"])
        assert_not_held(latencies, elapsed)
        print(f"heaviest allowed agreement status: {elapsed:.2f} s; /healthz max {max(latencies) * 1000:.0f} ms")


async def test_a_chunked_body_over_the_limit_is_413_from_a_real_server(api_process: ServiceProcess) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(11):
            yield b"x" * 100_000

    async with httpx.AsyncClient(base_url=api_process.url, timeout=30) as client:
        r = await client.post("/v1/agreements", content=chunks(), headers={"content-type": "application/json"})
        problem(r, 413)
        assert (await client.get("/healthz")).status_code == 200
