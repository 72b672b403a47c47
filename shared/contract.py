"""The contract's rules that span fields, and its conversion to budget terms.

The contract's stored format is shared/spec.py (typed, frozen). The api validates request bodies
field by field (pydantic, services/api/schemas.py) and then checks the rules that span fields or
need the indicator registry here (`document_problems`); the evaluator and the api's status turn
stored specs into `ObjectiveTerms` with `objective_terms`. This module also holds the input bounds
(README "Limits") and the work model that caps what one evaluation may cost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from shared.budget import (
    Budgeting,
    BurnRateTier,
    BusinessHours,
    ExcludedTime,
    MaintenanceWindow,
    ObjectiveTerms,
    RecurringMaintenance,
    ThresholdRule,
    Window,
    default_tiers_for,
    parse_window,
    validate_credit_tiers,
)
from shared.budget.exclusions import iana_zones, occurrences_in_first_days
from shared.budget.model import MAX_WINDOW_DAYS, parse_minutes, tier_name
from shared.budget.periods import zone
from shared.spec import AgreementDocument, AgreementSpec, AlertPolicy, ObjectiveSpec
from shared.timeutil import to_ms

Problem = dict[str, str]

# --- input bounds (README "Limits"; the api answers 422 naming the field and the limit) -------------------

MAX_NAME_LENGTH = 200
"""Names of agreements, objectives, providers, customers, authors, review participants, tiers."""
MAX_DESCRIPTION_LENGTH = 10_000
"""Descriptions and review notes (multi-line)."""
MAX_REASON_LENGTH = 2_000
"""A change's reason, a maintenance window's reason, a review decision."""
MAX_UNIT_LENGTH = 64
MAX_LABELS = 64
MAX_MATCHERS = 32  # a measurement carries at most 32 labels (shared.measurements.MAX_LABELS)
MAX_LABEL_NAME_LENGTH = 128
MAX_LABEL_VALUE_LENGTH = 256
MAX_OBJECTIVES = 100
MAX_TIERS = 10
MAX_BUDGET_THRESHOLDS = 20
MAX_CREDIT_TIERS = 20
MAX_LIST_ITEMS = 100
"""Review participants and decisions."""
MAX_MAINTENANCE = 100
"""Maintenance windows (one-off and recurring) of one agreement."""
MAX_MAINTENANCE_OCCURRENCES = 10_000
"""Occurrences of all of an agreement's recurring maintenance rules in their first 400 days."""
MAX_SPANS_PER_DAY = 8
MAX_HOLIDAYS = 1_000
MAX_QUERY_LENGTH = 1_000
"""Any query parameter or path segment that is free text."""

# The work of evaluating an objective at one instant, in units of about 1.5 µs: one window minute walked by a
# timeslices objective over dense minute buckets (measured with shared.budget.evaluate; README "Limits").
POINT_WORK = 30
"""Any evaluation: the window and every tier window summed from prefix sums."""
BUSINESS_HOURS_SHARE = 30
"""Business hours: 1/30 unit per lookback minute (up to 8 opening spans a day and the offset changes)."""
OCCURRENCE_WORK = 5
"""Per maintenance occurrence within an evaluation's lookback (merged, then each included piece summed)."""
WALK_WORK = 4
"""Per occurrence generated from a recurring rule's DTSTART up to the instant evaluated (once per request)."""
MAX_EVALUATION_WORK = 1_000_000
"""Most work one evaluation of all an agreement's objectives may take (the api's status, the evaluator per record):
timeslices windows together at most about 1,000,000 minutes (one 400-day window, twenty-three 30-day ones)."""

# Control characters (C0, DEL, C1) and lone surrogates cannot be stored (PostgreSQL refuses NUL and
# invalid UTF-8) or break logs and exports; multi-line fields may hold tab, newline and carriage return.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def text_problem(value: str, max_length: int, *, multiline: bool = False, blank: bool = True) -> str | None:
    """Why `value` is no acceptable text field; None when it is."""
    if len(value) > max_length:
        return f"must be at most {max_length} characters (has {len(value)})"
    if (_CONTROL_MULTILINE if multiline else _CONTROL).search(value):
        allowed = " (tab and line breaks are allowed)" if multiline else ""
        return f"must not contain control characters such as NUL{allowed}"
    if not blank and not value.strip():
        return "must not be empty or only whitespace"
    return None


