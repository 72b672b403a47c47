"""Minutes with a page or ticket tier firing during a period, from the burn-rate events (services/api/reports.py)."""

from __future__ import annotations

from services.api.reports import firing_minutes

M = 60_000
FIRING, RESOLVED = "accord.burnrate.firing", "accord.burnrate.resolved"
SEVERITIES = {"1h": "page", "6h": "page", "1d": "ticket", "3d": "ticket"}


def test_firing_minutes_by_hand() -> None:
    events = [
        (-30 * M, FIRING, "1h"),  # firing before the period: counts from its start
        (10 * M, RESOLVED, "1h"),  # page: 0-10
        (5 * M, FIRING, "6h"),  # page overlapping 5-20: the union is 0-20 = 20 minutes
        (20 * M, RESOLVED, "6h"),
        (50 * M, FIRING, "1d"),  # ticket 50-100, still firing at the end
        (60 * M, FIRING, "1d"),  # a repeat does not restart it
        (70 * M, RESOLVED, "gone"),  # a tier the terms no longer name
        (80 * M, FIRING, None),
    ]
    events.sort(key=lambda e: e[0])
    assert firing_minutes(events, SEVERITIES, 0, 100 * M) == {"page": 20.0, "ticket": 50.0}


def test_nothing_fired() -> None:
    assert firing_minutes([], SEVERITIES, 0, 100 * M) == {"page": 0.0, "ticket": 0.0}
    resolved_before = [(-50 * M, FIRING, "1h"), (-10 * M, RESOLVED, "1h")]
    assert firing_minutes(resolved_before, SEVERITIES, 0, 100 * M) == {"page": 0.0, "ticket": 0.0}
