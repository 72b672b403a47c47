"""Live status of objectives and agreements, and the breach events decided so far."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Query

from services.api import repository as repo
from services.api.deps import Session, State
from services.api.schemas import (
    AgreementStatusOut,
    BreachEventOut,
    Budget,
    ObjectiveStatusOut,
    Page,
    TierStatus,
)
from shared.db import Objective, ObjectiveStatus

router = APIRouter(tags=["status"])


def status_out(objective: Objective, status: ObjectiveStatus | None) -> ObjectiveStatusOut:
    """The stored reading of an objective; before any measurement, zero events and a full budget."""
    good = status.good if status else 0
    total = status.total if status else 0
    consumed = status.budget_consumed if status else 0.0
    return ObjectiveStatusOut(
        objective_id=objective.id,
        agreement_id=objective.agreement_id,
        name=objective.name,
        indicator=objective.indicator_key,
        target=objective.target,
        window=objective.window,
        sli=status.sli if status else None,
        good=good,
        total=total,
        budget=Budget(
            allowed_events=(1 - objective.target) * total,
            consumed_events=total - good,
            consumed=consumed,
            remaining=1 - consumed,
        ),
        burn_rate=status.burn_rate if status else None,
        tiers=[TierStatus(**t) for t in status.tiers] if status else [],
        exhausted=bool(status.alert_state.get("exhausted")) if status else False,
        last_measurement_at=status.last_measurement_at if status else None,
        evaluated_at=status.evaluated_at if status else None,
    )


@router.get("/v1/objectives/{objective_id}/status", summary="Status of one objective")
async def objective_status(objective_id: uuid.UUID, session: Session) -> ObjectiveStatusOut:
    objective, status = await repo.objective_with_status(session, objective_id)
    return status_out(objective, status)


@router.get("/v1/agreements/{agreement_id}/status", summary="Status of every objective of an agreement")
async def agreement_status(agreement_id: uuid.UUID, session: Session) -> AgreementStatusOut:
    agreement = await repo.get_agreement_row(session, agreement_id)
    objectives = await repo.agreement_objectives(session, agreement_id)
    statuses = await repo.statuses_of(session, [o.id for o in objectives])
    return AgreementStatusOut(
        agreement_id=agreement.id,
        customer=agreement.customer,
        objectives=[status_out(o, statuses.get(o.id)) for o in objectives],
    )


@router.get("/v1/breaches", summary="Breach events, oldest first")
async def list_breaches(
    session: Session,
    state: State,
    agreement: uuid.UUID | None = None,
    objective: uuid.UUID | None = None,
    customer: str | None = None,
    type: str | None = Query(default=None, examples=["accord.budget.exhausted"]),
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int | None = Query(default=None, ge=1, le=1000),
) -> Page[BreachEventOut]:
    size = limit or state.settings.page_size
    rows = await repo.list_breach_events(
        session,
        agreement_id=agreement,
        objective_id=objective,
        customer=customer,
        event_type=type,
        since=since,
        until=until,
        after=repo.decode_cursor(cursor) if cursor else None,
        limit=size + 1,
    )
    items = [
        BreachEventOut(
            id=r.id, type=r.type, objective_id=r.objective_id, agreement_id=r.agreement_id, customer=r.customer,
            time=r.time, published=r.published_at is not None, event=r.event,
        )
        for r in rows[:size]
    ]  # fmt: skip
    last = rows[size - 1] if len(rows) > size else None
    return Page(items=items, next_cursor=repo.encode_cursor(last.time.isoformat(), last.id) if last else None)