def check_text(value: str, max_length: int, *, multiline: bool = False, blank: bool = True) -> str:
    """`value` when it is acceptable text; ValueError naming the limit otherwise."""
    reason = text_problem(value, max_length, multiline=multiline, blank=blank)
    if reason is not None:
        raise ValueError(reason)
    return value


def _join(path: str, *parts: object) -> str:
    return ".".join([path, *(str(p) for p in parts)] if path else [str(p) for p in parts])


def business_hours(agreement: AgreementSpec) -> BusinessHours | None:
    """The agreement's business-hours calendar, or None when it has none."""
    calendar = agreement.business_hours
    if calendar is None:
        return None
    return BusinessHours.parse(agreement.timezone, calendar.weekly, calendar.holidays)


RuleMemo = dict[tuple[str, int, str], RecurringMaintenance]
"""Recurring maintenance by (rule, duration, timezone), shared by the objectives of one computation: a rule's
occurrences are generated once (from its DTSTART on) rather than once per objective."""


def maintenance_exclusions(agreement: AgreementSpec, rules: RuleMemo | None = None) -> tuple[ExcludedTime, ...]:
    """The agreement's maintenance windows (one-off and recurring) as excluded time."""
    out: list[ExcludedTime] = []
    for window in agreement.maintenance:
        if window.rrule is not None and window.duration is not None:
            key = (window.rrule, parse_minutes(window.duration), agreement.timezone)
            rule = rules.get(key) if rules is not None else None
            if rule is None:
                rule = RecurringMaintenance(*key)
                if rules is not None:
                    rules[key] = rule
            out.append(rule)
        elif window.start is not None and window.end is not None:
            out.append(MaintenanceWindow(to_ms(window.start), to_ms(window.end)))
    return tuple(out)


def objective_window(agreement: AgreementSpec, objective: ObjectiveSpec) -> Window:
    return parse_window(objective.window, agreement.timezone)


def tiers_of(window: Window, alert_policy: AlertPolicy) -> tuple[BurnRateTier, ...]:
    """The objective's burn-rate tiers: the ones it names, or the defaults for its window."""
    if alert_policy.tiers is None:
        return default_tiers_for(window)
    return tuple(
        BurnRateTier(
            name=t.name or t.long_window,
            severity=t.severity,
            long_minutes=parse_minutes(t.long_window),
            short_minutes=parse_minutes(t.short_window),
            factor=t.factor,
            alert_after_minutes=parse_minutes(t.alert_after) if t.alert_after else 0,
            announce_firing=t.alert_when_breaching,
            announce_resolved=t.alert_when_resolved,
            inclusive=t.op == "gte",
        )
        for t in alert_policy.tiers
    )


def tier_json(tier: BurnRateTier) -> dict[str, Any]:
    return {
        "name": tier.name,
        "severity": tier.severity.value,
        "long_window": tier_name(tier.long_minutes),
        "short_window": tier_name(tier.short_minutes),
        "factor": tier.factor,
        "alert_after": tier_name(tier.alert_after_minutes) if tier.alert_after_minutes else None,
        "alert_when_breaching": tier.announce_firing,
        "alert_when_resolved": tier.announce_resolved,
        "op": "gte" if tier.inclusive else "gt",
    }


def objective_terms(
    agreement: AgreementSpec, objective: ObjectiveSpec, rules: RuleMemo | None = None
) -> ObjectiveTerms:
    """The terms an objective is evaluated under, from its agreement's and its own stored spec.

    Exclusions: the agreement's maintenance windows always; the time before its `effective_from`
    (the budget counts from the contract's start); its business hours (time outside them
    excluded) when the objective is business-hours-only. `rules` shares recurring maintenance
    between the objectives of one computation (one thread at a time: their occurrences are memoised).
    """
    window = objective_window(agreement, objective)
    policy, threshold = objective.alert_policy, objective.threshold
    exclusions = maintenance_exclusions(agreement, rules)
    if agreement.effective_from:  # the budget counts from the contract's start: earlier data is excluded
        exclusions = (*exclusions, MaintenanceWindow(0, max(1, to_ms(agreement.effective_from))))
    if objective.business_hours_only:
        hours = business_hours(agreement)
        if hours is None:
            raise ValueError("a business-hours objective needs an agreement with business hours")
        exclusions = (*exclusions, hours)
    timeslices = objective.budgeting.sliced
    if timeslices and objective.slice_length is None:
        raise ValueError("timeslices budgeting needs a slice length")
    return ObjectiveTerms(
        target=objective.target,
        window=window,
        tiers=tiers_of(window, policy),
        budget_thresholds=policy.budget_thresholds,
        min_events=policy.min_events,
        budgeting=objective.budgeting,
        slice_minutes=parse_minutes(objective.slice_length) if timeslices and objective.slice_length else 1,
        slice_target=objective.slice_target if objective.budgeting is Budgeting.TIMESLICES else None,
        threshold=ThresholdRule(threshold.op, threshold.value) if threshold else None,
        matchers=tuple(sorted(objective.matchers.items())),
        exclusions=exclusions,
    )


