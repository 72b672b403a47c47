"""The evaluator's Postgres statements for roll-ups and retention, on the real embedded PostgreSQL."""

from __future__ import annotations

import asyncpg

from services.evaluator.engine import Changes
from services.evaluator.store import delete_expired, write_checkpoint


async def test_hour_deltas_add_up_and_retention_deletes_only_past_its_cutoffs(database_url: str) -> None:
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        for hours in ([("a", "{}|", 10, 3, 4), ("b", "{}|", 10, 1, 1)], [("a", "{}|", 10, 2, 2)]):
            await write_checkpoint(conn, Changes(hours=hours), group="g", topic="t", offsets={0: 1})
        stored = await conn.fetch("SELECT indicator_key, hour, good, total FROM series_hours ORDER BY 1")
        assert [tuple(r) for r in stored] == [("a", 10, 5, 6), ("b", 10, 1, 1)]
        await conn.executemany(
            "INSERT INTO series_buckets (indicator_key, series, minute, good, total) VALUES ($1, '{}|', $2, 1, 1)",
            [(k, m) for k in ("a", "b") for m in (100, 599, 600, 700)],
        )
        await conn.execute(
            "INSERT INTO series_hours (indicator_key, series, hour, good, total) VALUES ('a', '{}|', 9, 1, 1)"
        )
        gone = await delete_expired(conn, [("a", 600, 10)], batch=1)  # b is not held here: untouched
        assert gone == (2, 1)
        minutes = await conn.fetch("SELECT indicator_key, minute FROM series_buckets ORDER BY 1, 2")
        assert [tuple(r) for r in minutes] == [("a", 600), ("a", 700), ("b", 100), ("b", 599), ("b", 600), ("b", 700)]
        assert await conn.fetchval("SELECT count(*) FROM series_hours WHERE indicator_key = 'a'") == 1
        assert await delete_expired(conn, []) == (0, 0)
    finally:
        await conn.close()
