"""Request and response bodies of the api (pydantic), with examples for /docs.

Request models check each field on its own; rules that span fields (a threshold for a
threshold indicator, slices for timeslices budgeting, ...) live in shared.contract and
run on the whole document. Request models dumped in JSON mode are the stored documents.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, date, datetime
from functools import partial
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from shared import contract as c
from shared.budget import CalendarWindow, parse_window
from shared.budget.exclusions import MAX_RULE_LENGTH
from shared.budget.model import DEFAULT_BUDGET_THRESHOLDS, MAX_WINDOW_DAYS, parse_minutes
from shared.budget.periods import Calendar, calendar_of
from shared.contract import check_text, check_timezone

T = TypeVar("T")

KEY_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
LABEL_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"
_SPAN = re.compile(r"^[0-9]{1,2}:[0-9]{2}-[0-9]{1,2}:[0-9]{2}$")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
MAX_EPOCH_SECONDS = 10**11
MAX_INT = 2**53
"""Counts in the terms (min_events) stay exact in JSON and in a float."""


def _checked(max_length: int, *, multiline: bool = False, blank: bool = True) -> AfterValidator:
    return AfterValidator(partial(check_text, max_length=max_length, multiline=multiline, blank=blank))


def _limit(max_length: int, *, multiline: bool = False, blank: bool = True) -> str:
    kind = "multi-line text (tab and line breaks allowed)" if multiline else "text"
    return f"At most {max_length} characters of {kind}, no control characters" + ("." if blank else ", not blank.")


def _instant(v: datetime) -> datetime:
    """An aware instant in the years 1970..9999 once converted to UTC."""
    if v.tzinfo is None:
        raise ValueError("needs an offset (e.g. Z or +02:00)")
    try:
        utc = v.astimezone(UTC)
    except OverflowError:
        raise ValueError("must lie in the years 1970 to 9999 (UTC)") from None
    if utc < EARLIEST:
        raise ValueError("must lie in the years 1970 to 9999 (UTC)")
    return v


def _epoch_seconds(v: Any) -> Any:
    """Epoch numbers are seconds, read here (pydantic would read one above 2e10 as milliseconds); a number above
    1e11 (milliseconds, most likely) is refused rather than guessed."""
    number = v
    if isinstance(v, str):
        if not v.strip().isascii():
            return v
        try:
            number = float(v)
        except ValueError:
            return v
    if not isinstance(number, int | float) or isinstance(number, bool):
        return v
    if not math.isfinite(number):
        raise ValueError("must be a finite number of epoch seconds")
    if abs(number) > MAX_EPOCH_SECONDS:
        raise ValueError(f"epoch seconds expected (at most {MAX_EPOCH_SECONDS:.0e}); this looks like milliseconds")
    if number < 0:
        raise ValueError("must lie in the years 1970 to 9999 (UTC)")
    return datetime.fromtimestamp(number, UTC)


Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_epoch_seconds),
    AfterValidator(_instant),
    Field(description="RFC 3339 with an offset (or epoch seconds), years 1970 to 9999."),
]
QueryText = Annotated[str, AfterValidator(partial(check_text, max_length=c.MAX_QUERY_LENGTH))]
"""A free-text query parameter or path segment: bounded, no control characters (routes add Query/Path)."""
QueryInstant = Annotated[datetime, BeforeValidator(_epoch_seconds), AfterValidator(_instant)]
MAX_REVISION = 2**31 - 1
Name = Annotated[
    str,
    Field(min_length=1, max_length=c.MAX_NAME_LENGTH, description=_limit(c.MAX_NAME_LENGTH, blank=False)),
    _checked(c.MAX_NAME_LENGTH, blank=False),
]
Description = Annotated[
    str,
    Field(max_length=c.MAX_DESCRIPTION_LENGTH, description=_limit(c.MAX_DESCRIPTION_LENGTH, multiline=True)),
    _checked(c.MAX_DESCRIPTION_LENGTH, multiline=True),
]
Reason = Annotated[
    str,
    Field(max_length=c.MAX_REASON_LENGTH, description=_limit(c.MAX_REASON_LENGTH, multiline=True)),
    _checked(c.MAX_REASON_LENGTH, multiline=True),
]
Unit = Annotated[
    str, Field(max_length=c.MAX_UNIT_LENGTH, description=_limit(c.MAX_UNIT_LENGTH)), _checked(c.MAX_UNIT_LENGTH)
]
LabelValue = Annotated[
    str,
    Field(max_length=c.MAX_LABEL_VALUE_LENGTH, description=_limit(c.MAX_LABEL_VALUE_LENGTH)),
    _checked(c.MAX_LABEL_VALUE_LENGTH),
]
RuleText = Annotated[str, Field(max_length=MAX_RULE_LENGTH), _checked(MAX_RULE_LENGTH, multiline=True)]


def _window(v: str) -> str:  # ASCII digits, 1 minute to 400 days (shared.budget.model)
    window = parse_window(v)
    if isinstance(window, CalendarWindow) and isinstance(window.kind, Calendar):
        return window.kind.text  # anchored: units are case-sensitive (1M a month, 1m no calendar unit)
    return v.strip().lower()


def _duration(v: str) -> str:
    v = v.strip().lower()
    parse_minutes(v)
    return v


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


WindowText = Annotated[
    str,
    Field(
        max_length=40,
        description=f"Rolling `30d`, `12h`, `90m` (ASCII digits; 1 minute to {MAX_WINDOW_DAYS} days), calendar "
        "`week`, `month`, `quarter`, or an anchored calendar `<n><unit> from <local start>` such as "
        "`1w from 2026-11-28T12:00` (units d, w, M, Q, Y; periods start + k × duration; agreement timezone).",
        examples=["30d"],
    ),
    AfterValidator(_window),
]


def _reporting_period(v: str) -> str:
    kind = calendar_of(v)
    if isinstance(kind, Calendar) and kind.max_days + 1 > MAX_WINDOW_DAYS:
        raise ValueError(f"a {kind.duration} reporting period can be longer than {MAX_WINDOW_DAYS} days")
    return kind.value


ReportingPeriodText = Annotated[
    str,
    Field(
        max_length=40,
        description="`month`, `quarter`, `week` (ISO, from Monday), or an anchored calendar `<n><unit> from "
        "<local start>` such as `1w from 2026-11-28T12:00` (units d, w, M, Q, Y; periods start + k × duration, "
        "labelled `2026-11-28T12:00+1w`), in the agreement's timezone.",
        examples=["month"],
    ),
    AfterValidator(_reporting_period),
]
Duration = Annotated[
    str,
    Field(max_length=20, description=f"`90m`, `6h`, `1d` (1 minute to {MAX_WINDOW_DAYS} days).", examples=["1h"]),
    AfterValidator(_duration),
]
Timezone = Annotated[
    str,
    Field(max_length=64, description="An IANA timezone name of tzdata.", examples=["Europe/Berlin"]),
    AfterValidator(check_timezone),
]
LabelKey = Annotated[str, Field(pattern=LABEL_PATTERN, description="At most 128 ASCII characters.")]
Labels = Annotated[
    dict[LabelKey, LabelValue],
    Field(max_length=c.MAX_LABELS, description=f"At most {c.MAX_LABELS} labels; names of at most 128 characters, "
          f"values of at most {c.MAX_LABEL_VALUE_LENGTH}."),
]  # fmt: skip
Matchers = Annotated[
    dict[LabelKey, LabelValue],
    Field(max_length=c.MAX_MATCHERS, description=f"At most {c.MAX_MATCHERS} matchers (a measurement carries at most "
          "32 labels)."),
]  # fmt: skip
Finite = Annotated[float, AfterValidator(_finite)]


OpenSLOData = Annotated[dict[str, Any], Field(max_length=64)]
OPENSLO_DATA = (
    "OpenSLO metadata an import keeps so that an export gives the documents back (names, display names, "
    "labels, annotations, metric queries, alert policy names and notification targets); Accord does not "
    "evaluate it. Null: derived from the terms."
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- indicators -------------------------------------------------------------------------------------


# Every example of the OpenAPI document succeeds as given against a fresh stack after the README's
# step 1 (checkout.availability registered): tests/integration/test_openapi_examples.py sends each.
class IndicatorIn(Strict):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"key": "checkout.latency", "kind": "threshold", "unit": "ms"}]}
    )

    key: str = Field(pattern=KEY_PATTERN, examples=["checkout.latency"])
    kind: Literal["ratio", "threshold"] = Field(
        examples=["threshold"],
        description="`ratio`: measurements carry good and total; `threshold`: they carry a value (and count).",
    )
    unit: Unit | None = Field(default=None, examples=["ms"])
    description: Description = ""


class IndicatorPatch(Strict):
    kind: Literal["ratio", "threshold"] | None = Field(
        default=None, description="Only while no objective uses the indicator."
    )
    unit: Unit | None = None
    description: Description | None = None


class IndicatorOut(BaseModel):
    key: str
    kind: str
    unit: str | None
    description: str
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


# --- objectives -------------------------------------------------------------------------------------


class AlertTierIn(Strict):
    name: Name | None = None
    severity: Literal["page", "ticket"] = "page"
    long_window: Duration = Field(examples=["1h"])
    short_window: Duration = Field(examples=["5m"])
    factor: float = Field(gt=0, le=1e6, allow_inf_nan=False, examples=[14.4])
    alert_after: Duration | None = Field(
        default=None, description="Fire only once the condition has held this long (OpenSLO alertAfter); null: at once."
    )
    alert_when_breaching: bool = Field(default=True, description="Announce the tier firing.")
    alert_when_resolved: bool = Field(default=True, description="Announce the tier resolving.")
    op: Literal["gt", "gte"] = Field(
        default="gt", description="`gt`: fire when both windows burn above the factor; `gte`: at it or above."
    )


class AlertPolicyIn(Strict):
    tiers: list[AlertTierIn] | None = Field(
        default=None,
        max_length=c.MAX_TIERS,
        description="Burn-rate tiers (both windows must burn faster than `factor`); null: the defaults "
        "of docs/design.md §3.3 (page 2 % of the budget in 1 h and 5 % in 6 h, ticket 10 % in 1 d and in 3 d).",
    )
    min_events: int = Field(
        default=0, ge=0, le=MAX_INT, description="Events needed in a page tier's long window to page."
    )
    budget_thresholds: list[float] = Field(
        default=list(DEFAULT_BUDGET_THRESHOLDS),
        max_length=c.MAX_BUDGET_THRESHOLDS,
        description="Budget-consumed fractions that emit an event when first crossed.",
    )

    @field_validator("budget_thresholds")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < t <= 1 for t in v):
            raise ValueError("budget thresholds are fractions of the budget in (0, 1]")
        return sorted(set(v))


class ThresholdIn(Strict):
    op: Literal["<", "<=", ">", ">="] = Field(examples=["<="])
    value: Finite = Field(examples=[300])


OBJECTIVE_EXAMPLE: dict[str, Any] = {
    "name": "Checkout availability, EU",
    "indicator": "checkout.availability",
    "matchers": {"region": "eu"},
    "target": 0.995,
    "window": "month",
    "business_hours_only": True,
    "alert_policy": {"min_events": 100},
}


class ObjectiveIn(Strict):
    """An objective's terms (the stored objective spec, shared.contract)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [OBJECTIVE_EXAMPLE]})

    name: Name = Field(examples=["Checkout availability"])
    description: Description = ""
    indicator: str = Field(pattern=KEY_PATTERN, examples=["checkout.availability"])
    matchers: Matchers = Field(default_factory=dict, description="Labels a measurement must carry to count.")
    target: float = Field(gt=0, lt=1, examples=[0.999])
    window: WindowText = "30d"
    budgeting: Literal["occurrences", "timeslices", "ratio_timeslices"] = "occurrences"
    slice_length: Duration | None = Field(
        default=None, description="Timeslices and ratio_timeslices (SLI = mean of the slices' ratios): slice length."
    )
    slice_target: float | None = Field(default=None, gt=0, le=1, description="Timeslices: good ratio of a good slice.")
    threshold: ThresholdIn | None = Field(
        default=None, description="Threshold indicators only: an event is good when `value <op> threshold.value`."
    )
    business_hours_only: bool = Field(default=False, description="Count only business hours of the agreement.")
    alert_policy: AlertPolicyIn = Field(default_factory=AlertPolicyIn)
    openslo: OpenSLOData | None = Field(default=None, description=OPENSLO_DATA)


