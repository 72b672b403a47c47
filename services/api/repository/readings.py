"""What the evaluator wrote, read for status, history and metrics: statuses, watermarks, minute buckets."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from shared.budget.rollups import Columns
from shared.cells import fetch_spans
from shared.db import BreachEvent, IndicatorState, ObjectiveStatus
from shared.series import SeriesKey, series_key


async def statuses_of(session: AsyncSession, objective_ids: list[uuid.UUID]) -> dict[uuid.UUID, ObjectiveStatus]:
    rows = (await session.scalars(select(ObjectiveStatus).where(ObjectiveStatus.objective_id.in_(objective_ids)))).all()
    return {r.objective_id: r for r in rows}


async def exhausted_since(session: AsyncSession, objective_ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    """When each objective's budget was announced exhausted, for those whose latest budget
    exhausted/recovered event is an exhaustion (the event's time: the evaluation instant)."""
    latest = (
        select(BreachEvent.objective_id, BreachEvent.type, BreachEvent.time)
        .where(
            BreachEvent.objective_id.in_(objective_ids),
            BreachEvent.type.in_(("accord.budget.exhausted", "accord.budget.recovered")),
        )
        .order_by(BreachEvent.objective_id, BreachEvent.seq.desc())
        .ext(distinct_on(BreachEvent.objective_id))
    )
    rows = (await session.execute(latest)).all()
    return {objective_id: time for objective_id, kind, time in rows if kind == "accord.budget.exhausted"}


async def watermarks(session: AsyncSession, indicators: Iterable[str]) -> dict[str, int]:
    """The evaluator's event-time watermark (ms) of each indicator it has seen."""
    rows = await session.execute(
        select(IndicatorState.indicator_key, IndicatorState.watermark_ms).where(
            IndicatorState.indicator_key.in_(set(indicators))
        )
    )
    return {key: watermark for key, watermark in rows.all()}


async def series_buckets(session: AsyncSession, indicator: str, start: int, end: int) -> dict[SeriesKey, Columns]:
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
    return {series_key(name): (minutes, good, total) for name, minutes, good, total in rows}


Cells = dict[str, dict[SeriesKey, Columns]]
"""Per indicator and series: its cells as columns."""


async def rolled_up(
    session: AsyncSession, hours: Sequence[tuple[str, int, int]], minutes: Sequence[tuple[str, int, int]]
) -> tuple[Cells, Cells]:
    """Hour roll-ups in [first, end) hours and minute buckets in [start, end) minute spans of many indicators:
    two statements whatever the number of indicators, each series as one row of arrays (docs/evaluator.md)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection

    hour_cells = await fetch_spans(driver, "series_hours", [(k, None, a, b) for k, a, b in hours])
    # The minutes are fetched per series, so that every primary-key column bounds the index range: without
    # the series, each span would filter every minute of the indicator. A minute at an edge lies in an hour
    # of the hour spans, and its hour row is written with it, so the hours name every series needed.
    minute_cells = await fetch_spans(
        driver, "series_buckets", [(k, name, a, b) for k, a, b in minutes for name in hour_cells.get(k, {})]
    )

    def keyed(cells: dict[str, dict[str, Columns]]) -> Cells:
        return {k: {series_key(name): found for name, found in by_name.items()} for k, by_name in cells.items()}

    return keyed(hour_cells), keyed(minute_cells)
