"""Stored minute buckets and hour roll-ups, read span by span: what the evaluator fetches ahead of its
watermark and what the api's status, history and reports sum (docs/evaluator.md, "Hour cells")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import asyncpg

from shared.budget.rollups import Columns

Table = Literal["series_buckets", "series_hours"]
COLUMN: dict[Table, str] = {"series_buckets": "minute", "series_hours": "hour"}

Span = tuple[str, str | None, int, int]
"""(indicator, series or None for every series, first, end): minutes or hours first <= t < end."""


async def fetch_spans(
    conn: asyncpg.Connection, table: Table, spans: Sequence[Span], *, ordered: bool = True
) -> dict[str, dict[str, Columns]]:
    """The cells of every span, per indicator and series, as columns: one statement, one row of arrays per series.

    Each span is its own index range scan: LATERAL with OFFSET 0 (not pulled up into a join). Otherwise the
    planner, which cannot see how narrow the spans are, hash-joins a scan of the whole table (≈ 0.5 s for 20
    indicators of 30 days). Spans name their series all or none: a plain equality on the series bounds the
    range further. Unordered (`ordered=False`, three sorts fewer) the cells come in index order, which is not
    promised: only for readers that take them in any order."""
    if not spans:
        return {}
    column = COLUMN[table]
    keys, names, starts, ends = (list(c) for c in zip(*spans, strict=True))
    series = "t.series = u.s" if names[0] is not None else "u.s IS NULL"
    order = f" ORDER BY t.{column}" if ordered else ""
    rows = await conn.fetch(
        f"""
        SELECT u.k, t.series, array_agg(t.{column}{order}), array_agg(t.good{order}), array_agg(t.total{order})
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