class ObjectiveItem(ObjectiveIn):
    """An objective in a change's list: with `id` it updates that objective, without it adds one."""

    id: uuid.UUID | None = None


class ObjectivePatch(Strict):
    """Fields to change (absent: unchanged; nested objects are replaced whole)."""

    name: Name | None = None
    description: Description | None = None
    indicator: str | None = Field(default=None, pattern=KEY_PATTERN)
    matchers: Matchers | None = None
    target: float | None = Field(default=None, gt=0, lt=1, examples=[0.995])
    window: WindowText | None = None
    budgeting: Literal["occurrences", "timeslices", "ratio_timeslices"] | None = None
    slice_length: Duration | None = None
    slice_target: float | None = Field(default=None, gt=0, le=1)
    threshold: ThresholdIn | None = None
    business_hours_only: bool | None = None
    alert_policy: AlertPolicyIn | None = None
    openslo: OpenSLOData | None = Field(default=None, description=OPENSLO_DATA)


class ObjectiveChange(ObjectivePatch):
    author: Name = "anonymous"
    reason: Reason = ""


class ObjectiveCreate(ObjectiveIn):
    author: Name = "anonymous"
    reason: Reason = ""


class AlertTierOut(BaseModel):
    name: str
    severity: str
    long_window: str
    short_window: str
    factor: float
    alert_after: str | None
    alert_when_breaching: bool
    alert_when_resolved: bool
    op: str = "gt"


