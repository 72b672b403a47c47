"""Compliance reports: per agreement and reporting period, a customer's statement, and recomputes (docs/reports.md).

Each answer is JSON, CSV (one row per objective, stable columns) or printable HTML, chosen by `?format=`
or else by `Accept`; all three are rendered from the same document.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from services.api import repository as repo
from services.api.deps import Session, State
from services.api.params import INSTANT, CustomerPath
from services.api.report_html import to_html
from services.api.reports import (
    explain,
    freeze,
    frozen_versions,
    period_of_label,
    report_of,
    to_csv,
)
from services.api.schemas import Name, QueryInstant, Reason
from shared.budget import PeriodKind, period_bounds, previous_period
from shared.budget.periods import Calendar
from shared.errors import Invalid, NotFound
from shared.timeutil import from_minute, to_ms

router = APIRouter(tags=["reports"])

Format = Annotated[
    Literal["json", "csv", "html"] | None,
    Query(description="json, csv or html; without it the `Accept` header chooses (JSON by default)."),
]
PeriodPath = Annotated[str, Field(max_length=24)]  # 2026-11, or an anchored 2026-11-28T12:00+12M
FORMATS = ("csv", "html", "json")
MEDIA = {"csv": "text/csv", "html": "text/html", "json": "application/json"}


def chosen_format(request: Request, fmt: str | None) -> str:
    if fmt is not None:
        return fmt
    accept = request.headers.get("accept", "")
    best: tuple[float, int, str] = (0.0, 0, "json")
    for position, part in enumerate(accept.split(",")):
        media, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            name, _, value = p.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        for key, wanted in MEDIA.items():
            if media.strip().lower() == wanted and (q, -position) > best[:2]:
                best = (q, -position, key)
    return best[2]


def render(reports: list[dict[str, Any]], fmt: str, title: str, body: Any, filename: str) -> Response:
    if fmt == "csv":
        return Response(
            to_csv(reports),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}.csv"', "Vary": "Accept"},
        )
    if fmt == "html":
        return HTMLResponse(to_html(reports, title), headers={"Vary": "Accept"})
    return JSONResponse(body, headers={"Vary": "Accept"})


def _period_param(period: str) -> str:
    if len(period) > 24:  # 2026-Q4, 2026-W48, 2026-11, or an anchored calendar's 2026-11-28T12:00+12M
        raise Invalid("No such reporting period.", [{"field": "path.period", "reason": "too long"}])
    return period


@router.get("/v1/agreements/{agreement_id}/reports", summary="Reporting periods of an agreement, newest first")
async def list_reports(
    agreement_id: uuid.UUID,
    session: Session,
    state: State,
    limit: Annotated[int, Query(ge=1, le=240, description="How many periods (1 to 240).")] = 12,
) -> dict[str, Any]:
    """The agreement's periods from the current (open) one back to its first, each `open` (not ended), `ended`
    (awaiting its close, end + ACCORD_API_REPORT_GRACE_SECONDS), `closed` (frozen, version 1) or `revised`
    (recomputed: versions lists them all)."""
    await repo.read_snapshot(session)
    agreement = await repo.get_agreement_row(session, agreement_id)
    now_ms = to_ms(await repo.now(session))
    grace_ms = state.settings.report_grace_seconds * 1000
    revisions = await repo.all_revisions(session, agreement.id)
    first_ms = min(to_ms(r.valid_from) for r in revisions) if revisions else now_ms
    kind: PeriodKind | Calendar = agreement.spec.reporting_period
    tz: str = agreement.spec.timezone
    period = period_bounds(kind, tz, now_ms)
    items: list[dict[str, Any]] = []
    while len(items) < limit and period.end_ms > first_ms:
        versions = await frozen_versions(session, agreement.id, period.label)
        if versions:
            status = "revised" if len(versions) > 1 else "closed"
        else:
            status = "open" if now_ms < period.end_ms else "ended" if now_ms < period.end_ms + grace_ms else "closing"
        items.append(
            {
                "period": period.label,
                "start": from_minute(period.start).isoformat(),
                "end": from_minute(period.end).isoformat(),
                "state": status,
                "versions": [
                    {
                        "version": v.version,
                        "author": v.author,
                        "reason": v.reason,
                        "created_at": v.created_at.isoformat(),
                    }
                    for v in versions
                ],
                "href": f"/v1/agreements/{agreement.id}/reports/{period.label}",
            }
        )
        period = previous_period(period, kind, tz)
    return {"agreement_id": str(agreement.id), "reporting_period": kind.value, "timezone": tz, "items": items}


@router.get(
    "/v1/agreements/{agreement_id}/reports/{period}",
    summary="An agreement's report for one period (JSON, CSV or HTML)",
    responses={200: {"content": {"text/csv": {}, "text/html": {}}}},
)
async def agreement_report(
    agreement_id: uuid.UUID,
    period: str,
    request: Request,
    session: Session,
    state: State,
    format: Format = None,
    version: Annotated[int | None, Query(ge=1, le=1_000_000, description="A frozen version (default: latest).")] = None,
) -> Response:
    """Per objective: compliance, met or missed, good/total, budget, minutes excluded, worst day, per-day
    compliance, breach events; per agreement: the credit owed and the revisions in force. A closed period
    answers its frozen report (the latest version, or `version`); an open one is computed now."""
    await repo.read_snapshot(session)
    agreement = await repo.get_agreement_row(session, agreement_id)
    now_ms = to_ms(await repo.now(session))
    found = period_of_label(_period_param(period), agreement, now_ms)
    report = await report_of(session, agreement, found, now_ms, state.settings.report_grace_seconds * 1000, version)
    fmt = chosen_format(request, format)
    return render([report], fmt, f"{agreement.name} {found.label}", report, f"report-{found.label}")


@router.get(
    "/v1/customers/{customer:path}/reports/{period}",
    summary="A customer's statement for one period: every agreement's report and the credit owed",
    responses={200: {"content": {"text/csv": {}, "text/html": {}}}},
)
async def customer_report(
    customer: CustomerPath,
    period: str,
    request: Request,
    session: Session,
    state: State,
    format: Format = None,
) -> Response:
    """Every agreement (not archived) of the customer that reports on this kind of period, each in its own
    timezone; credit amounts are totalled per currency."""
    await repo.read_snapshot(session)
    agreements = await repo.customer_agreements(session, customer)
    if not agreements:
        raise NotFound(f"No agreement (not archived) with customer {customer!r}.")
    now_ms = to_ms(await repo.now(session))
    grace_ms = state.settings.report_grace_seconds * 1000
    reports, skipped = [], []
    label = _period_param(period)
    for agreement in agreements:
        try:
            found = period_of_label(label, agreement, now_ms)
        except Invalid as exc:
            skipped.append(
                {"agreement_id": str(agreement.id), "reason": str(exc.extra.get("errors", [{}])[0].get("reason", ""))}
            )
            continue
        try:
            reports.append(await report_of(session, agreement, found, now_ms, grace_ms, None))
        except NotFound:
            skipped.append({"agreement_id": str(agreement.id), "reason": "the agreement did not exist then"})
    if not reports:
        raise Invalid(
            "No such reporting period.",
            [{"field": "path.period", "reason": "; ".join(s["reason"] for s in skipped)[:500]}],
        )
    totals: dict[str, str] = {}
    from decimal import Decimal

    for r in reports:
        s = r["summary"]
        if s["credit_amount"] is not None:
            totals[s["currency"]] = str(Decimal(totals.get(s["currency"], "0")) + Decimal(s["credit_amount"]))
    body = {"customer": customer, "period": label, "credit_totals": totals, "agreements": reports, "skipped": skipped}
    fmt = chosen_format(request, format)
    return render(reports, fmt, f"{customer} {label}", body, f"statement-{label}")


class RecomputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    author: Name
    reason: Reason = ""


@router.post(
    "/v1/agreements/{agreement_id}/reports/{period}/recompute",
    summary="Freeze a new version of an ended period's report (late data, corrected terms)",
    status_code=201,
)
async def recompute_report(
    agreement_id: uuid.UUID, period: str, body: RecomputeIn, session: Session, state: State
) -> dict[str, Any]:
    """Version N + 1 from the counts and terms as they are now (version 1 when the period was never closed);
    every version stays readable (`?version=`), and `accord.report.revised` lists what changed."""
    agreement = await repo.lock_agreement(session, agreement_id)
    now_ms = to_ms(await repo.now(session))
    found = period_of_label(_period_param(period), agreement, now_ms)
    return await freeze(
        session, agreement, found, now_ms, state.settings.report_grace_seconds * 1000, body.author, body.reason
    )


@router.get("/v1/objectives/{objective_id}/explain", summary="How an objective's figure was reached")
async def explain_objective(
    objective_id: uuid.UUID,
    session: Session,
    state: State,
    at: Annotated[
        QueryInstant | None, Query(description=f"Explain the window at this instant (default now). {INSTANT}")
    ] = None,
    period: Annotated[
        str | None, Query(max_length=24, description="Explain the report's figure for this period (e.g. 2026-11).")
    ] = None,
) -> dict[str, Any]:
    """Window bounds (UTC and the agreement's timezone), the terms revision, the series summed, the events
    counted and excluded by reason (each maintenance window by name, outside business hours, before the agreement
    was effective), each formula with its numbers, the burn rate per tier and, for a period, the credit tier."""
    await repo.read_snapshot(session)
    now_ms = to_ms(await repo.now(session))
    return await explain(
        session,
        objective_id,
        None if at is None else to_ms(at),
        period,
        now_ms,
        state.settings.report_grace_seconds * 1000,
    )
