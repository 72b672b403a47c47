"""The api: agreements, indicators, status and breach events over HTTP (FastAPI)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from services.api.deps import ApiState
from services.api.metrics import ObjectiveMetrics
from services.api.routes import agreements, history, indicators, objectives, openslo, status
from services.api.settings import ApiSettings
from shared.db import make_engine, make_sessionmaker
from shared.http import install_error_handlers, ops_router
from shared.metrics import service_registry

log = logging.getLogger("accord.api")


def create_app(settings: ApiSettings) -> FastAPI:
    registry = service_registry("api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        app.state.api = ApiState(settings, engine, make_sessionmaker(engine))
        log.info("api ready")
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="Accord",
        version="0.1.0",
        description="SLA/SLO compliance: agreements, error budgets, burn rates and breach events.",
        lifespan=lifespan,
    )
    install_error_handlers(app)

    async def postgres_ready() -> str | None:
        try:
            async with app.state.api.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            return f"postgres unreachable: {exc!r}"
        return None

    objective_metrics = ObjectiveMetrics(registry)

    async def before_scrape() -> None:
        await objective_metrics.refresh(app.state.api.sessionmaker)

    app.include_router(ops_router(registry, {"postgres": postgres_ready}, before_scrape))
    app.include_router(indicators.router)
    app.include_router(agreements.router)
    app.include_router(objectives.router)
    app.include_router(openslo.router)
    app.include_router(status.router)
    app.include_router(history.router)
    return app
