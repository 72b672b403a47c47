"""The contract as stored documents, their cross-field rules, and their conversion to budget terms.

The api validates request bodies field by field (pydantic, services/api/schemas.py) and then
checks the rules that span fields or need the indicator registry here; the evaluator turns
the stored documents into `ObjectiveTerms` with `objective_terms`. Formats (JSON, the api's
request format, dumped in JSON mode):

agreement spec (`agreements.spec`, and the top level of a revision document)::

    {"name": str, "provider": str, "customer": str, "description": str,
     "effective_from": RFC 3339 | null, "effective_until": RFC 3339 | null,
     "timezone": IANA name, "reporting_period": "month" | "quarter" | "week",
     "business_hours": null | {"weekly": {"mon": ["09:00-17:00"], ...}, "holidays": ["2025-12-25", ...]},
     "maintenance": [{"reason": str, "start": RFC 3339, "end": RFC 3339}
                     | {"reason": str, "rrule": "DTSTART:20250105T020000\\nRRULE:FREQ=WEEKLY;BYDAY=SU",
                        "duration": "2h"}],
     "credit_tiers": [{"below": 0.999, "credit_percent": 10.0}, ...],   # sorted by `below`, descending
     "labels": {str: str}}

objective spec (`objectives.spec`; in a revision document each objective also carries its "id")::

    {"name": str, "description": str, "indicator": key, "matchers": {label: value},
     "target": float in (0, 1), "window": "30d" | "12h" | "90m" | "week" | "month" | "quarter",
     "budgeting": "occurrences" | "timeslices", "slice_length": "1m" | null, "slice_target": float | null,
     "threshold": null | {"op": "<" | "<=" | ">" | ">=", "value": float},
     "business_hours_only": bool,
     "alert_policy": {"tiers": null (defaults: design §3.3) | [{"name": str | null, "severity": "page" | "ticket",
                                                              "long_window": "1h", "short_window": "5m",
                                                              "factor": 14.4}],
                      "min_events": int, "budget_thresholds": [0.5, 0.75, 0.9, 1.0]}}

revision document (`agreement_revisions.document`): the agreement spec plus
`"archived_at": RFC 3339 | null` and `"objectives": [objective spec + "id"]`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from shared.budget import (
    BurnRateTier,
    BusinessHours,
    Comparison,
    ExcludedTime,
    MaintenanceWindow,
    ObjectiveTerms,
    RecurringMaintenance,
    Severity,
    ThresholdRule,
    Window,
    default_tiers_for,
    parse_window,
    validate_credit_tiers,
)
from shared.budget.exclusions import iana_zones, occurrences_in_first_days
from shared.budget.model import DEFAULT_BUDGET_THRESHOLDS, MAX_WINDOW_DAYS, parse_minutes, tier_name
from shared.budget.periods import zone

Problem = dict[str, str]
Document = Mapping[str, Any]

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


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def business_hours(agreement: Document) -> BusinessHours | None:
    """The agreement's business-hours calendar, or None when it has none."""
    calendar = agreement.get("business_hours")
    if not calendar:
        return None
    return BusinessHours.parse(agreement["timezone"], calendar.get("weekly", {}), calendar.get("holidays", ()))


RuleMemo = dict[tuple[str, int, str], RecurringMaintenance]
"""Recurring maintenance by (rule, duration, timezone), shared by the objectives of one computation: a rule's
occurrences are generated once (from its DTSTART on) rather than once per objective."""


def maintenance_exclusions(agreement: Document, rules: RuleMemo | None = None) -> tuple[ExcludedTime, ...]:
    """The agreement's maintenance windows (one-off and recurring) as excluded time."""
    out: list[ExcludedTime] = []
    for window in agreement.get("maintenance", ()):
        if window.get("rrule"):
            key = (window["rrule"], parse_minutes(window["duration"]), agreement["timezone"])
            rule = rules.get(key) if rules is not None else None
            if rule is None:
                rule = RecurringMaintenance(*key)
                if rules is not None:
                    rules[key] = rule
            out.append(rule)
        else:
            out.append(MaintenanceWindow(_ms(window["start"]), _ms(window["end"])))
    return tuple(out)


