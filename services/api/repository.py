"""Queries of the api; routes call these, nothing here commits (the unit of work does)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import CONFIG_CHANNEL, Agreement, BreachEvent, Indicator, Objective, ObjectiveStatus
from shared.errors import Conflict, Invalid, NotFound


async def announce_config_change(session: AsyncSession, what: str) -> None:
    """NOTIFY listeners (ingest, evaluator); delivered only if and when the transaction commits."""
    await session.execute(text("SELECT pg_notify(:channel, :what)"), {"channel": CONFIG_CHANNEL, "what": what})


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode()


def decode_cursor(cursor: str) -> list[Any]:
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, orjson.JSONDecodeError):
        raise Invalid("Invalid cursor.", [{"field": "cursor", "reason": "not a cursor this api issued"}]) from None
    if not isinstance(parts, list):
        raise Invalid("Invalid cursor.", [{"field": "cursor", "reason": "not a cursor this api issued"}])
    return parts


# --- indicators -------------------------------------------------------------------------------------


async def create_indicator(session: AsyncSession, key: str, kind: str, unit: str | None, description: str) -> Indicator:
    if await session.get(Indicator, key) is not None:
        raise Conflict(f"Indicator {key!r} exists already.")
    indicator = Indicator(key=key, kind=kind, unit=unit, description=description)
    session.add(indicator)
    await session.flush()
    await session.refresh(indicator)
    await announce_config_change(session, f"indicator:{key}")
    return indicator


async def get_indicator(session: AsyncSession, key: str) -> Indicator:
    indicator = await session.get(Indicator, key)
    if indicator is None:
        raise NotFound(f"No indicator {key!r}.")
    return indicator


async def list_indicators(session: AsyncSession, after: str | None, limit: int) -> Sequence[Indicator]:
    query = select(Indicator).order_by(Indicator.key).limit(limit)
    if after is not None:
        query = query.where(Indicator.key > after)
    return (await session.scalars(query)).all()


# --- agreements -------------------------------------------------------------------------------------


async def missing_indicators(session: AsyncSession, keys: set[str]) -> set[str]:
    found = set((await session.scalars(select(Indicator.key).where(Indicator.key.in_(keys)))).all())
    return keys - found


async def create_agreement(
    session: AsyncSession, fields: dict[str, Any], objectives: list[dict[str, Any]]
) -> uuid.UUID:
    agreement = Agreement(id=uuid.uuid4(), **fields)
    session.add(agreement)
    await session.flush()
    for o in objectives:
        session.add(Objective(id=uuid.uuid4(), agreement_id=agreement.id, **o))
    await session.flush()
    await announce_config_change(session, f"agreement:{agreement.id}")
    return agreement.id


async def get_agreement(session: AsyncSession, agreement_id: uuid.UUID) -> tuple[Agreement, Sequence[Objective]]:
    agreement = await session.get(Agreement, agreement_id)
    if agreement is None:
        raise NotFound(f"No agreement {agreement_id}.")
    objectives = (
        await session.scalars(select(Objective).where(Objective.agreement_id == agreement_id).order_by(Objective.name))
    ).all()
    return agreement, objectives


async def list_agreements(
    session: AsyncSession, *, customer: str | None, provider: str | None, after: list[Any] | None, limit: int
) -> Sequence[Agreement]:
    query = select(Agreement).where(Agreement.archived_at.is_(None)).order_by(Agreement.created_at, Agreement.id)
    if customer is not None:
        query = query.where(Agreement.customer == customer)
    if provider is not None:
        query = query.where(Agreement.provider == provider)
    if after is not None:
        created, last_id = datetime.fromisoformat(after[0]), uuid.UUID(after[1])
        query = query.where(
            or_(Agreement.created_at > created, and_(Agreement.created_at == created, Agreement.id > last_id))
        )
    return (await session.scalars(query.limit(limit))).all()


# --- status and events ------------------------------------------------------------------------------


async def objective_with_status(
    session: AsyncSession, objective_id: uuid.UUID
) -> tuple[Objective, ObjectiveStatus | None]:
    objective = await session.get(Objective, objective_id)
    if objective is None:
        raise NotFound(f"No objective {objective_id}.")
    return objective, await session.get(ObjectiveStatus, objective_id)


async def statuses_of(session: AsyncSession, objective_ids: list[uuid.UUID]) -> dict[uuid.UUID, ObjectiveStatus]:
    rows = (await session.scalars(select(ObjectiveStatus).where(ObjectiveStatus.objective_id.in_(objective_ids)))).all()
    return {r.objective_id: r for r in rows}


async def list_breach_events(
    session: AsyncSession,
    *,
    agreement_id: uuid.UUID | None,
    objective_id: uuid.UUID | None,
    customer: str | None,
    event_type: str | None,
    since: datetime | None,
    until: datetime | None,
    after: list[Any] | None,
    limit: int,
) -> Sequence[BreachEvent]:
    query = select(BreachEvent).order_by(BreachEvent.time, BreachEvent.id)
    for column, value in (
        (BreachEvent.agreement_id, agreement_id),
        (BreachEvent.objective_id, objective_id),
        (BreachEvent.customer, customer),
        (BreachEvent.type, event_type),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(BreachEvent.time >= since)
    if until is not None:
        query = query.where(BreachEvent.time < until)
    if after is not None:
        t, last = datetime.fromisoformat(after[0]), str(after[1])
        query = query.where(or_(BreachEvent.time > t, and_(BreachEvent.time == t, BreachEvent.id > last)))
    return (await session.scalars(query.limit(limit))).all()