class ObjectiveOut(ObjectiveIn):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    agreement_id: uuid.UUID
    effective_tiers: list[AlertTierOut] = Field(description="The burn-rate tiers in force (defaults resolved).")


# --- agreements -------------------------------------------------------------------------------------


def _spans(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Span = Annotated[str, Field(pattern=_SPAN.pattern, max_length=11, examples=["09:00-17:00"])]


class BusinessHoursIn(Strict):
    weekly: dict[Weekday, Annotated[list[Span], BeforeValidator(_spans), Field(max_length=c.MAX_SPANS_PER_DAY)]] = (
        Field(
            examples=[{"mon": ["09:00-17:00"], "tue": ["09:00-17:00"]}],
            description="Opening hours per weekday (mon..sun) in the agreement's timezone; a weekday left out is "
            f"closed. At most {c.MAX_SPANS_PER_DAY} ranges per day.",
        )
    )
    holidays: list[date] = Field(
        default_factory=list,
        max_length=c.MAX_HOLIDAYS,
        examples=[["2025-12-25"]],
        description=f"At most {c.MAX_HOLIDAYS} dates.",
    )

    @field_validator("holidays")
    @classmethod
    def _sorted(cls, v: list[date]) -> list[date]:
        return sorted(set(v))


class MaintenanceIn(Strict):
    """One-off (`start` and `end`) or recurring (`rrule` and `duration`, in the agreement's timezone)."""

    reason: Reason = ""
    start: Instant | None = None
    end: Instant | None = None
    rrule: RuleText | None = Field(
        default=None,
        examples=["DTSTART:20250105T020000\nRRULE:FREQ=WEEKLY;BYDAY=SU"],
        description="DTSTART (years 2000 to 9000) and one RRULE (and RDATE/EXDATE lines): FREQ HOURLY, DAILY, WEEKLY, "
        "MONTHLY or YEARLY (never more often than hourly: one BYMINUTE and one BYSECOND value at most; no BYSETPOS, "
        f"BYYEARDAY, BYWEEKNO); at most {c.MAX_MAINTENANCE_OCCURRENCES} occurrences of all the agreement's rules "
        f"in {MAX_WINDOW_DAYS} days.",
    )
    duration: Duration | None = None

    @model_validator(mode="after")
    def _one_form(self) -> MaintenanceIn:
        one_off = self.start is not None or self.end is not None
        recurring = self.rrule is not None or self.duration is not None
        if one_off == recurring:
            raise ValueError("give either start and end (one-off) or rrule and duration (recurring)")
        if one_off and (self.start is None or self.end is None):
            raise ValueError("a one-off maintenance window needs both start and end")
        if recurring and (self.rrule is None or self.duration is None):
            raise ValueError("a recurring maintenance window needs both rrule and duration")
        return self


class CreditTierIn(Strict):
    below: float = Field(gt=0, le=1, description="Compliance (SLI) below this fraction owes the credit.")
    credit_percent: float = Field(ge=0, le=100, description="Percent of the period's fee credited.")


class FeeIn(Strict):
    """The fee per reporting period: credits owed are this percent of it. A decimal string, never a float."""

    amount: str = Field(
        pattern=r"^[0-9]{1,15}(\.[0-9]{1,4})?$",
        examples=["1200.00"],
        description="A decimal string: up to 15 digits, up to 4 decimals (no float rounding).",
    )
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["EUR"], description="ISO 4217 code.")