def objective_window(agreement: Document, objective: Document) -> Window:
    return parse_window(objective["window"], agreement.get("timezone", "UTC"))


def tiers_of(window: Window, alert_policy: Document) -> tuple[BurnRateTier, ...]:
    """The objective's burn-rate tiers: the ones it names, or the defaults for its window."""
    raw = alert_policy.get("tiers")
    if raw is None:
        return default_tiers_for(window)
    return tuple(
        BurnRateTier(
            name=str(t.get("name") or t["long_window"]),
            severity=Severity(t.get("severity", "page")),
            long_minutes=parse_minutes(t["long_window"]),
            short_minutes=parse_minutes(t["short_window"]),
            factor=float(t["factor"]),
        )
        for t in raw
    )


def tier_json(tier: BurnRateTier) -> dict[str, Any]:
    return {
        "name": tier.name,
        "severity": tier.severity.value,
        "long_window": tier_name(tier.long_minutes),
        "short_window": tier_name(tier.short_minutes),
        "factor": tier.factor,
    }


def objective_terms(agreement: Document, objective: Document, rules: RuleMemo | None = None) -> ObjectiveTerms:
    """The terms an objective is evaluated under, from its agreement's and its own stored spec.

    Exclusions: the agreement's maintenance windows always; its business hours (time outside
    them excluded) when the objective is business-hours-only. `rules` shares recurring maintenance
    between the objectives of one computation (one thread at a time: their occurrences are memoised).
    """
    window = objective_window(agreement, objective)
    policy = objective.get("alert_policy") or {}
    threshold = objective.get("threshold")
    exclusions = maintenance_exclusions(agreement, rules)
    if objective.get("business_hours_only"):
        hours = business_hours(agreement)
        if hours is None:
            raise ValueError("a business-hours objective needs an agreement with business hours")
        exclusions = (*exclusions, hours)
    timeslices = objective.get("budgeting") == "timeslices"
    return ObjectiveTerms(
        target=float(objective["target"]),
        window=window,
        tiers=tiers_of(window, policy),
        budget_thresholds=tuple(policy.get("budget_thresholds", DEFAULT_BUDGET_THRESHOLDS)),
        min_events_for_page=int(policy.get("min_events", 0)),
        budgeting=objective.get("budgeting", "occurrences"),
        slice_minutes=parse_minutes(objective["slice_length"]) if timeslices else 1,
        slice_target=objective.get("slice_target") if timeslices else None,
        threshold=ThresholdRule(Comparison(threshold["op"]), float(threshold["value"])) if threshold else None,
        matchers=tuple(sorted((objective.get("matchers") or {}).items())),
        exclusions=exclusions,
    )


# --- rules that span fields -------------------------------------------------------------------------


def agreement_problems(agreement: Document) -> list[Problem]:
    """Cross-field rules of the agreement's own terms (fields are already well-formed)."""
    problems: list[Problem] = []
    timezone = agreement.get("timezone", "UTC")
    start, until = agreement.get("effective_from"), agreement.get("effective_until")
    if start and until and datetime.fromisoformat(until) <= datetime.fromisoformat(start):
        problems.append({"field": "effective_until", "reason": "must be later than effective_from"})
    if agreement.get("business_hours"):
        try:
            business_hours(agreement)
        except ValueError as exc:
            problems.append({"field": "business_hours", "reason": str(exc)})
    occurrences = 0
    for n, window in enumerate(agreement.get("maintenance", ())):
        if window.get("rrule"):
            try:
                rule = RecurringMaintenance(window["rrule"], parse_minutes(window["duration"]), timezone)
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
        elif _ms(window["end"]) <= _ms(window["start"]):
            problems.append(
                {"field": f"maintenance.{n}.end", "reason": "a maintenance window must end after it starts"}
            )
    try:
        validate_credit_tiers([(t["below"], t["credit_percent"]) for t in agreement.get("credit_tiers", ())])
    except ValueError as exc:
        problems.append({"field": "credit_tiers", "reason": str(exc)})
    return problems


