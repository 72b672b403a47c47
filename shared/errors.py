"""Accord's domain errors; one place (shared.http) maps them to problem+json.

AccordError                    (500, base)
├── NotFound                   404  a named resource does not exist
├── Conflict                   409  the request contradicts what is stored
├── PreconditionFailed         412  If-Match names a revision that is no longer current
├── PayloadTooLarge            413  the body is larger than the configured limit
├── UnsupportedMediaType       415  the body is not of a media type the route reads
├── Invalid                    422  the request is well-formed but breaks a rule; lists every problem
├── PreconditionRequired       428  a change without If-Match (lost updates are refused, not guessed)
└── Unavailable                503  a dependency (broker, database) cannot take the request now
"""

from __future__ import annotations

from typing import Any


class AccordError(Exception):
    status = 500
    title = "Internal error"

    def __init__(self, detail: str | None = None, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = headers
        self.extra = extra


class NotFound(AccordError):
    status = 404
    title = "Not found"


class Conflict(AccordError):
    status = 409
    title = "Conflict"


class PreconditionFailed(AccordError):
    status = 412
    title = "Precondition failed"


class Invalid(AccordError):
    status = 422
    title = "Invalid request"

    def __init__(self, detail: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(detail, errors=errors)


class PayloadTooLarge(AccordError):
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(AccordError):
    status = 415
    title = "Unsupported media type"


class PreconditionRequired(AccordError):
    status = 428
    title = "Precondition required"


class Unavailable(AccordError):
    status = 503
    title = "Service unavailable"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
