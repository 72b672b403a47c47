"""What every service's HTTP side shares: health, readiness, metrics and problem+json errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import AccordError

PROBLEM_JSON = "application/problem+json"

ReadinessCheck = Callable[[], Awaitable[str | None]]
"""Returns None when the dependency is reachable, otherwise a short reason."""


def problem(
    status: int, title: str, detail: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """An RFC 9457 problem details response; `extra` members go into the body."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def validation_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Pydantic errors as `{field, reason}` pairs, the field as a JSON-pointer-like dotted path."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        out.append({"field": ".".join(loc) or "(body)", "reason": str(err.get("msg", "invalid"))})
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to problem+json: domain errors, validation, HTTP errors, and the unexpected."""

    @app.exception_handler(AccordError)
    async def _domain(_: Request, exc: AccordError) -> Response:
        return problem(exc.status, exc.title, exc.detail, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        return problem(
            422, "Invalid request", "The request has validation errors.", errors=validation_errors(exc.errors())
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        return problem(exc.status_code, str(exc.detail))


def ops_router(
    registry: CollectorRegistry,
    checks: dict[str, ReadinessCheck],
    before_scrape: Callable[[], Awaitable[None]] | None = None,
) -> APIRouter:
    """`/healthz` (the process answers), `/readyz` (every dependency answers), `/metrics`.

    `before_scrape` runs in the async handler before the registry is rendered: collectors that
    need I/O (a query) refresh their snapshot there, since `collect()` itself is synchronous.
    """
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> Response:
        failures = {name: reason for name, check in checks.items() if (reason := await check()) is not None}
        if failures:
            return problem(503, "Not ready", "Some dependencies are unreachable.", dependencies=failures)
        return JSONResponse({"status": "ready", "dependencies": sorted(checks)})

    @router.get("/metrics")
    async def metrics() -> Response:
        if before_scrape is not None:
            await before_scrape()
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
