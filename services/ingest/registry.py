"""The indicator registry ingest validates against: a cache of Postgres' indicators table.

Kept current by config notices (shared.notify); if Postgres goes away, ingest
keeps validating against the last copy it read.
"""

from __future__ import annotations

import logging

import asyncpg

log = logging.getLogger("accord.ingest.registry")


class IndicatorRegistry:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self.kinds: dict[str, str] = {}
        self.archived: frozenset[str] = frozenset()
        self.loaded = False

    async def reload(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=5)
        try:
            rows = await conn.fetch("SELECT key, kind, archived_at IS NOT NULL AS archived FROM indicators")
        finally:
            await conn.close()
        # An archived indicator takes no new measurements (its history stays readable); it is kept
        # apart so that a measurement for it is refused as archived, not as unknown.
        kinds = {r["key"]: r["kind"] for r in rows if not r["archived"]}
        if kinds != self.kinds:
            log.info("indicator registry now holds %d indicators", len(kinds))
        self.kinds = kinds
        self.archived = frozenset(r["key"] for r in rows if r["archived"])
        self.loaded = True

    def kind(self, key: str) -> str | None:
        return self.kinds.get(key)
