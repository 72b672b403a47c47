"""Status and history of objectives, recomputed from the evaluator's stored minute buckets.

The evaluator stores counts (series_buckets), its latest reading (objective_status), the
instant it evaluated at (event time) and the agreement revision whose terms it used. The api
recomputes each reading with the same pure math (`shared.budget.evaluate` via `shared.history`)
at that same instant under those same terms, so /status and the evaluator's numbers (its
status rows, /metrics) are one reading by construction, right after a change too, and
everything `Evaluation` knows (time left, budget in units, per-tier windows) can be shown,
not just what the status row holds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.api import repository as repo
from services.api.repository import StatusAgreement, StatusInput, StatusObjective, StoredStatus
from services.api.schemas import (
    AgreementStatusOut,
    AlertStates,
    Budget,
    EventCounts,
    HistoryPointOut,
    ObjectiveStatusOut,
    TierBurn,
    TierStatus,
)
from shared.budget import (
    ZERO,
    AlertState,
    Evaluation,
    ObjectiveTerms,
    RecurringMaintenance,
    Transition,
    decide,
    evaluate,
    minute_of,
    shape_of,
    thresholds_announced,
)
from shared.budget.evaluate import CountSource
from shared.budget.exclusions import Interval, merge_intervals
from shared.budget.model import tier_name
from shared.budget.rollups import PlannedSource, earliest_minute, needed_minutes
from shared.contract import WALK_WORK, RuleMemo, objective_terms, point_work, rule_rates
from shared.db import AgreementRevision
from shared.errors import Invalid
from shared.history import (
    HistoryPoint,
    IndicatorBuckets,
    TermsInForce,
    bucket_span,
    combine,
    history,
    lookback_minutes,
)
from shared.series import SeriesGroup, selects, series_group
from shared.spec import AgreementSpec, ObjectiveSpec
from shared.timeutil import MINUTE_MS, from_minute, from_ms, to_ms

Planned = tuple[StatusObjective, ObjectiveSpec, ObjectiveTerms, StoredStatus | None, int | None]
Plan = tuple[list[Planned], dict[str, tuple[int, int]], dict[str, tuple[int, int]], dict[str, list[Interval]]]


@dataclass(frozen=True)
class Reading:
    objective: StatusObjective
    spec: ObjectiveSpec  # the terms as stored, of the revision the reading is under
    terms: ObjectiveTerms
    status: StoredStatus | None
    evaluation: Evaluation | None
    exhausted_since: datetime | None = None


async def readings(session: AsyncSession, objectives: Sequence[StatusInput]) -> list[Reading]:
    """Each objective evaluated as the evaluator last evaluated it: at that instant, under that revision's terms.

    The instant is the stored status' `evaluated_at` and the terms those of its `revision` (the current ones
    when the row names none); without a status (no measurement since the objective was added) it is the
    indicator's watermark under the current terms; without either there is no reading. Buckets are loaded
    once per indicator for all its objectives.
    """
    earlier = await repo.revision_documents(
        session,
        {
            (i.agreement.id, s.revision)
            for i in objectives
            if (s := i.status) is not None and s.revision is not None and s.revision != i.agreement.revision
        },
    )

    def plan() -> Plan:
        planned: list[Planned] = []
        spans: dict[str, tuple[int, int]] = {}  # indicators whose every minute is read (timeslices)
        hour_spans: dict[str, tuple[int, int]] = {}
        minute_spans: dict[str, list[Interval]] = {}
        rules: RuleMemo = {}
        plans: dict[tuple[tuple[object, ...], int], list[Interval] | None] = {}
        for agreement, objective, status, watermark, _ in objectives:
            agreement_spec: AgreementSpec = agreement.spec
            spec: ObjectiveSpec = objective.spec
            document = earlier.get((agreement.id, status.revision)) if status and status.revision else None
            if document is not None and (evaluated := document.objective(objective.id)) is not None:
                agreement_spec, spec = document, evaluated
            terms = stored_terms(objective.id, agreement_spec, spec, rules)
            instant = to_ms(status.evaluated_at) if status is not None else watermark
            planned.append((objective, spec, terms, status, instant))
            if instant is None:
                continue
            key, end = objective.indicator_key, minute_of(instant) + 1
            # Objectives of one shape at one instant (the evaluator evaluates an indicator's objectives together)
            # need the same minutes: planned once.
            shape = (shape_of(terms), instant)
            if shape not in plans:
                plans[shape] = needed_minutes(terms, instant)
            needed = plans[shape]
            if needed is None:
                start = end - lookback_minutes(terms)
                known = spans.get(key)
                spans[key] = (min(start, known[0]), max(end, known[1])) if known else (start, end)
                continue
            # Whole hours from the roll-ups, minutes only at the windows' edges and around exclusions.
            first, last = earliest_minute(terms, instant) // 60, end // 60 + 1
            known = hour_spans.get(key)
            hour_spans[key] = (min(first, known[0]), max(last, known[1])) if known else (first, last)
            minute_spans.setdefault(key, []).extend(needed)
        merged = {key: merge_intervals(found) for key, found in minute_spans.items()}
        return planned, spans, hour_spans, merged

    # Terms (recurring maintenance expanded) and the minutes the windows need are math too: off the loop.
    planned, spans, hour_spans, merged = await asyncio.to_thread(plan)
    loaded: dict[str, IndicatorBuckets] = {}
    for indicator, (start, end) in spans.items():
        loaded[indicator] = await repo.series_buckets(session, indicator, start, end)
    # Spans in key order: each span's cells are aggregated on their own (`shared.cells.fetch_spans`), in the
    # order of the index they are read by.
    hour_cells, minute_cells = await repo.rolled_up(
        session,
        [(key, a, b) for key, (a, b) in sorted(hour_spans.items())],
        [(key, a, b) for key, found in sorted(merged.items()) for a, b in found],
    )

    def planned_source(key: str, group: SeriesGroup) -> PlannedSource:
        def columns(cells: repo.Cells) -> list[repo.Columns]:
            return [found for series, found in cells.get(key, {}).items() if selects(group, series)]

        return PlannedSource.of_columns(columns(hour_cells), columns(minute_cells), merged.get(key, []))

    def compute() -> list[Reading]:
        sources: dict[tuple[str, SeriesGroup], CountSource] = {}
        out = []
        for (objective, spec, terms, status, instant), given in zip(planned, objectives, strict=True):
            evaluation = None
            if instant is not None:
                key = objective.indicator_key
                group = (key, series_group(terms))
                source = sources.get(group)
                if source is None:
                    full = terms.budgeting.sliced
                    source = combine(loaded[key], group[1]) if full else planned_source(key, group[1])
                    sources[group] = source
                evaluation = evaluate(terms, source, instant)
            out.append(Reading(objective, spec, terms, status, evaluation, given.exhausted_at))
        return out

    # The math runs in a worker thread, so the event loop (and /healthz) keeps answering meanwhile.
    return await asyncio.to_thread(compute)


def stored_terms(
    objective_id: uuid.UUID, agreement: AgreementSpec, objective: ObjectiveSpec, rules: RuleMemo | None = None
) -> ObjectiveTerms:
    """The terms of a stored objective; 422 when they break a rule added since they were stored."""
    try:
        return objective_terms(agreement, objective, rules)
    except (ValueError, KeyError, TypeError) as exc:
        raise Invalid(
            "The objective's stored terms cannot be evaluated; change the agreement to fix them.",
            [{"field": f"objectives.{objective_id}", "reason": str(exc)[:500]}],
        ) from None


def later(instant: datetime | None, minutes: float | None) -> datetime | None:
    """`instant` + `minutes`; None when either is None or the sum lies past the year 9999 (a very slow burn)."""
    if instant is None or minutes is None:
        return None
    try:
        return instant + timedelta(minutes=minutes)
    except OverflowError:
        return None


def pending_text(transition: Transition) -> str:
    """`accord.burnrate.resolved:1h`, `accord.budget.threshold:0.5`, `accord.budget.recovered`."""
    if transition.tier is not None:
        return f"{transition.type}:{transition.tier}"
    if transition.threshold is not None:
        return f"{transition.type}:{transition.threshold:g}"
    return str(transition.type)


def status_out(reading: Reading) -> ObjectiveStatusOut:
    """The api's view of a reading; before any measurement, zero events and a full budget."""
    objective, terms, status, ev = reading.objective, reading.terms, reading.status, reading.evaluation
    alert = AlertState.from_json(status.alert_state) if status is not None else AlertState()
    unit = terms.budgeting.unit
    tiers = []
    readings = {r.name: r for r in ev.tiers} if ev is not None else {}
    for tier in terms.tiers:
        r = readings.get(tier.name)
        tiers.append(
            TierStatus(
                name=tier.name,
                severity=tier.severity.value,
                factor=tier.factor,
                long_window=tier_name(tier.long_minutes),
                short_window=tier_name(tier.short_minutes),
                long_burn_rate=r.long_burn_rate if r else None,
                short_burn_rate=r.short_burn_rate if r else None,
                long_events=r.long_total if r else 0,
                burning=r.burning if r else False,
                firing=tier.name in alert.firing,
            )
        )
    time_left = ev.time_left_minutes if ev is not None else None
    events = ev.events if ev is not None else ZERO
    evaluated_at = from_ms(ev.now_ms) if ev is not None else None
    # The alert states are as announced (at the status' evaluated_at, under the terms then in force);
    # `pending` is what the numbers above, under the current terms, would announce at the next evaluation
    # (after a target change, until the evaluator's next measurement of the indicator).
    pending = decide(terms, alert, ev)[1] if ev is not None and status is not None else []
    return ObjectiveStatusOut(
        objective_id=objective.id,
        agreement_id=objective.agreement_id,
        name=objective.name,
        indicator=objective.indicator_key,
        target=terms.target,
        window=reading.spec.window,
        budgeting=terms.budgeting.value,
        window_start=from_minute(ev.window_start) if ev is not None else None,
        window_end=from_minute(ev.window_end) if ev is not None else None,
        sli=ev.sli if ev is not None else None,
        good=ev.counts.good if ev is not None else 0,
        total=ev.counts.total if ev is not None else 0,
        events=EventCounts(good=events.good, total=events.total),
        budget=Budget(
            unit=unit,
            allowed_events=ev.budget_allowed if ev is not None else 0.0,
            consumed_events=ev.budget_spent if ev is not None else 0,
            remaining_events=ev.budget_left if ev is not None else 0.0,
            consumed=ev.budget_consumed if ev is not None else 0.0,
            remaining=ev.budget_remaining if ev is not None else 1.0,
            time_left_minutes=time_left,
            exhausts_at=later(evaluated_at, time_left),
            exhausted_at=reading.exhausted_since if alert.exhausted else None,
        ),
        burn_rate=ev.burn_rate if ev is not None else None,
        tiers=tiers,
        alerts=AlertStates(
            firing=sorted(alert.firing),
            exhausted=alert.exhausted,
            thresholds_crossed=thresholds_announced(alert),
            announced_at=status.evaluated_at if status is not None else None,
            pending=[pending_text(t) for t in pending],
        ),
        exhausted=alert.exhausted,
        last_measurement_at=status.last_measurement_at if status is not None else None,
        evaluated_at=evaluated_at,
    )