# --- rules that span fields -------------------------------------------------------------------------


def agreement_problems(agreement: AgreementSpec) -> list[Problem]:
    """Cross-field rules of the agreement's own terms (fields are already well-formed)."""
    problems: list[Problem] = []
    timezone = agreement.timezone
    start, until = agreement.effective_from, agreement.effective_until
    if start is not None and until is not None and until <= start:
        problems.append({"field": "effective_until", "reason": "must be later than effective_from"})
    if agreement.business_hours is not None:
        try:
            business_hours(agreement)
        except ValueError as exc:
            problems.append({"field": "business_hours", "reason": str(exc)})
    occurrences = 0
    for n, window in enumerate(agreement.maintenance):
        if window.rrule is not None and window.duration is not None:
            try:
                rule = RecurringMaintenance(window.rrule, parse_minutes(window.duration), timezone)
            except ValueError as exc:
                problems.append({"field": f"maintenance.{n}.rrule", "reason": str(exc)})
                continue
            occurrences += occurrences_in_first_days(rule, MAX_WINDOW_DAYS, MAX_MAINTENANCE_OCCURRENCES - occurrences)
            if occurrences > MAX_MAINTENANCE_OCCURRENCES:
                problems.append(
                    {
                        "field": f"maintenance.{n}.rrule",
                        "reason": f"the agreement's recurring maintenance would occur more than "
                        f"{MAX_MAINTENANCE_OCCURRENCES} times in {MAX_WINDOW_DAYS} days",
                    }
                )
                break
        elif window.start is not None and window.end is not None and window.end <= window.start:
            problems.append(
                {"field": f"maintenance.{n}.end", "reason": "a maintenance window must end after it starts"}
            )
    try:
        validate_credit_tiers([(t.below, t.credit_percent) for t in agreement.credit_tiers])
    except ValueError as exc:
        problems.append({"field": "credit_tiers", "reason": str(exc)})
    return problems


def objective_problems(
    objective: ObjectiveSpec, agreement: AgreementSpec, indicator_kinds: Mapping[str, str], path: str = ""
) -> list[Problem]:
    """Cross-field rules of one objective: its indicator, window, budgeting, threshold, hours and tiers.

    `indicator_kinds` maps every indicator an objective may use (registered, not archived) to its kind.
    """
    problems: list[Problem] = []

    def problem(field: str, reason: str) -> None:
        problems.append({"field": _join(path, field), "reason": reason})

    kind = indicator_kinds.get(objective.indicator)
    if kind is None:
        problem("indicator", f"unknown indicator {objective.indicator!r} (register it, or it is archived)")
    elif kind == "threshold" and objective.threshold is None:
        problem("threshold", "a threshold indicator's objective needs a threshold (op and value)")
    elif kind == "ratio" and objective.threshold is not None:
        problem("threshold", "a ratio indicator's objective takes no threshold")
    window: Window | None = None
    try:
        window = objective_window(agreement, objective)
    except ValueError as exc:
        problem("window", str(exc))
    if objective.budgeting.sliced:
        if objective.slice_length is None:
            problem("slice_length", f"{objective.budgeting.value} budgeting needs a slice length such as '1m'")
        elif window is not None and parse_minutes(objective.slice_length) > window.nominal_minutes:
            problem("slice_length", "a time slice cannot be longer than the window")
        if objective.budgeting is Budgeting.TIMESLICES and objective.slice_target is None:
            problem("slice_target", "timeslices budgeting needs a slice target in (0, 1]")
        if objective.budgeting is Budgeting.RATIO_TIMESLICES and objective.slice_target is not None:
            problem("slice_target", "ratio_timeslices budgeting takes no slice target (a slice counts by its ratio)")
    else:
        for field in ("slice_length", "slice_target"):
            if getattr(objective, field) is not None:
                problem(field, "only timeslices budgeting takes a slice length and slice target")
    if objective.business_hours_only and agreement.business_hours is None:
        problem("business_hours_only", "the agreement has no business hours")
    for n, tier in enumerate(objective.alert_policy.tiers or ()):
        if parse_minutes(tier.short_window) > parse_minutes(tier.long_window):
            problem(f"alert_policy.tiers.{n}.short_window", "the short window cannot be longer than the long window")
    return problems