AGREEMENT_EXAMPLE: dict[str, Any] = {
    "name": "Acme checkout SLA",
    "provider": "Shop Platform",
    "customer": "Acme Corp",
    "timezone": "Europe/Berlin",
    "reporting_period": "month",
    "business_hours": {"weekly": {d: ["08:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}},
    "maintenance": [
        {"reason": "Sunday patching", "rrule": "DTSTART:20250105T020000\nRRULE:FREQ=WEEKLY", "duration": "2h"}
    ],
    "credit_tiers": [{"below": 0.999, "credit_percent": 10}, {"below": 0.99, "credit_percent": 25}],
    "labels": {"team": "payments"},
    "objectives": [{"name": "Checkout availability", "indicator": "checkout.availability", "target": 0.999}],
}


class AgreementTerms(Strict):
    """The agreement's own terms (the stored agreement spec, shared.contract)."""

    name: Name = Field(examples=["Acme checkout SLA"])
    provider: Name = Field(examples=["Shop Platform"])
    customer: Name = Field(examples=["Acme Corp"])
    description: Description = ""
    effective_from: Instant | None = None
    effective_until: Instant | None = None
    timezone: Timezone = "UTC"
    reporting_period: ReportingPeriodText = "month"
    business_hours: BusinessHoursIn | None = None
    maintenance: list[MaintenanceIn] = Field(default_factory=list, max_length=c.MAX_MAINTENANCE)
    credit_tiers: list[CreditTierIn] = Field(default_factory=list, max_length=c.MAX_CREDIT_TIERS)
    labels: Labels = Field(default_factory=dict, examples=[{"team": "payments"}])
    openslo: OpenSLOData | None = Field(default=None, description=OPENSLO_DATA)
    fee: FeeIn | None = Field(default=None, description="Optional fee per reporting period (credit amounts).")

    @field_validator("credit_tiers")
    @classmethod
    def _descending(cls, v: list[CreditTierIn]) -> list[CreditTierIn]:
        return sorted(v, key=lambda t: t.below, reverse=True)


class AgreementIn(AgreementTerms):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [AGREEMENT_EXAMPLE]})

    objectives: list[ObjectiveIn] = Field(default_factory=list, max_length=c.MAX_OBJECTIVES)
    author: Name = "anonymous"
    reason: Reason = ""


class AgreementPatch(Strict):
    """Fields to change (absent: unchanged; null clears an optional field; lists and objects are replaced whole).

    `objectives`, when given, is the new list: an item with `id` updates that objective,
    one without adds an objective, and objectives left out are removed.
    """

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"credit_tiers": [{"below": 0.995, "credit_percent": 15}]}]}
    )

    name: Name | None = None
    provider: Name | None = None
    customer: Name | None = None
    description: Description | None = None
    effective_from: Instant | None = None
    effective_until: Instant | None = None
    timezone: Timezone | None = None
    reporting_period: ReportingPeriodText | None = None
    business_hours: BusinessHoursIn | None = None
    maintenance: list[MaintenanceIn] | None = Field(default=None, max_length=c.MAX_MAINTENANCE)
    credit_tiers: list[CreditTierIn] | None = Field(default=None, max_length=c.MAX_CREDIT_TIERS)
    labels: Labels | None = None
    openslo: OpenSLOData | None = Field(default=None, description=OPENSLO_DATA)
    fee: FeeIn | None = None
    objectives: list[ObjectiveItem] | None = Field(default=None, max_length=c.MAX_OBJECTIVES)

    @field_validator("credit_tiers")
    @classmethod
    def _descending(cls, v: list[CreditTierIn] | None) -> list[CreditTierIn] | None:
        return None if v is None else sorted(v, key=lambda t: t.below, reverse=True)