async def agreement_statuses(
    session: AsyncSession, agreements: Sequence[StatusAgreement], objectives: Sequence[StatusInput]
) -> list[AgreementStatusOut]:
    """Status of every current objective of the agreements (`repo.status_inputs`; one bucket load per indicator
    for all of them)."""
    found = await readings(session, objectives)
    grouped: dict[uuid.UUID, list[ObjectiveStatusOut]] = {a.id: [] for a in agreements}
    for reading in found:
        grouped[reading.objective.agreement_id].append(status_out(reading))
    return [
        AgreementStatusOut(
            agreement_id=a.id,
            name=a.name,
            provider=a.provider,
            customer=a.customer,
            revision=a.revision,
            objectives=grouped[a.id],
        )
        for a in agreements
    ]


# --- history ----------------------------------------------------------------------------------------


def terms_in_force(
    objective_id: uuid.UUID, revisions: Sequence[AgreementRevision], rules: RuleMemo | None = None
) -> list[TermsInForce]:
    """The objective's terms per agreement revision (oldest first, from its `valid_from`); None where it was not
    in force."""
    spans = []
    for revision in revisions:
        document = revision.document
        objective = document.objective(objective_id)
        valid_from = to_ms(revision.valid_from)
        if objective is None or document.archived_at is not None:
            spans.append(TermsInForce(valid_from, revision.revision, None, None))
        else:
            terms = stored_terms(objective_id, document, objective, rules)
            spans.append(TermsInForce(valid_from, revision.revision, objective.indicator, terms))
    return spans


