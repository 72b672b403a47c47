"""DATABASE_URL's libpq TLS parameters reach both connection paths (SQLAlchemy's engine and raw asyncpg),
checked against the real local PostgreSQL, which has no TLS: `sslmode=require` must then fail on
both paths, `sslmode=disable` must connect on both."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text

from shared.db import make_engine
from shared.settings import libpq_url


def _with(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


async def test_sslmode_in_the_url_applies_to_sqlalchemy_and_asyncpg(database_url: str) -> None:
    plain = _with(database_url, "sslmode=disable")
    engine = make_engine(plain)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(libpq_url(plain), timeout=5)
    await conn.close()

    required = _with(database_url, "sslmode=require")
    engine = make_engine(required)
    try:
        with pytest.raises(ConnectionError, match="SSL"):
            async with engine.connect():
                pass
    finally:
        await engine.dispose()
    with pytest.raises(ConnectionError, match="SSL"):
        await asyncpg.connect(libpq_url(required), timeout=5)
