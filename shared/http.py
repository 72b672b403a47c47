"""What every service's HTTP side shares: health, readiness, metrics and problem+json errors."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import AccordError

PROBLEM_JSON = "application/problem+json"

log = logging.getLogger("accord.http")

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
        return problem(exc.status_code, str(exc.detail), headers=dict(exc.headers) if exc.headers else None)

    # Registered for Exception, Starlette's ServerErrorMiddleware (the outermost layer) answers with it
    # too, so an error raised in a middleware is covered as well as one raised in a route.
    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return unexpected_error(request.method, request.url.path, exc)


def unexpected_error(method: str, path: str, exc: BaseException) -> JSONResponse:
    """500 problem+json with a correlation id; the same id is logged at ERROR with the traceback."""
    correlation_id = uuid.uuid4().hex
    log.error("unexpected error on %s %s (correlation_id=%s)", method, path, correlation_id, exc_info=exc)
    return problem(
        500,
        "Internal error",
        f"An unexpected error occurred; quote correlation id {correlation_id} when reporting it.",
        correlation_id=correlation_id,
    )


class BodyLimit:
    """ASGI middleware: every request body is read with a bound; past `max_bytes` the answer is 413.

    A Content-Length over the limit is refused before reading; a chunked body (no Content-Length)
    is counted as it arrives. The body, once read, is replayed to the application.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, "Payload too large", f"The request body exceeds {self.max_bytes} bytes.")
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._too_large(scope, receive, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def ops_router(
    registry: CollectorRegistry,
    checks: dict[str, ReadinessCheck],
    before_scrape: Callable[[], Awaitable[None]] | None = None,
    more_metrics: Callable[[], bytes] | None = None,
) -> APIRouter:
    """`/healthz` (the process answers), `/readyz` (every dependency answers), `/metrics`.

    `before_scrape` runs in the async handler before the registry is rendered: collectors that
    need I/O (a query) refresh their snapshot there, since `collect()` itself is synchronous.
    `more_metrics` renders families of its own (Prometheus text) appended to the registry's.
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
        body = generate_latest(registry)
        if more_metrics is not None:
            body += more_metrics()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
