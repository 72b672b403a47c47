"""The contract as typed, frozen values: what the database stores and every service reads.

An agreement's stored spec (`agreements.spec`), an objective's (`objectives.spec`) and a
revision's whole document (`agreement_revisions.document`) are these models dumped in JSON
mode; shared/db.py converts them at the column, so nothing past the database holds the
contract as a dict. The api creates them from its request bodies (services/api/schemas.py),
the one place defaults are applied: a stored spec is complete (migration 0002 completed the
older ones), so no field here has a default and no reader re-applies one. Field-by-field
rules are checked on the request bodies, cross-field rules in shared/contract.py.

Exceptions, added later with a default so older stored specs stay readable without a migration:
`AlertTier.alert_after` / `alert_when_breaching` / `alert_when_resolved` / `op` and the `openslo` blobs
(OpenSLO metadata an import keeps for export: names, labels, annotations, queries, targets).

Field names are the api's JSON names (the wire format): `threshold.value`, `alert_policy.min_events`,
`slice_length`; the budget math's `ObjectiveTerms` is built from these by shared/contract.py.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, WithJsonSchema

from shared.budget import Budgeting, Comparison, PeriodKind, Severity
from shared.budget.periods import Calendar, calendar_of


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_json(self) -> dict[str, Any]:
        """The stored (JSON) form."""
        return self.model_dump(mode="json")

    def changed(self, **update: Any) -> Self:
        """A copy with `update` (JSON values, as a request's fields dump) validated in: `model_copy(update=...)`
        would keep them as they come (a dict where a model belongs)."""
        return self.model_validate({**self.to_json(), **update})


# --- objective ---------------------------------------------------------------------------------------


class AlertTier(Frozen):
    name: str | None
    severity: Severity
    long_window: str
    short_window: str
    factor: float
    alert_after: str | None = None
    """How long the condition must hold before the tier fires (OpenSLO `alertAfter`); None: at once."""
    alert_when_breaching: bool = True
    alert_when_resolved: bool = True
    op: Literal["gt", "gte"] = "gt"
    """Fire when both windows burn above the factor (`gt`), or at it or above (`gte`; OpenSLO's condition op)."""


class AlertPolicy(Frozen):
    tiers: tuple[AlertTier, ...] | None
    """None: the defaults for the objective's window (docs/design.md §3.3)."""
    min_events: int
    """Events a page tier's long window needs before it may page."""
    budget_thresholds: tuple[float, ...]


class Threshold(Frozen):
    """An event of a threshold indicator is good when `measured <op> value`."""

    op: Comparison
    value: float


class ObjectiveSpec(Frozen):
    """An objective's terms (`objectives.spec`)."""

    name: str
    description: str
    indicator: str
    matchers: dict[str, str]
    target: float
    window: str
    """Rolling `30d`, calendar `week`/`month`/`quarter`, or anchored `1w from 2026-11-28T12:00` (shared.budget)."""
    budgeting: Budgeting
    slice_length: str | None
    slice_target: float | None
    threshold: Threshold | None
    business_hours_only: bool
    alert_policy: AlertPolicy
    openslo: dict[str, Any] | None = None
    """What an OpenSLO import kept for export (services/api/openslo.py); None: derived from the terms."""


class StoredObjective(ObjectiveSpec):
    """An objective in a revision document: its terms and its id."""

    id: uuid.UUID

    def spec(self) -> ObjectiveSpec:
        return ObjectiveSpec.model_validate(self.model_dump(exclude={"id"}))


# --- agreement ---------------------------------------------------------------------------------------


class BusinessHours(Frozen):
    weekly: dict[str, tuple[str, ...]]
    """Opening spans per weekday (`mon`..`sun`), `09:00-17:00`, in the agreement's timezone."""
    holidays: tuple[date, ...]


class Maintenance(Frozen):
    """One-off (`start`, `end`) or recurring (`rrule`, `duration`, in the agreement's timezone)."""

    reason: str
    start: datetime | None
    end: datetime | None
    rrule: str | None
    duration: str | None


class CreditTier(Frozen):
    below: float
    credit_percent: float


class Fee(Frozen):
    """What the customer pays per reporting period; credits are a percent of it. Decimal, never float
    (stored as a string)."""

    amount: Decimal
    currency: str


def _reporting_period(value: Any) -> PeriodKind | Calendar:
    if isinstance(value, PeriodKind | Calendar):
        return value
    if not isinstance(value, str):
        raise ValueError("a reporting period is week, month, quarter or an anchored calendar such as "
                         "'1w from 2026-11-28T12:00'")  # fmt: skip
    return calendar_of(value)


ReportingPeriod = Annotated[
    PeriodKind | Calendar,
    PlainValidator(_reporting_period),
    PlainSerializer(lambda v: v.value, return_type=str),
    WithJsonSchema({"type": "string"}),
]
"""`week`, `month`, `quarter`, or an anchored calendar (`1w from 2026-11-28T12:00`), stored as that text."""


class AgreementSpec(Frozen):
    """An agreement's own terms (`agreements.spec`)."""

    name: str
    provider: str
    customer: str
    description: str
    effective_from: datetime | None
    effective_until: datetime | None
    timezone: str
    reporting_period: ReportingPeriod
    """A default period or an anchored calendar (periods start + k × duration, shared/budget/periods.py)."""
    business_hours: BusinessHours | None
    maintenance: tuple[Maintenance, ...]
    credit_tiers: tuple[CreditTier, ...]
    """Sorted by `below`, descending."""
    labels: dict[str, str]
    openslo: dict[str, Any] | None = None
    """The OpenSLO Service's metadata an import kept for export; None: derived from the terms."""
    fee: Fee | None = None
    """Added after migration 0002: older stored specs have none."""


class AgreementDocument(AgreementSpec):
    """One revision of an agreement (`agreement_revisions.document`): its terms, objectives and archive mark."""

    archived_at: datetime | None
    objectives: tuple[StoredObjective, ...]

    def spec(self) -> AgreementSpec:
        return AgreementSpec.model_validate(self.model_dump(exclude={"archived_at", "objectives"}))

    def objective(self, objective_id: uuid.UUID | str) -> StoredObjective | None:
        wanted = uuid.UUID(str(objective_id))
        return next((o for o in self.objectives if o.id == wanted), None)