async def objective_history(
    session: AsyncSession,
    objective_id: uuid.UUID,
    agreement_id: uuid.UUID,
    from_ms_: int,
    to_ms_: int,
    step_ms: int,
    max_work: int,
) -> list[HistoryPointOut]:
    """The objective's budget at from, from + step, ... <= to, each under the revision in force then.

    422 when the request's work (`history_work`) is over `max_work`.
    """
    rules: RuleMemo = {}
    spans = terms_in_force(objective_id, await repo.all_revisions(session, agreement_id), rules)
    times = range(from_ms_, to_ms_ + 1, step_ms)
    # Only the revisions in force somewhere in [from, to] matter, for the buckets to load.
    relevant = [
        s
        for k, s in enumerate(spans)
        if s.valid_from_ms <= to_ms_ and (k + 1 == len(spans) or spans[k + 1].valid_from_ms > from_ms_)
    ]
    work = await asyncio.to_thread(history_work, [s.terms for s in relevant if s.terms], len(times), to_ms_)
    if work > max_work:
        raise Invalid(
            "Too much work.",
            [
                {
                    "field": "query.step",
                    "reason": f"{len(times)} points of this objective take about {work} work units, at most "
                    f"{max_work} (ACCORD_API_MAX_HISTORY_WORK): use a larger step or a shorter range",
                }
            ],
        )
    loaded: dict[str, IndicatorBuckets] = {}
    for indicator in {s.indicator for s in relevant if s.indicator is not None}:
        terms = [s.terms for s in relevant if s.indicator == indicator and s.terms is not None]
        start, end = bucket_span(terms, from_ms_, to_ms_)
        loaded[indicator] = await repo.series_buckets(session, indicator, start, end)
    return await asyncio.to_thread(lambda: [point_out(p) for p in history(relevant, loaded, times)])


