"""Compliance reports on real Postgres (issue 11): every figure against a hand computation.

October 2026 in Europe/Berlin: 31 days and one hour (the clocks go back on Sunday the 25th), from
2026-09-30T22:00Z to 2026-10-31T23:00Z = 44 700 minutes. The evaluator's own engine (tests/support.py
`Live`) writes minute buckets and hour roll-ups, as in production; the api reads them back.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from support import Live, ServiceProcess, register, wait_until

from services.api.reports import close_due
from shared.db import make_engine, make_sessionmaker
from shared.events import event_id
from shared.measurements import Measurement
from shared.timeutil import to_ms

pytestmark = pytest.mark.asyncio

BERLIN = ZoneInfo("Europe/Berlin")
HOUR_MS = 3_600_000


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> int:
    return to_ms(datetime(year, month, day, hour, minute, tzinfo=BERLIN))


# (local time, good, total): what the senders measured, and who counts it.
OCTOBER = [
    (at(2026, 10, 5, 10), 990, 1000),  # Monday, business hours: both objectives
    (at(2026, 10, 7, 10, 30), 0, 500),  # one-off maintenance 10:00-11:00: nobody
    (at(2026, 10, 11, 2, 30), 0, 300),  # Sunday patching 02:00-03:00: nobody
    (at(2026, 10, 14, 20), 900, 1000),  # Wednesday evening: all hours only
    (at(2026, 10, 25, 12), 1000, 1000),  # Sunday of the DST change: all hours only
    (at(2026, 10, 26, 10), 50, 100),  # Monday, a holiday: all hours only
    (at(2026, 10, 28, 16, 59), 2000, 2000),  # Wednesday, last business minute: both
]

AGREEMENT: dict[str, Any] = {
    "name": "Acme checkout SLA",
    "provider": "Shop Platform",
    "customer": "Acme Corp",
    "timezone": "Europe/Berlin",
    "reporting_period": "month",
    "effective_from": "2026-10-01T00:00:00+02:00",
    "business_hours": {
        "weekly": {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": ["2026-10-26"],
    },
    "maintenance": [
        {"reason": "db upgrade", "start": "2026-10-07T10:00:00+02:00", "end": "2026-10-07T11:00:00+02:00"},
        {"reason": "Sunday patching", "rrule": "DTSTART:20261004T020000\nRRULE:FREQ=WEEKLY;BYDAY=SU", "duration": "1h"},
    ],
    "credit_tiers": [{"below": 0.999, "credit_percent": 10}, {"below": 0.99, "credit_percent": 25}],
    "fee": {"amount": "1200.00", "currency": "EUR"},
    "objectives": [
        {"name": "Availability", "indicator": "checkout.availability", "target": 0.99, "window": "month"},
        {
            "name": "Business availability",
            "indicator": "checkout.availability",
            "target": 0.99,
            "window": "month",
            "business_hours_only": True,
        },
    ],
}


async def measure(live: Live, points: list[tuple[int, int, int]], tag: str = "") -> None:
    for n, (ts, good, total) in enumerate(points):
        m = Measurement("checkout.availability", ts, good=good, total=total, id=f"{tag}{n}")
        await live.apply("checkout.availability", [m])


async def backdate(live: Live, agreement_id: str, revision: int, valid_from: str) -> None:
    await live.conn.execute(
        "UPDATE agreement_revisions SET valid_from = $3 WHERE agreement_id = $1 AND revision = $2",
        uuid.UUID(agreement_id),
        revision,
        datetime.fromisoformat(valid_from),
    )


async def october_agreement(api: httpx.AsyncClient, live: Live) -> dict[str, Any]:
    """Revision 1 from September; a review on 15 October raises Availability to 99.5 % and changes the tiers."""
    await register(api)
    r = await api.post("/v1/agreements", json=AGREEMENT)
    assert r.status_code == 201, r.text
    agreement = r.json()
    ids = {o["name"]: o["id"] for o in agreement["objectives"]}
    await backdate(live, agreement["id"], 1, "2026-09-20T00:00:00+00:00")
    review = {
        "credit_tiers": [{"below": 0.995, "credit_percent": 10}, {"below": 0.98, "credit_percent": 30}],
        "objectives": [
            {**AGREEMENT["objectives"][0], "id": ids["Availability"], "target": 0.995},
            {**AGREEMENT["objectives"][1], "id": ids["Business availability"]},
        ],
        "author": "account manager",
        "reason": "quarterly review",
    }
    r = await api.patch(f"/v1/agreements/{agreement['id']}", json=review, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    await backdate(live, agreement["id"], 2, "2026-10-15T10:00:00+00:00")
    await live.reload()
    await measure(live, OCTOBER)
    changed: dict[str, Any] = r.json()
    return changed


def check_october(report: dict[str, Any], ids: dict[str, str]) -> None:
    """The hand computation."""
    assert report["period"]["label"] == "2026-10"
    assert report["period"]["start"] == "2026-09-30T22:00:00Z"
    assert report["period"]["end"] == "2026-10-31T23:00:00Z"
    assert report["period"]["start_local"] == "2026-10-01T00:00:00+02:00"
    assert report["period"]["end_local"] == "2026-11-01T00:00:00+01:00"
    # Judged under the terms in force at the end: revision 2 (target 99.5 %, tiers 99.5 % → 10, 98 % → 30).
    assert report["terms"]["revision"] == 2
    assert [r["revision"] for r in report["terms"]["revisions"]] == [1, 2]
    assert report["terms"]["fee"] == {"amount": "1200.00", "currency": "EUR"}
    objectives = {o["id"]: o for o in report["objectives"]}
    a, b = objectives[ids["Availability"]], objectives[ids["Business availability"]]
    # Availability counts 5 of the 7 measurements (not the two in maintenance):
    # good 990 + 900 + 1000 + 50 + 2000 = 4940 of 1000 + 1000 + 1000 + 100 + 2000 = 5100.
    assert (a["good"], a["total"]) == (4940, 5100)
    assert a["compliance"] == 4940 / 5100  # 96.863 %
    assert a["target"] == 0.995
    assert a["met"] is False
    assert a["budget"]["allowed"] == pytest.approx(0.005 * 5100)  # 25.5
    assert a["budget"]["consumed"] == 160
    assert a["budget"]["remaining"] == pytest.approx(25.5 - 160)
    assert a["credit_percent"] == 30.0  # below 98 %
    # Maintenance: the one-off hour and four Sunday hours (4, 11, 18, 25 October) = 300 minutes.
    assert a["excluded_minutes"] == {"maintenance": 300, "before_effective": 0, "business_hours": 0}
    assert a["worst_day"] == {"date": "2026-10-26", "compliance": 0.5, "good": 50, "total": 100}
    assert len(a["days"]) == 31
    assert {d["date"]: (d["good"], d["total"]) for d in a["days"] if d["total"]} == {
        "2026-10-05": (990, 1000),
        "2026-10-14": (900, 1000),
        "2026-10-25": (1000, 1000),
        "2026-10-26": (50, 100),
        "2026-10-28": (2000, 2000),
    }
    # Business availability counts Monday 5th and Wednesday 28th: 2990 of 3000.
    assert (b["good"], b["total"]) == (2990, 3000)
    assert b["compliance"] == 2990 / 3000
    assert b["target"] == 0.99
    assert b["met"] is True
    assert b["credit_percent"] == 0.0
    # Business hours: 22 weekdays, less the holiday, × 8 h = 10 080 minutes, 60 of them in maintenance;
    # outside them: 44 700 − 300 (maintenance) − 10 020 = 34 380.
    assert b["excluded_minutes"] == {"maintenance": 300, "before_effective": 0, "business_hours": 34_380}
    assert b["worst_day"] == {"date": "2026-10-05", "compliance": 0.99, "good": 990, "total": 1000}
    # The agreement owes the largest objective credit: 30 % of 1200.00 EUR.
    assert report["summary"] == {
        "objectives": 2,
        "met": 1,
        "missed": 1,
        "no_data": 0,
        "credit_percent": 30.0,
        "credit_amount": "360.00",
        "currency": "EUR",
    }


async def test_a_month_with_dst_maintenance_business_hours_a_review_and_a_fee(
    api: httpx.AsyncClient, live: Live, tmp_path: Path
) -> None:
    agreement = await october_agreement(api, live)
    ids = {o["name"]: o["id"] for o in agreement["objectives"]}
    url = f"/v1/agreements/{agreement['id']}/reports/2026-10"
    r = await api.get(url)
    assert r.status_code == 200, r.text
    report = r.json()
    check_october(report, ids)
    assert report["state"] == "closing"  # ended over an hour ago, not frozen yet
    assert report["version"] is None

    # CSV: one row per objective, the same numbers.
    r = await api.get(url, headers={"Accept": "text/csv"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = {row["objective_id"]: row for row in csv.DictReader(io.StringIO(r.text))}
    for o in report["objectives"]:
        row = rows[o["id"]]
        assert float(row["compliance"]) == o["compliance"]
        assert (int(row["good"]), int(row["total"])) == (o["good"], o["total"])
        assert row["met"] == ("true" if o["met"] else "false")
        assert float(row["budget_allowed"]) == o["budget"]["allowed"]
        assert int(row["excluded_business_hours_minutes"]) == o["excluded_minutes"]["business_hours"]
        assert row["worst_day"] == o["worst_day"]["date"]
        assert Decimal(row["agreement_credit_amount"]) == Decimal("360.00")
        assert float(row["page_firing_minutes"]) == o["firing_minutes"]["page"]
        assert float(row["ticket_firing_minutes"]) == o["firing_minutes"]["ticket"]
    # HTML: the same figures, as printed.
    r = await api.get(url, params={"format": "html"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<script" not in page
    assert "96.863 %" in page  # Availability, 4940 / 5100
    assert "99.667 %" in page  # Business availability, 2990 / 3000
    assert "30 % = 360.00 EUR" in page
    assert "4940 / 5100" in page
    assert "34380" in page
    assert page.count("<svg") == 2
    assert "@media print" in page
    render_in_chromium(page, tmp_path)

    # The customer's statement: the same report, and the credit totalled per currency.
    r = await api.get("/v1/customers/Acme Corp/reports/2026-10")
    assert r.status_code == 200, r.text
    statement = r.json()
    assert statement["credit_totals"] == {"EUR": "360.00"}
    (again,) = statement["agreements"]
    assert {**again, "computed_at": None} == {**report, "computed_at": None}  # computed at another instant


def render_in_chromium(page: str, tmp_path: Path) -> None:
    """The HTML report renders in headless Chromium; under CI a missing Chromium fails the test (never skips)."""
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if chromium is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (.ci/run installs it with apt-get)")
        pytest.skip("chromium is not installed (outside CI only)")
    html = tmp_path / "report.html"
    html.write_text(page, encoding="utf-8")
    shot = tmp_path / "report.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={shot}",
         "--window-size=1000,1400", html.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000  # a page with tables and charts, not a blank
    target = os.environ.get("ACCORD_REPORT_SCREENSHOT")
    if target:
        Path(target).write_bytes(data)


async def test_bad_periods_are_problems(api: httpx.AsyncClient, live: Live) -> None:
    agreement = await october_agreement(api, live)
    base = f"/v1/agreements/{agreement['id']}/reports"
    for label in ("garbage", "2026-13", "2026-Q4", "2026-W44", "2099-01", "99999-01", "1969-12", "2026-1"):
        r = await api.get(f"{base}/{label}")
        assert r.status_code == 422, (label, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["field"] == "path.period"
    r = await api.get(f"{base}/2026-08")  # before the agreement existed
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_a_closed_report_is_frozen_and_a_recompute_is_version_2_with_a_revised_event(
    api: httpx.AsyncClient, live: Live
) -> None:
    agreement = await october_agreement(api, live)
    ids = {o["name"]: o["id"] for o in agreement["objectives"]}
    url = f"/v1/agreements/{agreement['id']}/reports/2026-10"
    r = await api.post(f"{url}/recompute", json={"author": "ops", "reason": "close October"})
    assert r.status_code == 201, r.text
    first = r.json()
    assert (first["version"], first["state"]) == (1, "closed")
    check_october(first, ids)
    events = await live.conn.fetch(
        "SELECT id, type, event FROM breach_events WHERE agreement_id = $1 AND type LIKE 'accord.sla.%' ORDER BY type",
        uuid.UUID(agreement["id"]),
    )
    by_type = {e["type"]: e for e in events}
    assert set(by_type) == {"accord.sla.breached", "accord.sla.met"}
    breached = json.loads(by_type["accord.sla.breached"]["event"])
    assert breached["id"] == event_id(ids["Availability"], "accord.sla.breached", "2026-10")
    assert breached["data"]["compliance"] == 4940 / 5100
    assert (breached["data"]["credit_percent"], breached["data"]["credit_amount"]) == (30.0, "360.00")
    met = json.loads(by_type["accord.sla.met"]["event"])
    assert met["id"] == event_id(ids["Business availability"], "accord.sla.met", "2026-10")

    # Terms change later: the frozen report does not.
    r = await api.patch(
        f"/v1/agreements/{agreement['id']}",
        json={"credit_tiers": [{"below": 0.9999, "credit_percent": 50}]},
        headers={"If-Match": '"2"'},
    )
    assert r.status_code == 200, r.text
    assert (await api.get(url)).json() == first

    # Late data, then a recompute: version 2, both readable, and accord.report.revised says what changed.
    await measure(live, [(at(2026, 10, 30, 11), 0, 900)], tag="late")
    r = await api.post(f"{url}/recompute", json={"author": "ops", "reason": "late data from the EU region"})
    assert r.status_code == 201, r.text
    second = r.json()
    assert (second["version"], second["state"]) == (2, "revised")
    assert (await api.get(url)).json() == second
    assert (await api.get(url, params={"version": 1})).json() == first
    a = {o["id"]: o for o in second["objectives"]}[ids["Availability"]]
    assert (a["good"], a["total"]) == (4940, 6000)
    listing = (await api.get(f"/v1/agreements/{agreement['id']}/reports", params={"limit": 3})).json()
    october = next(i for i in listing["items"] if i["period"] == "2026-10")
    assert october["state"] == "revised"
    assert [v["version"] for v in october["versions"]] == [1, 2]
    revised = await live.conn.fetchrow(
        "SELECT id, event FROM breach_events WHERE type = 'accord.report.revised' AND agreement_id = $1",
        uuid.UUID(agreement["id"]),
    )
    data = json.loads(revised["event"])["data"]
    assert (data["version"], data["previous_version"], data["reason"]) == (2, 1, "late data from the EU region")
    changed = {(c["field"], c["objective_id"]): (c["old"], c["new"]) for c in data["changes"]}
    assert changed[("total", ids["Availability"])] == (5100, 6000)
    assert changed[("compliance", ids["Availability"])] == (4940 / 5100, 4940 / 6000)
    # Revision 3 came after October: October is still judged under revision 2, and still owes 30 %.
    assert second["terms"]["revision"] == 2
    assert ("terms.revision", None) not in changed
    assert ("summary.credit_percent", None) not in changed
    # Friday 30 October 11:00 is business time: Business availability counts the late minute too, and misses.
    assert changed[("met", ids["Business availability"])] == (True, False)
    assert changed[("total", ids["Business availability"])] == (3000, 3900)
    assert changed[("summary.missed", None)] == (1, 2)


async def test_a_quiet_indicators_period_closes_once_under_two_closers(
    api: httpx.AsyncClient, live: Live, database_url: str
) -> None:
    """November had one bad minute and then silence: the evaluator never sees the period end, the closer closes it;
    two closers at once close it once (the api's own closer task may be a third)."""
    body = {**AGREEMENT, "effective_from": None, "maintenance": [], "business_hours": None, "customer": "Quiet Ltd"}
    body["objectives"] = [AGREEMENT["objectives"][0]]
    await register(api)
    r = await api.post("/v1/agreements", json=body)
    assert r.status_code == 201, r.text
    agreement = r.json()
    oid = agreement["objectives"][0]["id"]
    await backdate(live, agreement["id"], 1, "2026-10-20T00:00:00+00:00")
    await live.reload()
    await measure(live, [(at(2026, 11, 10, 12), 90, 100)], tag="nov")
    now_ms = to_ms(datetime(2026, 12, 1, 4, 0, tzinfo=UTC))  # November ended at 23:00Z, plus an hour of grace
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)

    async def closer() -> list[Any]:
        async with sessions() as session, session.begin():
            assert isinstance(session, AsyncSession)
            return await close_due(session, HOUR_MS, now_ms)

    try:
        results = await asyncio.gather(closer(), closer())
    finally:
        await engine.dispose()
    closed = [c for found in results for c in found if str(c[0]) == agreement["id"]]
    assert len(closed) <= 1
    rows = await live.conn.fetch(
        "SELECT version FROM period_reports WHERE agreement_id = $1 AND period = '2026-11'",
        uuid.UUID(agreement["id"]),
    )
    assert [r["version"] for r in rows] == [1]
    events = await live.conn.fetch("SELECT id, type FROM breach_events WHERE objective_id = $1", uuid.UUID(oid))
    breached = [e for e in events if e["type"] == "accord.sla.breached"]
    assert [e["id"] for e in breached] == [event_id(oid, "accord.sla.breached", "2026-11")]
    report = (await api.get(f"/v1/agreements/{agreement['id']}/reports/2026-11")).json()
    assert (report["state"], report["objectives"][0]["compliance"], report["summary"]["credit_percent"]) == (
        "closed",
        0.9,
        25.0,
    )


