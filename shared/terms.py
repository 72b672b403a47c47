"""Durations as the contract writes them, and the objective as the evaluator holds it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.budget import ObjectiveTerms, PeriodKind

_DURATION = re.compile(r"^(\d+)([mhd])$")
_UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440}


def parse_minutes(text: str) -> int:
    """`90m`, `6h`, `30d` to minutes; ValueError with the reason otherwise."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration such as 30d, 6h or 90m")
    return int(match.group(1)) * _UNIT_MINUTES[match.group(2)]


@dataclass(frozen=True, slots=True)
class ObjectiveConfig:
    """An objective as the evaluator needs it: identity, who it concerns, its terms, and its agreement's
    reporting period and service-credit tiers (for `accord.sla.breached`)."""

    id: str
    name: str
    agreement_id: str
    agreement_name: str
    customer: str
    provider: str
    indicator: str
    window: str
    terms: ObjectiveTerms
    reporting_period: PeriodKind = PeriodKind.MONTH
    timezone: str = "UTC"
    credit_tiers: tuple[tuple[float, float], ...] = ()