class AgreementChange(AgreementPatch):
    author: Name = "anonymous"
    reason: Reason = ""


class AgreementOut(AgreementTerms):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    revision: int = Field(description="The revision shown; its ETag is the quoted number.")
    valid_from: datetime = Field(description="When this revision took effect.")
    created_at: datetime
    updated_at: datetime = Field(description="When the current revision took effect.")
    archived_at: datetime | None
    objectives: list[ObjectiveOut]


class RevisionOut(BaseModel):
    revision: int
    valid_from: datetime
    author: str
    reason: str
    change: str = Field(description="created, updated, objective-added, objective-updated, ..., reviewed, archived.")
    review_id: uuid.UUID | None


# --- reviews ----------------------------------------------------------------------------------------


class ReviewIn(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "author": "jane@shop.example",
                    "participants": ["Acme Corp", "Shop Platform"],
                    "notes": "Q3 review: two incidents, both within budget.",
                    "decisions": ["Raise the checkout target to 99.95 %"],
                    "changes": {"objectives": [{"name": "Checkout availability", "indicator": "checkout.availability",
                                                "target": 0.9995}]},
                }
            ]
        },
    )  # fmt: skip

    author: Name
    participants: list[Name] = Field(default_factory=list, max_length=c.MAX_LIST_ITEMS)
    notes: Description = ""
    decisions: list[Reason] = Field(default_factory=list, max_length=c.MAX_LIST_ITEMS)
    changes: AgreementPatch | None = Field(default=None, description="Applied in the review's revision, atomically.")


