"""The evaluator process: the consumer loop and the outbox relay, with /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.evaluator.outbox import relay_outbox
from services.evaluator.runner import Evaluator, EvaluatorMetrics
from services.evaluator.settings import EvaluatorSettings
from shared.http import ReadinessCheck, install_error_handlers, ops_router
from shared.metrics import service_registry
from shared.notify import follow_config

log = logging.getLogger("accord.evaluator")

PROBE_TIMEOUT_SECONDS = 2.0


def create_app(settings: EvaluatorSettings) -> FastAPI:
    metrics = EvaluatorMetrics(service_registry("evaluator"))
    tasks: list[asyncio.Task[None]] = []
    holder: dict[str, Evaluator] = {}

    def _crash_on_failure(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical("%s stopped: %r; exiting", task.get_name(), task.exception())
            # Never linger half-alive. Postgres outages never get here (every task waits them out);
            # this is for bugs. Exiting is safe: a restart resumes from the stored state and offsets.
            os._exit(70)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        evaluator = await Evaluator.create(settings, metrics)
        holder["evaluator"] = evaluator
        for name, coro in (
            ("consumer", evaluator.run()),
            ("outbox relay", relay_outbox(settings, evaluator.pool, evaluator.events_waiting, metrics)),
            ("config follower", _follow_config(settings, evaluator)),
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
        async with holder["evaluator"].pool.acquire(timeout=PROBE_TIMEOUT_SECONDS) as conn:
            await conn.fetchval("SELECT 1", timeout=PROBE_TIMEOUT_SECONDS)
        return None

    async def evaluator_ready() -> str | None:
        return holder["evaluator"].not_ready()

    rendered: dict[str, bytes] = {}

    async def refresh() -> None:
        if "evaluator" in holder:
            holder["evaluator"].checkpoint.refresh_metrics()
            # Rendered here, a slice at a time between records (not in one go in `objective_gauges`): nothing
            # awaits between this and `objective_gauges`, which hands it over.
            rendered["gauges"] = await holder["evaluator"].gauges.render_sliced()

    def objective_gauges() -> bytes:
        return rendered.pop("gauges", b"")

    checks = {"postgres": _never_raises(postgres_ready), "evaluator": _never_raises(evaluator_ready)}
    app.include_router(ops_router(metrics.registry, checks, before_scrape=refresh, more_metrics=objective_gauges))
    return app


def _never_raises(check: Callable[[], Awaitable[str | None]]) -> ReadinessCheck:
    """A readiness check answers a reason (503), never an exception (500), and within a bound."""

    async def guarded() -> str | None:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS + 1):
                return await check()
        except KeyError:
            return "starting"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300]

    return guarded


async def _follow_config(settings: EvaluatorSettings, evaluator: Evaluator) -> None:
    """Reload objectives on config notices; a reload that fails (Postgres away) waits for the next one."""

    async def reload() -> None:
        try:
            await evaluator.reload_objectives()
        except (OSError, TimeoutError) as exc:
            log.warning("objectives not reloaded: %r", exc)

    while True:
        try:
            await follow_config(settings.asyncpg_dsn, reload, fallback_seconds=settings.config_refresh_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("config follower restarts after %r", exc)
            await asyncio.sleep(1)
