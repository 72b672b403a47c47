"""Config-change notifications over Postgres LISTEN/NOTIFY, with a periodic reload as a safety net.

The api sends `NOTIFY accord_config` in the transaction that changes agreements,
objectives or indicators, so the notice arrives only after the change committed.
Listeners reload on each notice and every `fallback_seconds` in case a notice
was missed while disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from shared.db import CONFIG_CHANNEL

log = logging.getLogger("accord.notify")


async def follow_config(
    dsn: str, reload: Callable[[], Awaitable[None]], *, fallback_seconds: float = 30.0, retry_seconds: float = 1.0
) -> None:
    """Run forever: call `reload` on every config notice and every `fallback_seconds`; survive outages."""
    changed = asyncio.Event()

    def on_notice(*_: Any) -> None:
        changed.set()

    failing = False
    while True:
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
            await conn.add_listener(CONFIG_CHANNEL, on_notice)
            if failing:
                log.info("config listener reconnected to Postgres")
                failing = False
            changed.set()  # reload once after every (re)connect: notices may have been missed
            while not conn.is_closed():
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that races the wake-up
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(fallback_seconds):
                        await changed.wait()
                changed.clear()
                await reload()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the listener outlives any failure of its connection
            # (asyncpg raises OSError, TimeoutError, PostgresError, InterfaceError and, when the server
            # goes mid-statement, InternalClientError): log the first, retry quietly until it recovers.
            log.log(logging.DEBUG if failing else logging.WARNING, "config listener lost Postgres (%r); retrying", exc)
            failing = True
        finally:
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
        await asyncio.sleep(retry_seconds)