async def test_explain_a_report_figure_and_a_status_figure(api: httpx.AsyncClient, live: Live) -> None:
    agreement = await october_agreement(api, live)
    ids = {o["name"]: o["id"] for o in agreement["objectives"]}
    r = await api.get(f"/v1/objectives/{ids['Availability']}/explain", params={"period": "2026-10"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["terms"]["revision"] == 2
    assert body["terms"]["target"] == 0.995
    assert body["window"]["start"] == "2026-09-30T22:00:00Z"
    assert body["window"]["end_local"] == "2026-11-01T00:00:00+01:00"
    assert body["window"]["minutes"] == 44_700
    assert [(s["labels"], s["good"], s["total"]) for s in body["series"]] == [({}, 4940, 5100)]
    assert body["excluded"] == [
        {"reason": "maintenance", "name": "db upgrade", "minutes": 60, "events": 500, "good": 0, "bad": 500},
        {"reason": "maintenance", "name": "Sunday patching", "minutes": 240, "events": 300, "good": 0, "bad": 300},
        {"reason": "before_effective", "name": "before effective_from", "minutes": 0, "events": 0, "good": 0, "bad": 0},
    ]
    f = body["formulas"]
    assert (f["sli"]["good"], f["sli"]["total"], f["sli"]["value"]) == (4940, 5100, 4940 / 5100)
    assert f["budget_allowed"]["value"] == pytest.approx(25.5)
    assert f["budget_consumed"]["value"] == pytest.approx(160 / 25.5)
    assert body["credit"]["chosen"] == {"below": 0.98, "credit_percent": 30.0}
    assert (body["credit"]["credit_percent"], body["credit"]["amount"]) == (30.0, "360.00")

    business = (
        await api.get(f"/v1/objectives/{ids['Business availability']}/explain", params={"period": "2026-10"})
    ).json()
    outside = next(e for e in business["excluded"] if e["reason"] == "business_hours")
    # Wednesday evening, the DST Sunday and the holiday: 1000 + 1000 + 100 events, 900 + 1000 + 50 good.
    assert (outside["minutes"], outside["events"], outside["good"]) == (34_380, 2100, 1950)
    assert business["credit"]["chosen"] is None

    # At an instant: the window and the burn-rate tiers under the revision in force then.
    r = await api.get(f"/v1/objectives/{ids['Availability']}/explain", params={"at": "2026-10-10T12:00:00Z"})
    assert r.status_code == 200, r.text
    early = r.json()
    assert early["terms"]["revision"] == 1
    assert early["terms"]["target"] == 0.99
    assert early["window"]["end"] == "2026-10-10T12:01:00Z"
    assert (early["formulas"]["sli"]["good"], early["formulas"]["sli"]["total"]) == (990, 1000)
    assert [t["name"] for t in early["tiers"]] == ["1h", "6h", "1d", "3d"]
    assert all(t["long_burn_rate"] is None for t in early["tiers"])  # nothing in the last 3 days
    r = await api.get(f"/v1/objectives/{ids['Availability']}/explain", params={"at": "2099-01-01T00:00:00Z"})
    assert r.status_code == 422


@pytest.mark.slow
async def test_two_api_processes_close_a_quiet_period_once(
    api: httpx.AsyncClient, live: Live, database_url: str, tmp_path: Path
) -> None:
    """Two real api processes start together; each one's closer runs at once, and November closes once."""
    body = {**AGREEMENT, "effective_from": None, "maintenance": [], "business_hours": None, "customer": "Twin Ltd"}
    body["objectives"] = [AGREEMENT["objectives"][0]]
    await register(api)
    r = await api.post("/v1/agreements", json=body)
    assert r.status_code == 201, r.text
    agreement = r.json()
    agreement_id = uuid.UUID(agreement["id"])
    oid = agreement["objectives"][0]["id"]
    await backdate(live, agreement["id"], 1, "2026-10-20T00:00:00+00:00")
    await live.reload()
    await measure(live, [(at(2026, 11, 10, 12), 999, 1000)], tag="twin")
    env = {"DATABASE_URL": database_url}
    processes = [ServiceProcess("accord-api", env, log=tmp_path / f"api{n}.log").start() for n in range(2)]
    try:
        await asyncio.gather(*(p.wait_ready() for p in processes))

        async def frozen() -> bool:
            found = await live.conn.fetchval(
                "SELECT count(*) FROM period_reports WHERE agreement_id = $1 AND period = '2026-11'", agreement_id
            )
            return bool(found)

        await wait_until(frozen, timeout=60, what="November's report frozen")
        # Both closers have had their first round once both answer /readyz: their rounds started at start-up.
        for p in processes:
            async with httpx.AsyncClient(base_url=p.url) as client:
                report = (await client.get(f"/v1/agreements/{agreement_id}/reports/2026-11")).json()
                assert (report["state"], report["version"]) == ("closed", 1)
    finally:
        for p in processes:
            p.stop()
    versions = await live.conn.fetch(
        "SELECT version FROM period_reports WHERE agreement_id = $1 AND period = '2026-11'", agreement_id
    )
    assert [v["version"] for v in versions] == [1]
    events = await live.conn.fetch(
        "SELECT id FROM breach_events WHERE objective_id = $1 AND type = 'accord.sla.met'", uuid.UUID(oid)
    )
    assert [e["id"] for e in events] == [event_id(oid, "accord.sla.met", "2026-11")]
    for n in range(2):
        assert "Traceback" not in (tmp_path / f"api{n}.log").read_text()
