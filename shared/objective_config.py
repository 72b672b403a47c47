"""The objective as the evaluator holds it."""

from __future__ import annotations

from dataclasses import dataclass

from shared.budget import ObjectiveTerms, PeriodKind
from shared.budget.periods import Calendar


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
    reporting_period: PeriodKind | Calendar = PeriodKind.MONTH
    timezone: str = "UTC"
    credit_tiers: tuple[tuple[float, float], ...] = ()
    revision: int | None = None
    """The agreement revision these terms are from (stored with each reading, so the api recomputes under them)."""
