"""Breach events: the outbox the evaluator writes, read oldest first."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.pagination import after as keyset_after
from shared.db import BreachEvent


async def list_breach_events(
    session: AsyncSession,
    *,
    agreement_id: uuid.UUID | None,
    objective_id: uuid.UUID | None,
    customer: str | None,
    event_type: str | None,
    since: datetime | None,
    until: datetime | None,
    after: tuple[datetime, str] | None,
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
        query = query.where(keyset_after(BreachEvent.time, BreachEvent.id, after))
    return (await session.scalars(query.limit(limit))).all()
