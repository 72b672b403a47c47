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
        self.loaded = False

    async def reload(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=5)
        try:
            # An archived indicator takes no new measurements; its history stays readable.
            rows = await conn.fetch("SELECT key, kind FROM indicators WHERE archived_at IS NULL")
        finally:
            await conn.close()
        kinds = {r["key"]: r["kind"] for r in rows}
        if kinds != self.kinds:
            log.info("indicator registry now holds %d indicators", len(kinds))
        self.kinds = kinds
        self.loaded = True

    def kind(self, key: str) -> str | None:
        return self.kinds.get(key)
