"""Objectives across agreements (read side; they change through their agreement, see agreements)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.api import pagination
from services.api import repository as repo
from services.api.agreement_changes import objective_out
from services.api.deps import Session, State
from services.api.params import Cursor, LabelFilters, Limit, Text
from services.api.schemas import ObjectiveOut, Page

router = APIRouter(prefix="/v1/objectives", tags=["objectives"])


@router.get("", summary="List objectives of current revisions, oldest first")
async def list_objectives(
    session: Session,
    state: State,
    labels: LabelFilters,
    agreement: uuid.UUID | None = None,
    customer: Text = None,
    provider: Text = None,
    indicator: Text = None,
    archived: Annotated[bool, Query(description="Include objectives of archived agreements.")] = False,
    cursor: Cursor = None,
    limit: Limit = None,
) -> Page[ObjectiveOut]:
    size = limit or state.settings.page_size
    rows = await repo.list_objectives(
        session,
        agreement_id=agreement,
        customer=customer,
        provider=provider,
        indicator=indicator,
        labels=labels,
        archived=archived,
        after=pagination.time_id_after(cursor, uuid.UUID),
        limit=size + 1,
    )
    page, next_cursor = pagination.page(rows, size, lambda row: (row[0].created_at.isoformat(), str(row[0].id)))
    items = [objective_out(a.id, a.spec, {"id": str(o.id), **o.spec}) for o, a in page]
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{objective_id}", summary="Get an objective (current revision of its agreement)")
async def get_objective(objective_id: uuid.UUID, session: Session) -> ObjectiveOut:
    objective, agreement = await repo.get_objective(session, objective_id)
    return objective_out(agreement.id, agreement.spec, {"id": str(objective.id), **objective.spec})