def rule_rates(terms: Sequence[ObjectiveTerms]) -> dict[int, float]:
    """Occurrences per minute of each recurring maintenance rule of `terms` (by `id()`), from its first 400 days."""
    rules = {id(e): e for t in terms for e in t.exclusions if isinstance(e, RecurringMaintenance)}
    return {
        key: occurrences_in_first_days(rule, MAX_WINDOW_DAYS, MAX_MAINTENANCE_OCCURRENCES) / (MAX_WINDOW_DAYS * 1440)
        for key, rule in rules.items()
    }


def point_work(terms: ObjectiveTerms, rates: Mapping[int, float] | None = None) -> float:
    """Work units of evaluating `terms` at one instant; `rates` maps `id()` of each recurring rule to its
    occurrences per minute (`rule_rates`; without it, a rule counts as one occurrence)."""
    lookback = max([terms.window.max_minutes, *(t.long_minutes for t in terms.tiers)])
    work = float(POINT_WORK)
    if terms.budgeting.sliced:
        work += terms.window.max_minutes
    for exclusion in terms.exclusions:
        if isinstance(exclusion, BusinessHours):
            work += lookback / BUSINESS_HOURS_SHARE
        elif isinstance(exclusion, RecurringMaintenance) and rates is not None:
            work += OCCURRENCE_WORK * rates.get(id(exclusion), 0.0) * lookback + OCCURRENCE_WORK
        else:
            work += OCCURRENCE_WORK
    return work


def document_problems(document: AgreementDocument, indicator_kinds: Mapping[str, str]) -> list[Problem]:
    """Every cross-field problem of an agreement with its objectives (paths relative to the document)."""
    problems = agreement_problems(document)
    seen: dict[str, int] = {}
    for n, objective in enumerate(document.objectives):
        if objective.name in seen:
            problems.append(
                {"field": f"objectives.{n}.name", "reason": f"objective {seen[objective.name]} has the same name"}
            )
        seen.setdefault(objective.name, n)
        problems.extend(objective_problems(objective, document, indicator_kinds, f"objectives.{n}"))
    if not problems:
        problems.extend(evaluation_work_problems(document))
    return problems


def evaluation_work_problems(document: AgreementDocument) -> list[Problem]:
    """The cap on the work of evaluating all the (well-formed) objectives of an agreement at one instant."""
    rules: RuleMemo = {}
    terms = [objective_terms(document, objective, rules) for objective in document.objectives]
    rates = rule_rates(terms)
    work = 0.0
    problems: list[Problem] = []
    for n, objective_terms_ in enumerate(terms):
        work += point_work(objective_terms_, rates)
        if work > MAX_EVALUATION_WORK:
            problems.append(
                {
                    "field": f"objectives.{n}",
                    "reason": f"evaluating the agreement's objectives would take more than {MAX_EVALUATION_WORK} work "
                    "units (timeslices windows together at most about 1,000,000 minutes; 5 units per maintenance "
                    "occurrence in each window): shorten windows, maintenance or split the agreement",
                }
            )
            break
    return problems


def check_timezone(name: str) -> str:
    """`name` when it is an IANA timezone of tzdata; ValueError otherwise (no `localtime`, `posixrules`, ...)."""
    if name not in iana_zones():
        raise ValueError(f"unknown timezone {name[:60]!r} (expected an IANA name such as 'Europe/Berlin')")
    zone(name)
    return name
