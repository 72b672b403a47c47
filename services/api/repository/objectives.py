"""Objectives of current revisions (rows `agreements.save_revision` keeps in step), read across agreements."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.pagination import after as keyset_after
from services.api.repository.agreements import agreement_filters
from shared.db import Agreement, Objective
from shared.errors import NotFound


async def list_objectives(
    session: AsyncSession,
    *,
    agreement_id: uuid.UUID | None,
    customer: str | None,
    provider: str | None,
    indicator: str | None,
    labels: dict[str, str],
    archived: bool,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[tuple[Objective, Agreement]]:
    """Objectives of current revisions (oldest first) with their agreement."""
    query = select(Objective, Agreement).join(Agreement, Agreement.id == Objective.agreement_id)
    query = query.order_by(Objective.created_at, Objective.id)
    if agreement_id is not None:
        query = query.where(Objective.agreement_id == agreement_id)
    if not archived:
        query = query.where(Agreement.archived_at.is_(None))
    query = agreement_filters(query, customer=customer, provider=provider, indicator=None, labels=labels)
    if indicator is not None:
        query = query.where(Objective.indicator_key == indicator)
    if after is not None:
        query = query.where(keyset_after(Objective.created_at, Objective.id, after))
    return [(o, a) for o, a in (await session.execute(query.limit(limit))).all()]


async def get_objective(session: AsyncSession, objective_id: uuid.UUID) -> tuple[Objective, Agreement]:
    row = (
        await session.execute(
            select(Objective, Agreement)
            .join(Agreement, Agreement.id == Objective.agreement_id)
            .where(Objective.id == objective_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"No objective {objective_id}.")
    return row[0], row[1]
