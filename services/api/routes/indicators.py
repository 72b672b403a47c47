"""Indicators: the SLI streams monitoring systems report on."""

from __future__ import annotations

from fastapi import APIRouter, Query

from services.api import repository as repo
from services.api.deps import Session, State
from services.api.schemas import IndicatorIn, IndicatorOut, Page
from shared.db import Indicator

router = APIRouter(prefix="/v1/indicators", tags=["indicators"])


def _out(i: Indicator) -> IndicatorOut:
    return IndicatorOut(key=i.key, kind=i.kind, unit=i.unit, description=i.description, created_at=i.created_at)


@router.post("", status_code=201, summary="Register an indicator")
async def create_indicator(body: IndicatorIn, session: Session) -> IndicatorOut:
    return _out(await repo.create_indicator(session, body.key, body.kind, body.unit, body.description))


@router.get("", summary="List indicators")
async def list_indicators(
    session: Session, state: State, cursor: str | None = None, limit: int | None = Query(default=None, ge=1, le=1000)
) -> Page[IndicatorOut]:
    size = limit or state.settings.page_size
    after = repo.decode_cursor(cursor)[0] if cursor else None
    rows = await repo.list_indicators(session, after, size + 1)
    more = len(rows) > size
    items = [_out(i) for i in rows[:size]]
    return Page(items=items, next_cursor=repo.encode_cursor(items[-1].key) if more else None)


@router.get("/{key}", summary="Get an indicator")
async def get_indicator(key: str, session: Session) -> IndicatorOut:
    return _out(await repo.get_indicator(session, key))
