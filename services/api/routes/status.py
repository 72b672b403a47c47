"""Live status of objectives and agreements, and the breach events decided so far."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.api import pagination
from services.api import repository as repo
from services.api.deps import Session, State
from services.api.params import INSTANT, Cursor, CustomerPath, Limit, Text
from services.api.readings import agreement_statuses, readings, status_out
from services.api.schemas import (
    AgreementStatusOut,
    BreachEventOut,
    CustomerStatusOut,
    ObjectiveStatusOut,
    Page,
    QueryInstant,
)
from shared.errors import NotFound

router = APIRouter(tags=["status"])


@router.get("/v1/objectives/{objective_id}/status", summary="Status of one objective")
async def objective_status(objective_id: uuid.UUID, session: Session) -> ObjectiveStatusOut:
    """SLI, budget (fraction and units, time left), burn rate per tier window and alert states.

    Recomputed from the evaluator's stored counts at the instant it last evaluated (event time),
    under the terms it evaluated with (the agreement revision its reading names).
    """
    await repo.read_snapshot(session)
    _, found = await repo.status_inputs(session, objective_id=objective_id)
    if not found:
        raise NotFound(f"No objective {objective_id}.")
    (reading,) = await readings(session, found)
    return status_out(reading)


@router.get("/v1/agreements/{agreement_id}/status", summary="Status of every objective of an agreement")
async def agreement_status(agreement_id: uuid.UUID, session: Session) -> AgreementStatusOut:
    await repo.read_snapshot(session)
    agreements, found = await repo.status_inputs(session, agreement_id=agreement_id)
    if not agreements:
        raise NotFound(f"No agreement {agreement_id}.")
    (out,) = await agreement_statuses(session, agreements, found)
    return out


@router.get("/v1/customers/{customer:path}/status", summary="Status of every objective of a customer's agreements")
async def customer_status(customer: CustomerPath, session: Session) -> CustomerStatusOut:
    """Every agreement of the customer that is not archived, with the status of each objective."""
    await repo.read_snapshot(session)
    agreements, found = await repo.status_inputs(session, customer=customer)
    if not agreements:
        raise NotFound(f"No agreement (not archived) with customer {customer!r}.")
    out = await agreement_statuses(session, agreements, found)
    objectives = [o for a in out for o in a.objectives]
    return CustomerStatusOut(
        customer=customer,
        objectives=len(objectives),
        exhausted=sum(o.alerts.exhausted for o in objectives),
        firing=sum(bool(o.alerts.firing) for o in objectives),
        agreements=out,
    )


@router.get("/v1/breaches", summary="Breach events, oldest first")
async def list_breaches(
    session: Session,
    state: State,
    agreement: uuid.UUID | None = None,
    objective: uuid.UUID | None = None,
    customer: Text = None,
    type: Annotated[Text, Query(examples=["accord.budget.exhausted"])] = None,
    since: Annotated[QueryInstant | None, Query(description=f"Events at or after this instant. {INSTANT}")] = None,
    until: Annotated[QueryInstant | None, Query(description=f"Events before this instant. {INSTANT}")] = None,
    cursor: Cursor = None,
    limit: Limit = None,
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
        after=pagination.time_id_after(cursor, str),
        limit=size + 1,
    )
    page, next_cursor = pagination.page(rows, size, lambda r: (r.time.isoformat(), r.id))
    items = [
        BreachEventOut(
            id=r.id, type=r.type, objective_id=r.objective_id, agreement_id=r.agreement_id, customer=r.customer,
            time=r.time, published=r.published_at is not None, event=r.event,
        )
        for r in page
    ]  # fmt: skip
    return Page(items=items, next_cursor=next_cursor)
