"""Reports of an agreement that reports per anchored calendar (OpenSLO `calendar.startTime`): a week from
Saturday 12:00 in Berlin, on real Postgres with the evaluator's own engine (tests/support.py `Live`).

The week from Saturday 24 October 2026 12:00 CEST (10:00Z) to Saturday 31 October 12:00 CET (11:00Z)
holds the night the clocks go back: 7 days and 1 hour. Its label is `2026-10-24T12:00+1w`.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from support import Live, register

from shared.measurements import Measurement
from shared.timeutil import to_ms

pytestmark = pytest.mark.asyncio

BERLIN = ZoneInfo("Europe/Berlin")
WEEK = "1w from 2026-11-28T12:00"


def at(month: int, day: int, hour: int, minute: int = 0) -> int:
    return to_ms(datetime(2026, month, day, hour, minute, tzinfo=BERLIN))


async def test_a_week_from_saturday_noon_is_reported_by_its_label(api: httpx.AsyncClient, live: Live) -> None:
    await register(api)
    agreement = {
        "name": "Weekend-anchored SLA", "provider": "Shop Platform", "customer": "Acme Corp",
        "timezone": "Europe/Berlin", "reporting_period": "1w from 2026-11-28 12:00:00",
        "objectives": [{"name": "Availability", "indicator": "checkout.availability", "target": 0.995,
                        "window": WEEK}],
    }  # fmt: skip
    r = await api.post("/v1/agreements", json=agreement)
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["reporting_period"], created["objectives"][0]["window"]) == (WEEK, WEEK)
    await live.conn.execute("UPDATE agreement_revisions SET valid_from = '2026-10-01T00:00:00Z'")
    await live.reload()
    points = [
        (at(10, 24, 11, 59), 0, 100),  # the week before
        (at(10, 24, 12, 0), 990, 1000),  # its first minute
        (at(10, 31, 11, 59), 1000, 1000),  # its last minute (CET)
        (at(10, 31, 12, 0), 0, 50),  # the week after
    ]
    for n, (ts, good, total) in enumerate(points):
        await live.apply("checkout.availability", [Measurement("checkout.availability", ts, good, total, id=str(n))])

    base = f"/v1/agreements/{created['id']}/reports"
    r = await api.get(f"{base}/2026-10-24T12:00+1w")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["period"]["label"] == "2026-10-24T12:00+1w"
    assert (report["period"]["start"], report["period"]["end"]) == ("2026-10-24T10:00:00Z", "2026-10-31T11:00:00Z")
    assert report["period"]["start_local"] == "2026-10-24T12:00:00+02:00"
    assert report["period"]["end_local"] == "2026-10-31T12:00:00+01:00"
    (objective,) = report["objectives"]
    assert (objective["good"], objective["total"]) == (1990, 2000)
    assert objective["met"] is True  # 99.5 %, exactly the target
    assert report["agreement"]["reporting_period"] == WEEK

    r = await api.get(f"/v1/objectives/{objective['id']}/explain", params={"period": "2026-10-24T12:00+1w"})
    assert r.status_code == 200, r.text

    listed = (await api.get(base, params={"limit": 12})).json()
    assert "2026-10-24T12:00+1w" in [item["period"] for item in listed["items"]]
    assert listed["reporting_period"] == WEEK

    for label in ("2026-10-25T12:00+1w", "2026-10-24T12:00+2w", "2026-10", "2026-W43"):
        r = await api.get(f"{base}/{label}")
        assert r.status_code == 422, (label, r.text)
        assert r.json()["errors"][0]["field"] == "path.period"
