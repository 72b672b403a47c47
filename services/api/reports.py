"""Compliance reports: a reporting period of an agreement, judged from the stored counts (docs/reports.md).

The numbers come from `shared.budget.reports` (the one judgement of a period, shared with the
evaluator); this module picks the terms (the revision in force at the period's end), loads the
counts (whole hours from the roll-ups, minutes only at edges: shared/budget/rollups.py), and shapes
the JSON document every format (JSON, CSV, HTML) is rendered from, so they carry the same numbers.
A closed period's document is stored (`period_reports`) and read back as it was frozen.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api import repository as repo
from services.api.readings import stored_terms
from shared.budget import Calendar, ObjectiveTerms, Period, PeriodKind
from shared.budget.counts import minute_of
from shared.budget.evaluate import CountSource
from shared.budget.exclusions import Interval, excluded_intervals, merge_intervals
from shared.budget.periods import zone
from shared.budget.reports import Fee, PeriodReport, credit_amount, local_days, parse_period, period_kind, period_report
from shared.budget.rollups import PlannedSource, plan_window
from shared.contract import RuleMemo
from shared.db import Agreement, AgreementRevision, BreachEvent, PeriodReportRow
from shared.errors import AccordError, Invalid, NotFound
from shared.history import combine
from shared.series import SeriesGroup, SeriesKey, selects, series_group
from shared.spec import AgreementDocument, AgreementSpec, StoredObjective
from shared.timeutil import MINUTE_MS, from_minute, from_ms, to_ms

INSTANT_RULE = "An instant is evaluated under the revision in force at it."
log = logging.getLogger("accord.api.reports")
TERMS_RULE = "A period is judged under the terms in force at its end (docs/reports.md)."
MAX_BREACHES = 100
"""Breach events listed per objective in a report (the newest are left out past it; `breaches_total` counts all)."""


def period_of_label(label: str, agreement: Agreement, now_ms: int) -> Period:
    """The agreement's reporting period named `label`; 422 for a malformed label, another kind of period than
    the agreement reports on, or a period that has not begun."""
    document: AgreementSpec = agreement.spec
    kind = document.reporting_period
    try:
        period = parse_period(label, document.timezone, kind if isinstance(kind, Calendar) else None)
    except ValueError as exc:
        raise Invalid("No such reporting period.", [{"field": "path.period", "reason": str(exc)}]) from None
    if period_kind(period.label) is not (None if isinstance(kind, Calendar) else kind):
        reason = f"the agreement reports per {document.reporting_period.value}, and {label[:40]!r} is no such period"
        raise Invalid("No such reporting period.", [{"field": "path.period", "reason": reason}])
    if period.start_ms > now_ms:
        raise Invalid("No such reporting period.", [{"field": "path.period", "reason": "the period has not begun"}])
    return period


def in_force_at(revisions: Sequence[AgreementRevision], instant_ms: int) -> AgreementRevision | None:
    """The revision in force at `instant_ms`: the last one valid from at or before it."""
    found = None
    for revision in revisions:
        if to_ms(revision.valid_from) <= instant_ms:
            found = revision
    return found


@dataclass(frozen=True)
class Judged:
    objective: StoredObjective
    terms: ObjectiveTerms
    report: PeriodReport


def _plan_spans(
    period: Period, tz: str, end: int, judged: Sequence[tuple[StoredObjective, ObjectiveTerms]]
) -> tuple[dict[str, tuple[int, int]], dict[str, list[Interval]], set[str]]:
    """Per indicator: the hour cells and the minute spans the period and its local days read; and the indicators
    read minute by minute (timeslices)."""
    hour_spans: dict[str, tuple[int, int]] = {}
    minute_spans: dict[str, list[Interval]] = {}
    full: set[str] = set()
    for objective, terms in judged:
        key = objective.indicator
        if terms.budgeting.sliced:
            full.add(key)
            continue
        hour_spans[key] = (period.start // 60, end // 60 + 1)
        excluded = excluded_intervals(terms.exclusions, period.start, end) if terms.exclusions else []
        spans = minute_spans.setdefault(key, [])
        spans.extend(plan_window(period.start, end, excluded).minutes)
        for _, a, b in local_days(period, tz):
            if a < end:
                spans.extend(plan_window(a, min(b, end), excluded).minutes)
    return hour_spans, {key: merge_intervals(found) for key, found in minute_spans.items()}, full


async def _load_sources(
    session: AsyncSession,
    period: Period,
    tz: str,
    end: int,
    judged: Sequence[tuple[StoredObjective, ObjectiveTerms]],
) -> dict[tuple[str, SeriesGroup], CountSource]:
    """Count sources per (indicator, series group): roll-ups for occurrences, every minute for timeslices."""
    # Exclusions are CPU work (a recurring rule's occurrences from its DTSTART on): off the event loop.
    hour_spans, merged, full = await asyncio.to_thread(_plan_spans, period, tz, end, judged)
    hour_cells, minute_cells = await repo.rolled_up(
        session,
        [(key, a, b) for key, (a, b) in hour_spans.items()],
        [(key, a, b) for key, found in merged.items() for a, b in found],
    )
    loaded = {key: await repo.series_buckets(session, key, period.start, end) for key in full}

    def columns(cells: dict[SeriesKey, repo.Columns], group: SeriesGroup) -> list[repo.Columns]:
        return [found for series, found in cells.items() if selects(group, series)]

    def build() -> dict[tuple[str, SeriesGroup], CountSource]:
        sources: dict[tuple[str, SeriesGroup], CountSource] = {}
        for objective, terms in judged:
            key, group = objective.indicator, series_group(terms)
            if (key, group) in sources:
                continue
            if terms.budgeting.sliced:
                sources[(key, group)] = combine(loaded.get(key, {}), group)
            else:
                sources[(key, group)] = PlannedSource.of_columns(
                    columns(hour_cells.get(key, {}), group),
                    columns(minute_cells.get(key, {}), group),
                    merged.get(key, []),
                )
        return sources

    return await asyncio.to_thread(build)


def _num(value: float | None) -> float | None:
    return None if value is None else float(value)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _local(minute: int, tz: str) -> str:
    return from_minute(minute).astimezone(zone(tz)).isoformat()


def _utc(minute: int) -> str:
    return from_minute(minute).isoformat().replace("+00:00", "Z")


def firing_minutes(
    events: Sequence[tuple[int, str, str | None]], severities: dict[str, str], start_ms: int, end_ms: int
) -> dict[str, float]:
    """Minutes of [start_ms, end_ms) during which at least one tier of each severity was firing, from the burn-rate
    firing/resolved events in time order (those before the period give the state at its start). Tiers the terms
    in force no longer name count under the severity their name had, or not at all when unknown."""
    since: dict[str, int] = {}
    spans: dict[str, list[Interval]] = {"page": [], "ticket": []}
    for time_ms, kind, tier in events:
        if tier is None or tier not in severities:
            continue
        if kind == "accord.burnrate.firing":
            since.setdefault(tier, time_ms)
        elif tier in since:
            spans[severities[tier]].append((since.pop(tier), time_ms))
    for tier, began in since.items():
        spans[severities[tier]].append((began, end_ms))
    out = {}
    for severity, found in spans.items():
        clipped = [(max(a, start_ms), min(b, end_ms)) for a, b in found]
        out[severity] = sum(b - a for a, b in merge_intervals(clipped)) / MINUTE_MS
    return out


def objective_json(j: Judged, breaches: Sequence[BreachEvent]) -> dict[str, Any]:
    r = j.report
    jd = r.judgement
    worst = r.worst_day
    mine = [b for b in breaches if b.objective_id == j.objective.id]
    return {
        "id": str(j.objective.id),
        "name": j.objective.name,
        "indicator": j.objective.indicator,
        "target": jd.target,
        "budgeting": j.terms.budgeting.value,
        "unit": j.terms.budgeting.unit,
        "business_hours_only": j.objective.business_hours_only,
        "compliance": _num(jd.compliance),
        "met": jd.met,
        "good": jd.counts.good,
        "total": jd.counts.total,
        "events": {"good": jd.events.good, "total": jd.events.total},
        "budget": {
            "allowed": jd.budget_allowed,
            "consumed": jd.budget_consumed,
            "remaining": jd.budget_remaining,
        },
        "excluded_minutes": {reason.value: minutes for reason, minutes in r.excluded.items()},
        "credit_percent": jd.credit_percent,
        "worst_day": None
        if worst is None
        else {"date": worst.day.isoformat(), "compliance": worst.compliance, "good": worst.counts.good,
              "total": worst.counts.total},
        "days": [
            {"date": d.day.isoformat(), "compliance": d.compliance, "good": d.counts.good, "total": d.counts.total}
            for d in r.days
        ],
        "breaches_total": len(mine),
        "breaches": [
            {"id": b.id, "type": b.type, "time": b.time.isoformat().replace("+00:00", "Z")} for b in mine[:MAX_BREACHES]
        ],
    }  # fmt: skip


async def build_report(
    session: AsyncSession, agreement: Agreement, period: Period, now_ms: int, grace_ms: int
) -> dict[str, Any]:
    """The report of `period` computed now from the stored counts, under the revision in force at its end."""
    revisions = await repo.all_revisions(session, agreement.id)
    in_force = in_force_at(revisions, min(now_ms, period.end_ms - 1))
    if in_force is None:
        raise NotFound(f"Agreement {agreement.id} did not exist during {period.label}.")
    document: AgreementDocument = in_force.document
    tz = document.timezone
    end = min(minute_of(now_ms) + 1, period.end)
    rules: RuleMemo = {}
    plan = await asyncio.to_thread(lambda: [(o, stored_terms(o.id, document, o, rules)) for o in document.objectives])
    sources = await _load_sources(session, period, tz, end, plan)
    breaches = (
        await session.scalars(
            select(BreachEvent)
            .where(
                BreachEvent.agreement_id == agreement.id,
                BreachEvent.time >= from_ms(period.start_ms),
                BreachEvent.time < from_ms(period.end_ms),
            )
            .order_by(BreachEvent.time, BreachEvent.id)
        )
    ).all()
    alerts = (
        await session.execute(
            select(
                BreachEvent.objective_id, BreachEvent.time, BreachEvent.type, BreachEvent.event["data"]["tier"].astext
            )
            .where(
                BreachEvent.agreement_id == agreement.id,
                BreachEvent.type.in_(("accord.burnrate.firing", "accord.burnrate.resolved")),
                BreachEvent.time < from_ms(period.end_ms),
            )
            .order_by(BreachEvent.time, BreachEvent.seq)
        )
    ).all()
    tiers = [(t.below, t.credit_percent) for t in document.credit_tiers]
    fee = Fee(document.fee.amount, document.fee.currency) if document.fee is not None else None

    def compute() -> list[Judged]:
        return [
            Judged(o, t, period_report(t, sources[(o.indicator, series_group(t))], period, tz, now_ms, tiers, fee))
            for o, t in plan
        ]

    judged = await asyncio.to_thread(compute)
    counted_until_ms = min(now_ms, period.end_ms)
    objectives = []
    for j in judged:
        severities = {t.name: t.severity.value for t in j.terms.tiers}
        mine = [(to_ms(t), kind, tier) for oid, t, kind, tier in alerts if oid == j.objective.id]
        firing = firing_minutes(mine, severities, period.start_ms, counted_until_ms)
        objectives.append(objective_json(j, breaches) | {"firing_minutes": firing})
    percent = max((j.report.judgement.credit_percent for j in judged), default=0.0)
    during = [
        {
            "revision": r.revision,
            "valid_from": r.valid_from.isoformat(),
            "author": r.author,
            "reason": r.reason,
            "change": r.change,
            "review_id": str(r.review_id) if r.review_id else None,
        }
        for r in revisions
        if r.revision == in_force.revision or period.start_ms < to_ms(r.valid_from) < period.end_ms
        or r is in_force_at(revisions, period.start_ms)
    ]  # fmt: skip
    closes_ms = period.end_ms + grace_ms
    return {
        "agreement": {
            "id": str(agreement.id),
            "name": document.name,
            "provider": document.provider,
            "customer": document.customer,
            "timezone": tz,
            "reporting_period": document.reporting_period.value,
        },
        "period": {
            "label": period.label,
            "kind": document.reporting_period.value,
            "timezone": tz,
            "start": _utc(period.start),
            "end": _utc(period.end),
            "start_local": _local(period.start, tz),
            "end_local": _local(period.end, tz),
            "closes_at": from_ms(closes_ms).isoformat().replace("+00:00", "Z"),
        },
        "state": "open" if now_ms < period.end_ms else "ended" if now_ms < closes_ms else "closing",
        "version": None,
        "computed_at": from_ms(now_ms).isoformat().replace("+00:00", "Z"),
        "counted_until": _utc(end),
        "terms": {
            "rule": TERMS_RULE,
            "revision": in_force.revision,
            "valid_from": in_force.valid_from.isoformat(),
            "revisions": during,
            "credit_tiers": [{"below": b, "credit_percent": c} for b, c in tiers],
            "fee": None if fee is None else {"amount": str(fee.amount), "currency": fee.currency},
        },
        "objectives": objectives,
        "summary": {
            "objectives": len(judged),
            "met": sum(j.report.judgement.met is True for j in judged),
            "missed": sum(j.report.judgement.met is False for j in judged),
            "no_data": sum(j.report.judgement.met is None for j in judged),
            "credit_percent": percent,
            "credit_amount": _money(credit_amount(percent, fee)),
            "currency": None if fee is None else fee.currency,
        },
    }


async def frozen_versions(session: AsyncSession, agreement_id: uuid.UUID, label: str) -> Sequence[PeriodReportRow]:
    """The stored versions of a period's report, oldest first."""
    query = (
        select(PeriodReportRow)
        .where(PeriodReportRow.agreement_id == agreement_id, PeriodReportRow.period == label)
        .order_by(PeriodReportRow.version)
    )
    return (await session.scalars(query)).all()


