"""The api: agreements, indicators, status and breach events over HTTP (FastAPI)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from services.api.deps import ApiState
from services.api.reports import close_due
from services.api.routes import agreements, audit, history, indicators, objectives, openslo, reports, status, tokens
from services.api.settings import ApiSettings
from shared.auth import install_auth
from shared.db import make_engine, make_sessionmaker
from shared.http import PROBLEM_JSON, BodyLimit, install_error_handlers, ops_router
from shared.metrics import service_registry

log = logging.getLogger("accord.api")


def create_app(settings: ApiSettings) -> FastAPI:
    registry = service_registry("api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        app.state.api = ApiState(settings, engine, make_sessionmaker(engine))
        closer = asyncio.create_task(run_closer(app.state.api), name="period-closer")
        log.info("api ready")
        try:
            yield
        finally:
            closer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await closer
            await engine.dispose()

    app = FastAPI(
        title="Accord",
        version="0.1.0",
        description="SLA/SLO compliance: agreements, error budgets, burn rates and breach events.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    async def postgres_ready() -> str | None:
        try:
            async with app.state.api.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            return f"postgres unreachable: {exc!r}"
        return None

    # Per-objective gauges are exported by the evaluator that owns each objective (services/evaluator/gauges.py).
    app.include_router(ops_router(registry, {"postgres": postgres_ready}))
    app.include_router(indicators.router)
    app.include_router(agreements.router)
    app.include_router(objectives.router)
    app.include_router(openslo.router)
    app.include_router(status.router)
    app.include_router(history.router)
    app.include_router(tokens.router)
    app.include_router(audit.router)
    app.include_router(reports.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = with_problem_responses(schema, settings.max_body_bytes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    install_auth(app, "api", settings)  # shared.permissions, enforced before any route runs
    return app


async def run_closer(state: ApiState) -> None:
    """Close ended reporting periods, in every api process; the advisory lock lets one of them at a time work
    (docs/reports.md). A failure is logged and retried at the next interval."""
    grace_ms = state.settings.report_grace_seconds * 1000
    interval = state.settings.report_close_interval_seconds
    failing = False
    while True:
        try:
            async with state.sessionmaker() as session, session.begin():
                for agreement_id, label in await close_due(session, grace_ms):
                    log.info("closed reporting period", extra={"agreement_id": str(agreement_id), "period": label})
            failing = False
        except Exception:
            if not failing:
                log.exception("closing reporting periods failed; retrying every %s s", interval)
            failing = True
        await asyncio.sleep(interval)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Validation errors: the field (dotted path) and why, naming the limit.",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
                "required": ["field", "reason"],
            },
        },
        "correlation_id": {"type": "string", "description": "500 only: the id logged with the error."},
    },
    "required": ["type", "title", "status"],
}


def with_problem_responses(schema: dict[str, Any], max_body_bytes: int) -> dict[str, Any]:
    """Every error response of every operation documented as problem+json, with the codes any route can return:
    500 always; 422 with parameters or a body; 404 with path parameters; 400 and 413 with a body."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    problem_content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    generic = {
        "400": "The body is not well-formed (JSON or YAML).",
        "404": "No such resource.",
        "413": f"The body is larger than ACCORD_API_MAX_BODY_BYTES ({max_body_bytes} bytes).",
        "422": "Validation errors, each naming its field and the limit broken.",
        "500": "Unexpected error; the body carries a correlation id, logged with the traceback.",
    }
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            params = operation.get("parameters", [])
            body = "requestBody" in operation
            codes = ["500"]
            if params or body:
                codes.append("422")
            if any(p.get("in") == "path" for p in params):
                codes.append("404")
            if body:
                codes += ["400", "413"]
            for code in codes:
                responses.setdefault(code, {"description": generic[code]})
            for code, response in responses.items():
                if code[0] in "45":
                    if not response.get("description") or response["description"] in (
                        "Validation Error",
                        "Additional Response",
                    ):
                        response["description"] = generic.get(code, "Error.")
                    response["content"] = problem_content
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema
