"""Stored objective definitions (rows, JSON) to `ObjectiveTerms`: the edge conversion the api and evaluator share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from shared.budget import BurnRateTier, ObjectiveTerms, RollingWindow, Severity, default_tiers
from shared.budget.model import DEFAULT_BUDGET_THRESHOLDS

_DURATION = re.compile(r"^(\d+)([mhd])$")
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440}


def parse_minutes(text: str) -> int:
    """`90m`, `6h`, `30d` to minutes; ValueError with the reason otherwise."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration such as 30d, 6h or 90m")
    return int(match.group(1)) * _UNIT_MINUTES[match.group(2)]


def parse_window(text: str) -> RollingWindow:
    return RollingWindow(parse_minutes(text))


def terms_from_spec(target: float, window: str, alert_policy: dict[str, Any]) -> ObjectiveTerms:
    """Build the terms from stored fields; raises ValueError naming what is wrong."""
    parsed = parse_window(window)
    raw_tiers = alert_policy.get("tiers")
    if raw_tiers is None:
        tiers = default_tiers(parsed.minutes)
    else:
        tiers = tuple(
            BurnRateTier(
                name=str(t.get("name") or t["long_window"]),
                severity=Severity(t.get("severity", "page")),
                long_minutes=parse_minutes(t["long_window"]),
                short_minutes=parse_minutes(t["short_window"]),
                factor=float(t["factor"]),
            )
            for t in raw_tiers
        )
    return ObjectiveTerms(
        target=target,
        window=parsed,
        tiers=tiers,
        budget_thresholds=tuple(alert_policy.get("budget_thresholds", DEFAULT_BUDGET_THRESHOLDS)),
        min_events_for_page=int(alert_policy.get("min_events", 0)),
    )


@dataclass(frozen=True, slots=True)
class ObjectiveConfig:
    """An objective as the evaluator needs it: identity, who it concerns, and its terms."""

    id: str
    name: str
    agreement_id: str
    agreement_name: str
    customer: str
    provider: str
    indicator: str
    window: str
    terms: ObjectiveTerms