async def report_of(
    session: AsyncSession, agreement: Agreement, period: Period, now_ms: int, grace_ms: int, version: int | None
) -> dict[str, Any]:
    """The stored report (the latest version, or `version`), or, while the period is not closed, computed now."""
    versions = await frozen_versions(session, agreement.id, period.label)
    if version is not None:
        found = next((v for v in versions if v.version == version), None)
        if found is None:
            raise NotFound(f"No version {version} of the {period.label} report of agreement {agreement.id}.")
        return found.report
    if versions:
        return versions[-1].report
    return await build_report(session, agreement, period, now_ms, grace_ms)


# --- formats -------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "agreement_id", "agreement", "customer", "period", "timezone", "state", "version", "terms_revision",
    "objective_id", "objective", "indicator", "target", "budgeting", "compliance", "met", "good", "total",
    "budget_allowed", "budget_consumed", "budget_remaining", "excluded_maintenance_minutes",
    "excluded_before_effective_minutes", "excluded_business_hours_minutes", "worst_day", "worst_day_compliance",
    "breaches", "credit_percent", "agreement_credit_percent", "agreement_credit_amount", "currency",
    "page_firing_minutes", "ticket_firing_minutes",
)  # fmt: skip
"""Stable: new columns are only ever appended."""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_rows(report: dict[str, Any]) -> Iterator[list[str]]:
    a, p, s = report["agreement"], report["period"], report["summary"]
    for o in report["objectives"]:
        worst = o["worst_day"] or {}
        ex = o["excluded_minutes"]
        yield [
            _cell(v)
            for v in (
                a["id"], a["name"], a["customer"], p["label"], p["timezone"], report["state"], report["version"],
                report["terms"]["revision"], o["id"], o["name"], o["indicator"], repr(o["target"]), o["budgeting"],
                None if o["compliance"] is None else repr(o["compliance"]), o["met"], o["good"], o["total"],
                repr(o["budget"]["allowed"]), o["budget"]["consumed"], repr(o["budget"]["remaining"]),
                ex["maintenance"], ex["before_effective"], ex["business_hours"], worst.get("date"),
                None if worst.get("compliance") is None else repr(worst["compliance"]), o["breaches_total"],
                repr(o["credit_percent"]), repr(s["credit_percent"]), s["credit_amount"], s["currency"],
                repr(o["firing_minutes"]["page"]), repr(o["firing_minutes"]["ticket"]),
            )
        ]  # fmt: skip


