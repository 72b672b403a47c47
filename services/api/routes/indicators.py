"""Indicators: the SLI streams monitoring systems report on."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.api import pagination
from services.api import repository as repo
from services.api.deps import Session, State
from services.api.params import Cursor, IndicatorKey, Limit
from services.api.schemas import IndicatorIn, IndicatorOut, IndicatorPatch, Page
from shared.db import Indicator
from shared.errors import Invalid

router = APIRouter(prefix="/v1/indicators", tags=["indicators"])


def _out(i: Indicator) -> IndicatorOut:
    return IndicatorOut(
        key=i.key, kind=i.kind, unit=i.unit, description=i.description, created_at=i.created_at,
        updated_at=i.updated_at, archived_at=i.archived_at,
    )  # fmt: skip


@router.post("", status_code=201, summary="Register an indicator", responses={409: {"description": "Key taken."}})
async def create_indicator(body: IndicatorIn, session: Session) -> IndicatorOut:
    return _out(await repo.create_indicator(session, body.key, body.kind, body.unit, body.description))


@router.get("", summary="List indicators by key")
async def list_indicators(
    session: Session,
    state: State,
    kind: Literal["ratio", "threshold"] | None = None,
    archived: Annotated[bool, Query(description="Include archived indicators.")] = False,
    cursor: Cursor = None,
    limit: Limit = None,
) -> Page[IndicatorOut]:
    size = limit or state.settings.page_size
    after = pagination.key_after(cursor)
    rows = await repo.list_indicators(session, kind=kind, archived=archived, after=after, limit=size + 1)
    page, next_cursor = pagination.page(rows, size, lambda i: (i.key,))
    return Page(items=[_out(i) for i in page], next_cursor=next_cursor)


@router.get("/{key}", summary="Get an indicator")
async def get_indicator(key: IndicatorKey, session: Session) -> IndicatorOut:
    return _out(await repo.get_indicator(session, key))


@router.patch(
    "/{key}",
    summary="Change an indicator's unit, description or (while unused) kind",
    responses={409: {"description": "Archived, or the kind of an indicator objectives use."}},
)
async def update_indicator(key: IndicatorKey, body: IndicatorPatch, session: Session) -> IndicatorOut:
    changes = body.model_dump(include=body.model_fields_set)
    for name in ("kind", "description"):
        if name in changes and changes[name] is None:
            raise Invalid("Invalid indicator change.", [{"field": name, "reason": "cannot be null"}])
    return _out(await repo.update_indicator(session, key, changes))


@router.delete(
    "/{key}",
    summary="Archive an indicator (no new objectives may use it)",
    responses={409: {"description": "Objectives of agreements that are not archived use it."}},
)
async def archive_indicator(key: IndicatorKey, session: Session) -> IndicatorOut:
    return _out(await repo.archive_indicator(session, key))
