"""What every query module shares: the database clock, the read snapshot, the config NOTIFY."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import CONFIG_CHANNEL


async def announce_config_change(session: AsyncSession, what: str) -> None:
    """NOTIFY listeners (ingest, evaluator); delivered only if and when the transaction commits."""
    await session.execute(text("SELECT pg_notify(:channel, :what)"), {"channel": CONFIG_CHANNEL, "what": what})


async def now(session: AsyncSession) -> datetime:
    value: datetime | None = await session.scalar(select(func.clock_timestamp()))
    assert value is not None
    return value


async def read_snapshot(session: AsyncSession) -> None:
    """Make the request's reads one snapshot (REPEATABLE READ; call before its first query).

    A status row and the buckets it is recomputed from are then from the same evaluator checkpoint.
    """
    await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
