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

    async def fetch(
        table: str, column: str, spans: Sequence[tuple[str, str | None, int, int]]
    ) -> dict[str, dict[str, Columns]]:
        if not spans:
            return {}
        keys, names, starts, ends = (list(c) for c in zip(*spans, strict=True))
        # One index range scan per span: LATERAL with OFFSET 0 (not pulled up into a join). Otherwise the planner,
        # which cannot see how narrow the spans are, hash-joins a scan of the whole table (≈ 0.5 s for 20
        # indicators of 30 days). A plain equality on the series when it is given bounds the range.
        series = "t.series = u.s" if names[0] is not None else "u.s IS NULL"
        rows = await driver.fetch(
            f"""
            SELECT u.k, t.series, array_agg(t.{column} ORDER BY t.{column}),
                   array_agg(t.good ORDER BY t.{column}), array_agg(t.total ORDER BY t.{column})
            FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u(k, s, a, b)
            CROSS JOIN LATERAL (
                SELECT t.series, t.{column}, t.good, t.total FROM {table} t
                WHERE t.indicator_key = u.k AND {series} AND t.{column} >= u.a AND t.{column} < u.b
                OFFSET 0
            ) AS t
            GROUP BY 1, 2
            """,
            keys,
            names,
            starts,
            ends,
        )
        out: dict[str, dict[str, Columns]] = {}
        for key, name, at, good, total in rows:
            out.setdefault(key, {})[name] = (at, good, total)
        return out

    hour_cells = await fetch("series_hours", "hour", [(k, None, a, b) for k, a, b in hours])
    # The minutes are fetched per series, so that every primary-key column bounds the index range: without
    # the series, each span would filter every minute of the indicator. A minute at an edge lies in an hour
    # of the hour spans, and its hour row is written with it, so the hours name every series needed.
    minute_cells = await fetch(
        "series_buckets", "minute", [(k, name, a, b) for k, a, b in minutes for name in hour_cells.get(k, {})]
    )

    def keyed(cells: dict[str, dict[str, Columns]]) -> Cells:
        return {k: {series_key(name): found for name, found in by_name.items()} for k, by_name in cells.items()}

    return keyed(hour_cells), keyed(minute_cells)