def objective_problems(
    objective: Document, agreement: Document, indicator_kinds: Mapping[str, str], path: str = ""
) -> list[Problem]:
    """Cross-field rules of one objective: its indicator, window, budgeting, threshold, hours and tiers.

    `indicator_kinds` maps every indicator an objective may use (registered, not archived) to its kind.
    """
    problems: list[Problem] = []

    def problem(field: str, reason: str) -> None:
        problems.append({"field": _join(path, field), "reason": reason})

    kind = indicator_kinds.get(objective["indicator"])
    if kind is None:
        problem("indicator", f"unknown indicator {objective['indicator']!r} (register it, or it is archived)")
    elif kind == "threshold" and objective.get("threshold") is None:
        problem("threshold", "a threshold indicator's objective needs a threshold (op and value)")
    elif kind == "ratio" and objective.get("threshold") is not None:
        problem("threshold", "a ratio indicator's objective takes no threshold")
    window: Window | None = None
    try:
        window = objective_window(agreement, objective)
    except ValueError as exc:
        problem("window", str(exc))
    if objective.get("budgeting") == "timeslices":
        if objective.get("slice_length") is None:
            problem("slice_length", "timeslices budgeting needs a slice length such as '1m'")
        elif window is not None and parse_minutes(objective["slice_length"]) > window.nominal_minutes:
            problem("slice_length", "a time slice cannot be longer than the window")
        if objective.get("slice_target") is None:
            problem("slice_target", "timeslices budgeting needs a slice target in (0, 1]")
    else:
        for field in ("slice_length", "slice_target"):
            if objective.get(field) is not None:
                problem(field, "only timeslices budgeting takes a slice length and slice target")
    if objective.get("business_hours_only") and not agreement.get("business_hours"):
        problem("business_hours_only", "the agreement has no business hours")
    for n, tier in enumerate((objective.get("alert_policy") or {}).get("tiers") or ()):
        if parse_minutes(tier["short_window"]) > parse_minutes(tier["long_window"]):
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
    if terms.budgeting == "timeslices":
        work += terms.window.max_minutes
    for exclusion in terms.exclusions:
        if isinstance(exclusion, BusinessHours):
            work += lookback / BUSINESS_HOURS_SHARE
        elif isinstance(exclusion, RecurringMaintenance) and rates is not None:
            work += OCCURRENCE_WORK * rates.get(id(exclusion), 0.0) * lookback + OCCURRENCE_WORK
        else:
            work += OCCURRENCE_WORK
    return work


def document_problems(document: Document, indicator_kinds: Mapping[str, str]) -> list[Problem]:
    """Every cross-field problem of an agreement with its objectives (paths relative to the document)."""
    problems = agreement_problems(document)
    seen: dict[str, int] = {}
    objectives: Sequence[Document] = document.get("objectives", ())
    for n, objective in enumerate(objectives):
        if objective["name"] in seen:
            problems.append(
                {"field": f"objectives.{n}.name", "reason": f"objective {seen[objective['name']]} has the same name"}
            )
        seen.setdefault(objective["name"], n)
        problems.extend(objective_problems(objective, document, indicator_kinds, f"objectives.{n}"))
    if not problems:
        problems.extend(evaluation_work_problems(document))
    return problems


def evaluation_work_problems(document: Document) -> list[Problem]:
    """The cap on the work of evaluating all the (well-formed) objectives of an agreement at one instant."""
    rules: RuleMemo = {}
    terms = [objective_terms(document, objective, rules) for objective in document.get("objectives", ())]
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
