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
    """The cells of every span, per indicator and series, as columns: one statement, one row of arrays per span
    and series (spans of one indicator and series are joined in the order of their first minute or hour).

    Each span is its own index range scan, aggregated inside its LATERAL subquery: a join and one aggregate
    over all spans would sort every cell of every span together (PostgreSQL sorts before it aggregates, and
    spills to disk past `work_mem`), and the planner, which cannot see how narrow the spans are, would rather
    hash-join a scan of the whole table (≈ 0.5 s for 20 indicators of 30 days). Spans name their series all or
    none: a plain equality on the series bounds the range further. Unordered (`ordered=False`, no sorts) the
    cells come in index order, which is not promised: only for readers that take them in any order."""
    if not spans:
        return {}
    column = COLUMN[table]
    keys, names, starts, ends = (list(c) for c in zip(*spans, strict=True))
    series = "t.series = u.s" if names[0] is not None else "u.s IS NULL"
    order = f" ORDER BY t.{column}" if ordered else ""
    rows = await conn.fetch(
        f"""
        SELECT u.n, c.series, c.at, c.good, c.total
        FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS u(k, s, a, b, n)
        CROSS JOIN LATERAL (
            SELECT t.series, array_agg(t.{column}{order}) AS at, array_agg(t.good{order}) AS good,
                   array_agg(t.total{order}) AS total
            FROM {table} t
            WHERE t.indicator_key = u.k AND {series} AND t.{column} >= u.a AND t.{column} < u.b
            GROUP BY t.series
        ) AS c
        """,
        keys,
        names,
        starts,
        ends,
    )
    parts: dict[tuple[str, str], list[tuple[int, Columns]]] = {}
    for n, name, at, good, total in rows:
        parts.setdefault((keys[n - 1], name), []).append((starts[n - 1], (at, good, total)))
    out: dict[str, dict[str, Columns]] = {}
    for (key, name), found in parts.items():
        if len(found) == 1:
            out.setdefault(key, {})[name] = found[0][1]
            continue
        found.sort(key=lambda part: part[0])
        joined: tuple[list[int], list[int], list[int]] = ([], [], [])
        for _, columns in found:
            for whole, part in zip(joined, columns, strict=True):
                whole.extend(part)
        out.setdefault(key, {})[name] = joined
    return out