class ReviewOut(BaseModel):
    id: uuid.UUID
    agreement_id: uuid.UUID
    revision: int = Field(description="The revision the review recorded.")
    created_at: datetime
    author: str
    participants: list[str]
    notes: str
    decisions: list[str]
    changed: bool = Field(description="Whether the review changed the agreement's terms.")


# --- OpenSLO ----------------------------------------------------------------------------------------


class ImportOut(BaseModel):
    agreement: AgreementOut | None = Field(description="The agreement as imported; null on a dry run.")
    action: Literal["created", "updated", "unchanged", "would create", "would update"]
    changes: list[str] = Field(description="What the import changes (or would, on a dry run), one line each.")
    created_indicators: list[str] = Field(description="Indicators registered (or that would be, on a dry run).")
    notes: list[str] = Field(description="What the import did not keep (metric source queries, ...).")


# --- status and events ------------------------------------------------------------------------------


class Budget(BaseModel):
    unit: Literal["events", "slices", "nanoslices"] = Field(
        description="What the budget counts: events, time slices (timeslices), or 10^-9 slices "
        "(ratio_timeslices: a slice with events counts 10^9, of which its success ratio × 10^9 is good)."
    )
    allowed_events: float = Field(description="The budget: (1 - target) × total units in the window so far.")
    consumed_events: int = Field(description="Bad units in the window (the budget spent).")
    remaining_events: float = Field(description="allowed - consumed units; negative when overspent.")
    consumed: float = Field(description="Fraction of the budget consumed.")
    remaining: float = Field(description="1 - consumed; negative when overspent.")
    time_left_minutes: float | None = Field(
        description="How long the remaining budget lasts at the burn rate of the shortest tier's long window, "
        "only when it runs out within the window (a rolling window's length; a calendar window's period end); "
        "null when not burning, when the budget outlasts the window at this rate, or when nothing is left."
    )
    exhausts_at: datetime | None = Field(
        description="evaluated_at + time_left_minutes: when the budget runs out at this rate (a projection, "
        "never past the window); null with time_left_minutes."
    )
    exhausted_at: datetime | None = Field(
        description="When it happened: the instant (event time) the evaluator announced the budget exhausted "
        "(accord.budget.exhausted); null while it is not exhausted."
    )


class EventCounts(BaseModel):
    good: int = Field(description="Good events.")
    total: int = Field(description="All events.")


class TierStatus(BaseModel):
    name: str = Field(description="The tier's name (its long window unless named).")
    severity: str = Field(description="`page` or `ticket`.")
    factor: float = Field(description="Both windows must burn faster than this to fire.")
    long_window: str = Field(description="The long window, e.g. `1h`.")
    short_window: str = Field(description="The short window (1/12 of the long by default), e.g. `5m`.")
    long_burn_rate: float | None = Field(description="Burn rate over the long window; null without events.")
    short_burn_rate: float | None = Field(description="Burn rate over the short window; null without events.")
    long_events: int = Field(description="Events in the long window (the page low-traffic guard counts these).")
    burning: bool = Field(description="Both windows over the factor at evaluated_at (with enough events to page).")
    firing: bool = Field(description="Announced as firing by the evaluator (accord.burnrate.firing, not resolved yet).")


