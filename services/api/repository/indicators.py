"""Indicators: the registry ingest validates against."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.repository.session import announce_config_change
from shared.db import Agreement, Indicator, Objective
from shared.errors import Conflict, NotFound


async def create_indicator(session: AsyncSession, key: str, kind: str, unit: str | None, description: str) -> Indicator:
    if await session.get(Indicator, key) is not None:
        raise Conflict(f"Indicator {key!r} exists already.")
    indicator = Indicator(key=key, kind=kind, unit=unit, description=description)
    session.add(indicator)
    await session.flush()
    await session.refresh(indicator)
    await announce_config_change(session, f"indicator:{key}")
    return indicator


async def get_indicator(session: AsyncSession, key: str, *, lock: bool = False) -> Indicator:
    indicator = await session.get(Indicator, key, with_for_update=lock)
    if indicator is None:
        raise NotFound(f"No indicator {key!r}.")
    return indicator


async def indicator_in_use(session: AsyncSession, key: str) -> bool:
    """Whether an objective of an agreement that is not archived uses the indicator."""
    query = select(
        exists().where(
            Objective.indicator_key == key, Objective.agreement_id == Agreement.id, Agreement.archived_at.is_(None)
        )
    )
    return bool(await session.scalar(query))


async def update_indicator(session: AsyncSession, key: str, changes: dict[str, Any]) -> Indicator:
    indicator = await get_indicator(session, key, lock=True)
    if indicator.archived_at is not None:
        raise Conflict(f"Indicator {key!r} is archived.")
    if "kind" in changes and changes["kind"] != indicator.kind and await indicator_in_use(session, key):
        raise Conflict(f"Indicator {key!r} is used by objectives; its kind cannot change.")
    for name, value in changes.items():
        setattr(indicator, name, value)
    indicator.updated_at = await session.scalar(select(func.clock_timestamp()))  # type: ignore[assignment]
    await session.flush()
    await announce_config_change(session, f"indicator:{key}")
    return indicator


async def archive_indicator(session: AsyncSession, key: str) -> Indicator:
    indicator = await get_indicator(session, key, lock=True)
    if indicator.archived_at is None:
        if await indicator_in_use(session, key):
            raise Conflict(f"Indicator {key!r} is used by objectives of agreements that are not archived.")
        now = await session.scalar(select(func.clock_timestamp()))
        indicator.archived_at = now
        indicator.updated_at = now  # type: ignore[assignment]
        await session.flush()
        await announce_config_change(session, f"indicator:{key}")
    return indicator


async def list_indicators(
    session: AsyncSession, *, kind: str | None, archived: bool, after: str | None, limit: int
) -> Sequence[Indicator]:
    query = select(Indicator).order_by(Indicator.key).limit(limit)
    if not archived:
        query = query.where(Indicator.archived_at.is_(None))
    if kind is not None:
        query = query.where(Indicator.kind == kind)
    if after is not None:
        query = query.where(Indicator.key > after)
    return (await session.scalars(query)).all()


async def indicator_kinds(session: AsyncSession, keys: Iterable[str]) -> dict[str, str]:
    """Kinds of the named indicators that exist and are not archived."""
    rows = await session.execute(
        select(Indicator.key, Indicator.kind).where(Indicator.key.in_(set(keys)), Indicator.archived_at.is_(None))
    )
    return {key: kind for key, kind in rows.all()}
