"""The evaluator process: the consumer loop and the outbox relay, with /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.evaluator.runner import Evaluator, EvaluatorMetrics, relay_outbox
from services.evaluator.settings import EvaluatorSettings
from shared.http import install_error_handlers, ops_router
from shared.notify import follow_config

log = logging.getLogger("accord.evaluator")


def create_app(settings: EvaluatorSettings) -> FastAPI:
    metrics = EvaluatorMetrics(CollectorRegistry())
    tasks: list[asyncio.Task[None]] = []
    holder: dict[str, Evaluator] = {}

    def _crash_on_failure(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical("%s stopped: %r; exiting", task.get_name(), task.exception())
            # Never linger half-alive. Exiting at once is safe: everything that counts is in
            # Postgres, and a restart resumes from the stored state and offsets.
            os._exit(70)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        evaluator = await Evaluator.create(settings, metrics)
        holder["evaluator"] = evaluator
        for name, coro in (
            ("consumer", evaluator.run()),
            ("outbox relay", relay_outbox(settings, evaluator.pool, evaluator.events_waiting, metrics)),
            (
                "config follower",
                follow_config(
                    settings.asyncpg_dsn, evaluator.reload_objectives, fallback_seconds=settings.config_refresh_seconds
                ),
            ),
        ):
            task = asyncio.create_task(coro, name=name)
            task.add_done_callback(_crash_on_failure)
            tasks.append(task)
        try:
            yield
        finally:
            for task in reversed(tasks):
                task.remove_done_callback(_crash_on_failure)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await evaluator.pool.close()

    app = FastAPI(title="Accord evaluator", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)

    async def postgres_ready() -> str | None:
        try:
            async with holder["evaluator"].pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            return f"postgres unreachable: {exc!r}"
        return None

    async def consumer_ready() -> str | None:
        return None if holder["evaluator"].ready else "no partitions assigned yet"

    app.include_router(ops_router(metrics.registry, {"postgres": postgres_ready, "kafka": consumer_ready}))
    return app