class AlertStates(BaseModel):
    """The alert states as the evaluator announced them (breach events) at `announced_at`, under the terms
    in force then. After a change of terms they stay as announced until the evaluator's next evaluation of
    the objective (its indicator's next measurement); `pending` says what would change."""

    firing: list[str] = Field(description="Burn-rate tiers announced as firing.")
    exhausted: bool = Field(description="accord.budget.exhausted announced, not recovered yet.")
    thresholds_crossed: list[float] = Field(
        description="Budget-consumed thresholds announced in this window, ascending; 1.0 (the whole budget) "
        "while exhausted."
    )
    announced_at: datetime | None = Field(
        description="The evaluation instant (event time) these states were decided at; null before any."
    )
    pending: list[str] = Field(
        description="What the numbers of this status, under the current terms, would announce at the next "
        "evaluation, as `type[:tier|threshold]` (e.g. `accord.burnrate.resolved:1h`); empty when the announced "
        "states agree with the numbers."
    )


class ObjectiveStatusOut(BaseModel):
    """An objective's budget at `evaluated_at`, recomputed from the evaluator's stored counts under its terms then.

    Alert states are what the evaluator has announced (breach events); `tiers[].burning` is the condition now.
    """

    objective_id: uuid.UUID = Field(description="The objective.")
    agreement_id: uuid.UUID = Field(description="Its agreement.")
    name: str = Field(description="The objective's name.")
    indicator: str = Field(description="The indicator it reads.")
    target: float = Field(description="The target the numbers are computed against (e.g. 0.999).")
    window: str = Field(
        description="`30d` (rolling), `week`/`month`/`quarter` (calendar) or `1w from 2026-11-28T12:00` "
        "(anchored calendar), in the agreement's timezone."
    )
    budgeting: str = Field(
        description="`occurrences` (events), `timeslices` (slices) or `ratio_timeslices` (units of 10^-9 slice: "
        "a slice with data counts 10^9, its good part its success ratio × 10^9)."
    )
    window_start: datetime | None = Field(description="First bucket of the window at evaluated_at.")
    window_end: datetime | None = Field(description="End of the window (exclusive): the minute after evaluated_at.")
    sli: float | None = Field(description="good / total; null when there were no events (never 100 %).")
    good: int = Field(description="Good units in the window (events, or good slices).")
    total: int = Field(description="Units in the window (events, or slices with data).")
    events: EventCounts = Field(description="Events in the window (equal to good/total for occurrences budgeting).")
    budget: Budget = Field(description="The error budget: allowed, consumed and remaining, and when it runs out.")
    burn_rate: float | None = Field(description="Burn rate over the whole window.")
    tiers: list[TierStatus] = Field(description="Each burn-rate tier: its windows' burn rates, burning now, firing.")
    alerts: AlertStates = Field(description="The alert states as announced.")
    exhausted: bool = Field(description="Same as alerts.exhausted.")
    last_measurement_at: datetime | None = Field(description="Time of the newest measurement counted; null before any.")
    evaluated_at: datetime | None = Field(description="Event time the evaluator evaluated at (newest measurement).")


class AgreementStatusOut(BaseModel):
    agreement_id: uuid.UUID
    name: str
    provider: str
    customer: str
    revision: int
    objectives: list[ObjectiveStatusOut]


class CustomerStatusOut(BaseModel):
    customer: str
    objectives: int = Field(description="Objectives over all the customer's agreements.")
    exhausted: int = Field(description="Objectives whose budget is exhausted.")
    firing: int = Field(description="Objectives with a burn-rate tier firing.")
    agreements: list[AgreementStatusOut]


class TierBurn(BaseModel):
    long: float | None = Field(description="Burn rate over the tier's long window.")
    short: float | None = Field(description="Burn rate over the tier's short window.")
    burning: bool


class HistoryPointOut(BaseModel):
    time: datetime
    revision: int | None = Field(description="Agreement revision whose terms applied; null: objective not in force.")
    target: float | None
    sli: float | None
    good: int | None
    total: int | None
    budget_consumed: float | None
    budget_remaining: float | None
    burn_rate: float | None = Field(description="Burn rate over the whole window.")
    burn_rates: dict[str, TierBurn] = Field(description="Per burn-rate tier (by name): long and short window rates.")


class HistoryOut(BaseModel):
    objective_id: uuid.UUID
    agreement_id: uuid.UUID
    start: datetime = Field(serialization_alias="from")
    end: datetime = Field(serialization_alias="to")
    step_seconds: float
    points: list[HistoryPointOut]


class BreachEventOut(BaseModel):
    id: str
    type: str
    objective_id: uuid.UUID
    agreement_id: uuid.UUID
    customer: str
    time: datetime
    published: bool
    event: dict[str, Any]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page.")