def to_csv(reports: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for report in reports:
        writer.writerows(csv_rows(report))
    return out.getvalue()


def pct(value: float | None, digits: int = 3) -> str:
    """A fraction as a percent, e.g. 0.99873 → `99.873 %`; `n/a` without data."""
    return "n/a" if value is None else f"{value * 100:.{digits}f} %"


def iso_date(text: str) -> str:
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M %Z").strip()


# --- closing and recomputing ------------------------------------------------------------------------------

CLOSER_LOCK = 0x4163636F72640B  # pg advisory lock key of the period closer ("Accord" + issue 11)

FIGURES = ("compliance", "met", "good", "total", "credit_percent")


def report_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Every figure that differs between two versions: [{"field", "objective_id" (or None), "old", "new"}]."""
    out: list[dict[str, Any]] = []

    def diff(field: str, objective: str | None, a: Any, b: Any) -> None:
        if a != b:
            out.append({"field": field, "objective_id": objective, "old": a, "new": b})

    diff("terms.revision", None, old["terms"]["revision"], new["terms"]["revision"])
    for key in ("credit_percent", "credit_amount", "met", "missed", "no_data"):
        diff(f"summary.{key}", None, old["summary"][key], new["summary"][key])
    before = {o["id"]: o for o in old["objectives"]}
    after = {o["id"]: o for o in new["objectives"]}
    for oid in sorted(before.keys() | after.keys()):
        a, b = before.get(oid), after.get(oid)
        if a is None or b is None:
            diff("objective", oid, a is not None, b is not None)
            continue
        for key in FIGURES:
            diff(key, oid, a[key], b[key])
        for key in ("allowed", "consumed", "remaining"):
            diff(f"budget.{key}", oid, a["budget"][key], b["budget"][key])
    return out


async def _emit(
    session: AsyncSession, agreement: Agreement, rows: Sequence[tuple[str, dict[str, Any]]], now_ms: int
) -> None:
    """Events into the outbox (`breach_events`), once: an id already there (the evaluator's) is kept as it is."""
    from sqlalchemy.dialects.postgresql import insert

    for objective_id, event in rows:
        await session.execute(
            insert(BreachEvent)
            .values(
                id=event["id"],
                objective_id=uuid.UUID(objective_id),
                agreement_id=agreement.id,
                customer=agreement.customer,
                type=event["type"],
                seq=0,
                time=from_ms(now_ms),
                event=event,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )


async def freeze(
    session: AsyncSession,
    agreement: Agreement,
    period: Period,
    now_ms: int,
    grace_ms: int,
    author: str,
    reason: str,
) -> dict[str, Any]:
    """Store the next version of the period's report and announce it: version 1 emits `accord.sla.met` /
    `accord.sla.breached` per objective (with data), a later one `accord.report.revised` with what changed.
    Callers hold the agreement's row lock (or the closer's advisory lock), so versions do not race."""
    from shared.events import period_judged_event, report_revised_event

    if now_ms < period.end_ms:
        raise Invalid(
            "The period is still open.",
            [
                {
                    "field": "path.period",
                    "reason": f"{period.label} ends at {_utc(period.end)}; only ended periods freeze",
                }
            ],
        )
    versions = await frozen_versions(session, agreement.id, period.label)
    report = await build_report(session, agreement, period, now_ms, grace_ms)
    version = versions[-1].version + 1 if versions else 1
    report["version"] = version
    report["state"] = "closed" if version == 1 else "revised"
    report["frozen_by"] = {"author": author, "reason": reason}
    session.add(
        PeriodReportRow(
            agreement_id=agreement.id,
            period=period.label,
            version=version,
            customer=agreement.customer,
            author=author,
            reason=reason,
            report=report,
        )
    )
    await session.flush()
    if version == 1:
        events = [
            (o["id"], period_judged_event(report, o, now_ms)) for o in report["objectives"] if o["met"] is not None
        ]
    else:
        changes = report_changes(versions[-1].report, report)
        events = [(str(agreement.id), report_revised_event(report, changes, author, reason, now_ms))]
    await _emit(session, agreement, events, now_ms)
    return report


def last_closable(kind: PeriodKind | Calendar, tz: str, now_ms: int, grace_ms: int) -> Period:
    """The latest period whose end plus the grace has passed at `now_ms`."""
    from shared.budget import period_bounds, previous_period

    return previous_period(period_bounds(kind, tz, now_ms - grace_ms), kind, tz)


async def close_due(session: AsyncSession, grace_ms: int, now_ms: int | None = None) -> list[tuple[uuid.UUID, str]]:
    """Close, in this transaction, the last ended period (end + grace passed) of every live agreement not yet closed;
    nothing when another closer holds the lock. Earlier periods are not closed retroactively."""
    from sqlalchemy import text

    if not await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": CLOSER_LOCK}):
        return []
    if now_ms is None:
        now_ms = to_ms(await repo.now(session))
    closed = []
    agreements = (await session.scalars(select(Agreement).where(Agreement.archived_at.is_(None)))).all()
    due = []
    for agreement in agreements:
        spec: AgreementSpec = agreement.spec
        due.append((agreement, last_closable(spec.reporting_period, spec.timezone, now_ms, grace_ms)))
    # One statement for what is closed already: the closer runs every 30 s in every api process.
    done = set(
        (
            await session.execute(
                select(PeriodReportRow.agreement_id, PeriodReportRow.period).where(
                    PeriodReportRow.version == 1, PeriodReportRow.period.in_({p.label for _, p in due})
                )
            )
        ).all()
    )
    first = dict(
        (
            await session.execute(
                select(AgreementRevision.agreement_id, func.min(AgreementRevision.valid_from)).group_by(
                    AgreementRevision.agreement_id
                )
            )
        ).all()
    )
    for agreement, period in due:
        began = first.get(agreement.id)
        if (agreement.id, period.label) in done or began is None or to_ms(began) > period.end_ms - 1:
            continue  # closed already, or the agreement did not exist yet
        try:
            async with session.begin_nested():  # one agreement's failure (e.g. terms stored before a new rule) ...
                await freeze(session, agreement, period, now_ms, grace_ms, "accord period closer", "period ended")
        except (AccordError, ValueError, LookupError):
            # ... does not hold up the others; it is retried next round, and logged each time.
            log.exception("closing %s of agreement %s failed", period.label, agreement.id)
            continue
        closed.append((agreement.id, period.label))
    return closed


# --- explain a number -----------------------------------------------------------------------------------


def _hours_around(points: Sequence[int]) -> list[Interval]:
    """Whole hours around each point: minute detail there answers any range that starts or ends at those points."""
    return merge_intervals((p // 60 * 60, p // 60 * 60 + 60) for p in points)


async def explain(
    session: AsyncSession, objective_id: uuid.UUID, at_ms: int | None, label: str | None, now_ms: int, grace_ms: int
) -> dict[str, Any]:
    """How an objective's figure was reached: at an instant (its window and burn-rate tiers) or over a reporting
    period (the report's figure and the credit tier). Window bounds in UTC and local time, the terms revision,
    the series summed, events counted and excluded by reason (each maintenance window by name, outside business
    hours, before the agreement was effective), and each formula with its numbers."""
    from shared.budget import CalendarWindow, burn_rate, credit_owed, window_bounds
    from shared.budget.exclusions import included_intervals
    from shared.budget.model import error_budget, tier_name
    from shared.budget.reports import judge_period, period_terms
    from shared.contract import business_hours, maintenance_exclusions
    from shared.series import series_name

    objective, agreement = await repo.get_objective(session, objective_id)
    revisions = await repo.all_revisions(session, agreement.id)
    period: Period | None = None
    if label is not None:
        period = period_of_label(label, agreement, now_ms)
        instant = min(now_ms, period.end_ms - 1)
    else:
        instant = now_ms if at_ms is None else at_ms
        if instant > now_ms:
            raise Invalid("No such instant.", [{"field": "query.at", "reason": "the instant lies in the future"}])
    revision = in_force_at(revisions, instant)
    if revision is None:
        raise NotFound(f"Agreement {agreement.id} did not exist at that instant.")
    document: AgreementDocument = revision.document
    stored = document.objective(objective_id)
    if stored is None:
        raise NotFound(f"Objective {objective_id} was not in force at that instant (revision {revision.revision}).")
    tz = document.timezone

    def prepare() -> tuple[
        ObjectiveTerms, int, int, int, list[tuple[str, str, list[Interval]]], list[Interval], list[Interval]
    ]:
        """The terms, window and exclusions by reason: CPU work (recurring rules), off the event loop."""
        terms = stored_terms(objective_id, document, stored)
        if period is not None:
            terms = period_terms(terms, document.reporting_period, tz)
            start, end = period.start, min(minute_of(now_ms) + 1, period.end)
        else:
            start, end = window_bounds(terms.window, instant)
        lo = min([start, *(end - t.long_minutes for t in terms.tiers)])
        # Exclusions by reason, each minute under the first that claims it (maintenance in the agreement's order).
        named: list[tuple[str, str, list[Interval]]] = []
        windows = maintenance_exclusions(document)
        entries = [m for m in document.maintenance if (m.rrule and m.duration) or (m.start and m.end)]
        for entry, excl in zip(entries, windows, strict=True):
            named.append(("maintenance", entry.reason, excluded_intervals([excl], start, end)))
        if document.effective_from is not None:
            eff = minute_of(to_ms(document.effective_from) - 1) + 1
            named.append(("before_effective", "before effective_from", [(start, min(end, eff))] if start < eff else []))
        hours = business_hours(document)
        if stored.business_hours_only and hours is not None:
            named.append(
                ("business_hours", "outside business hours and holidays", excluded_intervals([hours], start, end))
            )
        taken: list[Interval] = []
        claimed: list[tuple[str, str, list[Interval]]] = []
        for reason, name, spans in named:
            fresh = merge_intervals(piece for a, b in spans for piece in included_intervals(a, b, taken))
            claimed.append((reason, name, fresh))
            taken = merge_intervals([*taken, *spans])
        points = [
            start,
            end,
            *(end - t.long_minutes for t in terms.tiers),
            *(end - t.short_minutes for t in terms.tiers),
        ]
        # Minute detail at every exclusion edge the window and the tier windows ([lo, end)) can meet.
        edges = excluded_intervals(terms.exclusions, lo, end) if terms.exclusions else []
        points += [p for a, b in edges for p in (a, b)]
        points += [p for _, _, spans in claimed for a, b in spans for p in (a, b)]
        minutes = _hours_around(points)
        return terms, start, end, lo, claimed, taken, minutes

    terms, start, end, lo, claimed, taken, minutes = await asyncio.to_thread(prepare)
    key = objective.indicator_key
    group = series_group(terms)
    hour_cells, minute_cells = await repo.rolled_up(
        session, [(key, lo // 60, end // 60 + 1)], [(key, a, b) for a, b in minutes]
    )
    hours_of, minutes_of = hour_cells.get(key, {}), minute_cells.get(key, {})
    selected = [series for series in sorted({*hours_of, *minutes_of}) if selects(group, series)]
    per_series = {
        series: PlannedSource.of_columns(
            [hours_of[series]] if series in hours_of else [],
            [minutes_of[series]] if series in minutes_of else [],
            minutes,
        )
        for series in selected
    }
    if terms.budgeting.sliced:
        loaded = await repo.series_buckets(session, key, lo, end)
        source: CountSource = combine(loaded, group)
    else:
        source = PlannedSource.of_columns(
            [hours_of[s] for s in selected if s in hours_of],
            [minutes_of[s] for s in selected if s in minutes_of],
            minutes,
        )
    sources = list(per_series.values())

    def total_in(spans: Sequence[Interval], src: Sequence[CountSource]) -> tuple[int, int]:
        good = total = 0
        for a, b in spans:
            for s in src:
                c = s.range(a, b)
                good, total = good + c.good, total + c.total
        return good, total

    def compute() -> dict[str, Any]:
        from shared.budget import evaluate

        kept = included_intervals(start, end, taken)
        series_out = []
        for series, src in sorted(per_series.items(), key=lambda kv: series_name(kv[0])):
            g, t = total_in(kept, [src])
            labels, rule = series
            series_out.append({"series": series_name(series), "labels": dict(labels), "rule": rule or None,
                               "good": g, "total": t})  # fmt: skip
        excluded = []
        for reason, name, spans in claimed:
            g, t = total_in(spans, sources)
            excluded.append({"reason": reason, "name": name, "minutes": sum(b - a for a, b in spans),
                             "events": t, "good": g, "bad": t - g})  # fmt: skip
        budget = error_budget(terms.target)
        out: dict[str, Any] = {
            "series": series_out,
            "excluded": excluded,
        }
        if period is not None:
            tiers = [(t.below, t.credit_percent) for t in document.credit_tiers]
            fee = Fee(document.fee.amount, document.fee.currency) if document.fee is not None else None
            j = judge_period(terms, source, period, now_ms, tiers, fee)
            counts, sli_value = j.counts, j.compliance
            chosen = next(({"below": b, "credit_percent": c} for b, c in sorted(tiers) if sli_value is not None
                           and sli_value < b), None)  # fmt: skip
            out["credit"] = {
                "tiers": [{"below": b, "credit_percent": c} for b, c in tiers],
                "chosen": chosen,
                "credit_percent": credit_owed(sli_value, tiers),
                "formula": "the tier with the lowest `below` the compliance falls under; 0 when none",
                "amount": _money(j.credit_amount),
                "amount_formula": None if fee is None else f"{fee.amount} × {j.credit_percent:g} / 100, half up",
            }
            tier_rows: list[dict[str, Any]] = []
        else:
            ev = evaluate(terms, source, instant)
            counts, sli_value = ev.counts, ev.sli
            tier_rows = []
            for tier, reading in zip(terms.tiers, ev.tiers, strict=True):
                guard = f" and the long window has ≥ {terms.min_events} events" if tier.severity.value == "page" else ""
                tier_rows.append({
                    "name": tier.name, "severity": tier.severity.value, "factor": tier.factor,
                    "long_window": tier_name(tier.long_minutes), "short_window": tier_name(tier.short_minutes),
                    "long_burn_rate": reading.long_burn_rate, "short_burn_rate": reading.short_burn_rate,
                    "burning": reading.burning,
                    "formula": f"(bad / total) / (1 − target) per window; burning when both exceed the factor{guard}",
                })  # fmt: skip
        allowed = budget * counts.total
        out["formulas"] = {
            "sli": {"formula": "good / total", "good": counts.good, "total": counts.total, "value": sli_value},
            "budget_allowed": {"formula": "(1 − target) × total", "target": terms.target, "total": counts.total,
                               "value": allowed},
            "budget_consumed": {"formula": "bad / allowed", "bad": counts.bad, "allowed": allowed,
                                "value": counts.bad / allowed if allowed else 0.0},
            "burn_rate": {"formula": "(bad / total) / (1 − target)", "value": burn_rate(counts, terms.target)},
        }  # fmt: skip
        out["tiers"] = tier_rows
        return out

    body = await asyncio.to_thread(compute)
    window = (
        "period " + period.label
        if period is not None
        else (terms.window.label if isinstance(terms.window, CalendarWindow) else stored.window)
    )
    return {
        "objective": {"id": str(objective_id), "name": stored.name, "indicator": stored.indicator},
        "agreement": {"id": str(agreement.id), "name": document.name, "timezone": tz},
        "at": from_ms(instant).isoformat().replace("+00:00", "Z"),
        "terms": {
            "revision": revision.revision,
            "valid_from": revision.valid_from.isoformat(),
            "target": terms.target,
            "budgeting": terms.budgeting.value,
            "rule": TERMS_RULE if period is not None else INSTANT_RULE,
        },
        "window": {
            "kind": window,
            "start": _utc(start),
            "end": _utc(end),
            "start_local": _local(start, tz),
            "end_local": _local(end, tz),
            "minutes": end - start,
            "rule": "buckets whose minute starts in [start, end); excluded minutes are left out",
        },
        **body,
    }