def history_work(terms: Sequence[ObjectiveTerms], points: int, to_ms_: int) -> int:
    """Work units of a history: points × the costliest terms' point work, plus generating each recurring rule's
    occurrences from its DTSTART up to `to` (rates from its first 400 days, which validation caps)."""
    rules = {id(e): e for t in terms for e in t.exclusions if isinstance(e, RecurringMaintenance)}
    rates = rule_rates(terms)
    walk = 0.0
    for key, rule in rules.items():
        first = next(iter(rule.occurrences), None)
        if first is not None:
            walk += WALK_WORK * rates[key] * max(0.0, to_ms_ / MINUTE_MS - to_ms(first) / MINUTE_MS)
    per_point = max((point_work(t, rates) for t in terms), default=0.0)
    return int(points * per_point + walk)


def point_out(point: HistoryPoint) -> HistoryPointOut:
    ev, span = point.evaluation, point.terms
    if ev is None or span is None or span.terms is None:
        return HistoryPointOut(
            time=from_ms(point.time_ms),
            revision=None,
            target=None,
            sli=None,
            good=None,
            total=None,
            budget_consumed=None,
            budget_remaining=None,
            burn_rate=None,
            burn_rates={},
        )
    return HistoryPointOut(
        time=from_ms(point.time_ms),
        revision=span.revision,
        target=span.terms.target,
        sli=ev.sli,
        good=ev.counts.good,
        total=ev.counts.total,
        budget_consumed=ev.budget_consumed,
        budget_remaining=ev.budget_remaining,
        burn_rate=ev.burn_rate,
        burn_rates={
            r.name: TierBurn(long=r.long_burn_rate, short=r.short_burn_rate, burning=r.burning) for r in ev.tiers
        },
    )
