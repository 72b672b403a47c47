"""What the evaluator wrote, read for status, history and metrics: statuses, watermarks, minute buckets."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Agreement, IndicatorState, Objective, ObjectiveStatus
from shared.history import Bucket
from shared.series import SeriesKey, series_key


async def statuses_of(session: AsyncSession, objective_ids: list[uuid.UUID]) -> dict[uuid.UUID, ObjectiveStatus]:
    rows = (await session.scalars(select(ObjectiveStatus).where(ObjectiveStatus.objective_id.in_(objective_ids)))).all()
    return {r.objective_id: r for r in rows}


async def watermarks(session: AsyncSession, indicators: Iterable[str]) -> dict[str, int]:
    """The evaluator's event-time watermark (ms) of each indicator it has seen."""
    rows = await session.execute(
        select(IndicatorState.indicator_key, IndicatorState.watermark_ms).where(
            IndicatorState.indicator_key.in_(set(indicators))
        )
    )
    return {key: watermark for key, watermark in rows.all()}


async def series_buckets(session: AsyncSession, indicator: str, start: int, end: int) -> dict[SeriesKey, list[Bucket]]:
    """The stored minute buckets of every series of `indicator` with start <= minute < end.

    A 400-day window is over half a million rows per series: each series comes back as three arrays
    (one row), read by asyncpg on the session's own connection (same snapshot) in a fraction of the
    time row-by-row ORM results take, so the event loop is not held for seconds.
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    rows = await driver.fetch(
        """
        SELECT series, array_agg(minute ORDER BY minute), array_agg(good ORDER BY minute),
               array_agg(total ORDER BY minute)
        FROM series_buckets
        WHERE indicator_key = $1 AND minute >= $2 AND minute < $3
        GROUP BY series
        """,
        indicator,
        start,
        end,
    )
    return {series_key(name): list(zip(minutes, good, total, strict=True)) for name, minutes, good, total in rows}


async def live_statuses(session: AsyncSession) -> Sequence[tuple[ObjectiveStatus, Objective, Agreement]]:
    """Every stored objective status of agreements that are not archived, with its objective and agreement."""
    query = (
        select(ObjectiveStatus, Objective, Agreement)
        .join(Objective, Objective.id == ObjectiveStatus.objective_id)
        .join(Agreement, Agreement.id == Objective.agreement_id)
        .where(Agreement.archived_at.is_(None))
    )
    return [(s, o, a) for s, o, a in (await session.execute(query)).all()]
