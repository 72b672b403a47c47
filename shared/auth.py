"""Bearer tokens: their format, the cache every replica checks them against, and the middleware that
enforces `shared.permissions` before a request reaches its route (docs/design.md §5e).

A token reads `accord_<id>_<secret>`: `id` (12 hex digits) finds its row, the secret (43 URL-safe
characters, 256 random bits) proves it. Only the SHA-256 of the whole token is stored; a presented
token's hash is compared with `hmac.compare_digest`. Tokens never appear in a log line or an error.

Every replica keeps the token rows in memory (`TokenCache`) and reloads them when Postgres notifies
`accord_tokens` (sent in the transaction that creates or revokes a token, so after it commits) and
every `token_refresh_seconds` (default 2, at most 4) in case a notice was missed. A revoked token is
thus refused by every replica within milliseconds, and within `token_refresh_seconds` plus one
reload (under 5 s) if the notice is lost; an expired one at once (expiry is checked on each request).
While Postgres cannot be reached the last rows loaded stay in force (a revocation needs Postgres too).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import asyncpg
import orjson
from fastapi import FastAPI, Request
from pydantic import Field
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import Forbidden
from shared.http import PROBLEM_JSON, problem
from shared.permissions import CUSTOMER_ROLE, ROLES, Decision, Permission, Rule, decide, rules
from shared.permissions import Scope as CustomerScope
from shared.settings import CommonSettings

log = logging.getLogger("accord.auth")

TOKEN_PREFIX = "accord_"
TOKENS_CHANNEL = "accord_tokens"
"""Postgres NOTIFY channel: sent in the transaction that creates or revokes a token."""
_TOKEN = re.compile(r"^accord_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
MISS_RELOAD_SECONDS = 0.5
"""A token the cache does not know makes it reload (a token just created elsewhere), at most this often."""
MISS_WAIT_SECONDS = 1.0
"""Longest a request with an unknown token waits for that reload."""
RETRY_SECONDS = 1.0
MAX_CUSTOMER_LENGTH = 200
MAX_INDICATOR_PATTERNS = 100


class AuthSettings(CommonSettings):
    """Settings of a service that checks tokens (the api and ingest, each with its own prefix)."""

    auth: bool = Field(
        default=True,
        description="Require a bearer token (README: tokens). false serves every request as an admin, logging a "
        "warning at every start: for a service reachable by trusted clients only.",
    )
    metrics_need_token: bool = Field(
        default=False, description="/metrics needs a token of role admin, editor or viewer (default: open)."
    )
    token_refresh_seconds: float = Field(
        default=2.0,
        gt=0,
        le=4,
        description="Tokens are reloaded from Postgres on every change notice and at least this often: the bound "
        "on how long a revoked token is still accepted when a notice is lost (at most 4, so under 5 s).",
    )
    cors_origins: str = Field(
        default="", description="Comma-separated origins browsers may call from (CORS); empty: CORS off."
    )


# --- the token format --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    id: str
    token: str  # shown once, never stored
    hash: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token() -> IssuedToken:
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = f"{TOKEN_PREFIX}{token_id}_{secret}"
    return IssuedToken(token_id, token, token_hash(token))


def token_id_of(token: str) -> str | None:
    """The id part of a well-formed token, else None."""
    match = _TOKEN.match(token)
    return match.group(1) if match else None


def role_problem(role: str) -> str | None:
    """Why `role` is not a role, or None."""
    if role in ROLES:
        return None
    if role.startswith(CUSTOMER_ROLE):
        name = role[len(CUSTOMER_ROLE) :]
        if not name or name != name.strip():
            return "a customer role names the customer: customer:<name>, without surrounding spaces"
        if len(name) > MAX_CUSTOMER_LENGTH or any(ord(c) < 32 or ord(c) == 127 for c in name):
            return f"the customer name has at most {MAX_CUSTOMER_LENGTH} characters, no control characters"
        return None
    return f"one of {', '.join(ROLES)} or customer:<name>"


def indicator_allowed(patterns: tuple[str, ...] | None, indicator: str) -> bool:
    """None allows every indicator; else a pattern is a key, or a key prefix ending in `*`."""
    if patterns is None:
        return True
    return any(indicator.startswith(p[:-1]) if p.endswith("*") else indicator == p for p in patterns)


@dataclass(frozen=True)
class Principal:
    """Who sends a request: a token's id, name and role (and indicators, for a limited ingest token)."""

    token_id: str | None
    name: str
    role: str
    indicators: tuple[str, ...] | None = None

    @property
    def customer(self) -> str | None:
        return self.role[len(CUSTOMER_ROLE) :] if self.role.startswith(CUSTOMER_ROLE) else None


AUTH_DISABLED = Principal(None, "auth disabled", "admin")
"""Every request's principal while ACCORD_<SVC>_AUTH=false."""


def principal_of(request: Request) -> Principal:
    """The request's principal, set by `AuthMiddleware`."""
    principal = request.scope.get("accord.principal")
    return principal if isinstance(principal, Principal) else AUTH_DISABLED


def forbid_unlisted_indicators(principal: Principal, indicators: Any) -> None:
    """403 naming the indicators a limited ingest token may not post to."""
    refused = sorted(i for i in indicators if not indicator_allowed(principal.indicators, i))
    if refused:
        raise Forbidden(
            f"Token {principal.name!r} may not post measurements of {', '.join(map(repr, refused[:10]))}"
            + (f" and {len(refused) - 10} more." if len(refused) > 10 else ".")
        )


# --- the cache ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    role: str
    hash: str
    indicators: tuple[str, ...] | None
    expires_at: datetime | None
    revoked: bool = False


# Tokens revoked lately are kept, so that presenting one is refused at once rather than reloading (as for a
# token the cache does not know yet).
LOAD_QUERY = (
    "SELECT id, name, role, token_hash, indicators, expires_at, revoked_at IS NOT NULL AS revoked FROM api_tokens "
    "WHERE revoked_at IS NULL OR revoked_at > now() - interval '30 days'"
)


class Refused(Exception):
    """A token that does not authenticate; the message is safe to show (it never holds the token)."""


class TokenCache:
    """Token rows in memory, reloaded on every `accord_tokens` notice and every `refresh_seconds`."""

    def __init__(self, dsn: str, refresh_seconds: float, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._dsn = dsn
        self._refresh_seconds = refresh_seconds
        self._now = now
        self._records: dict[str, TokenRecord] = {}
        self.loaded_at: float | None = None  # time.monotonic() of the last load
        self._wake: asyncio.Event | None = None
        self._next_load: asyncio.Future[None] | None = None
        self._miss_reload_at = -MISS_RELOAD_SECONDS
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._next_load = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._follow(), name="accord-token-cache")
        # Serve from a loaded cache when Postgres answers; requests get 503 until the first load otherwise.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._next_load), timeout=5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def replace(self, records: list[TokenRecord]) -> None:
        self._records = {r.id: r for r in records}
        self.loaded_at = time.monotonic()
        if self._next_load is not None:
            done, self._next_load = self._next_load, asyncio.get_running_loop().create_future()
            done.set_result(None)

    async def _load(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(LOAD_QUERY, timeout=10)
        records = []
        for r in rows:
            indicators = orjson.loads(r["indicators"]) if r["indicators"] is not None else None
            patterns = tuple(str(i) for i in indicators) if isinstance(indicators, list) else None
            records.append(
                TokenRecord(r["id"], r["name"], r["role"], r["token_hash"], patterns, r["expires_at"], r["revoked"])
            )
        self.replace(records)

    async def _follow(self) -> None:
        assert self._wake is not None
        wake = self._wake

        def on_notice(*_: Any) -> None:
            wake.set()

        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, timeout=5)
                await conn.execute("SET jit = off")
                await conn.add_listener(TOKENS_CHANNEL, on_notice)
                while not conn.is_closed():
                    wake.clear()  # before loading: a notice during the load makes another one
                    await self._load(conn)
                    # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that races the wake-up
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._refresh_seconds):
                            await wake.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the cache outlives any failure of its connection (see shared/notify.py)
                log.warning("token cache cannot reach Postgres (%r); keeping the tokens loaded, retrying", exc)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            await asyncio.sleep(RETRY_SECONDS)

    async def _reload_for_unknown(self) -> None:
        """Reload now (at most every MISS_RELOAD_SECONDS) and wait for it, bounded: a token may be new."""
        if self._wake is None or self._next_load is None:
            return
        now = time.monotonic()
        if now - self._miss_reload_at >= MISS_RELOAD_SECONDS:
            self._miss_reload_at = now
            self._wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._next_load), timeout=MISS_WAIT_SECONDS)

    async def authenticate(self, token: str) -> Principal:
        """The token's principal; raises Refused when it is malformed, unknown, revoked or expired."""
        token_id = token_id_of(token)
        presented = token_hash(token)
        if token_id is None:
            raise Refused("The bearer token is malformed: Accord tokens read accord_<id>_<secret>.")
        record = self._records.get(token_id)
        if record is None:
            await self._reload_for_unknown()
            record = self._records.get(token_id)
        if record is None or not hmac.compare_digest(record.hash, presented):
            raise Refused("The bearer token is unknown.")
        if record.revoked:
            raise Refused(f"The bearer token {record.name!r} is revoked.")
        if record.expires_at is not None and record.expires_at <= self._now():
            raise Refused(f"The bearer token {record.name!r} expired at {record.expires_at.isoformat()}.")
        return Principal(record.id, record.name, record.role, record.indicators)


# --- enforcement -------------------------------------------------------------------------------------

SCOPE_QUERIES = {
    CustomerScope.AGREEMENT: "SELECT customer FROM agreements WHERE id = $1",
    CustomerScope.OBJECTIVE: (
        "SELECT a.customer FROM objectives o JOIN agreements a ON a.id = o.agreement_id WHERE o.id = $1"
    ),
}
SCOPE_PARAMETERS = {CustomerScope.AGREEMENT: "agreement_id", CustomerScope.OBJECTIVE: "objective_id"}
# The routes' own 404 details, so that another customer's resource reads exactly like a missing one.
SCOPE_NOT_FOUND = {
    CustomerScope.AGREEMENT: "No agreement {}.",
    CustomerScope.OBJECTIVE: "No objective {}.",
    CustomerScope.CUSTOMER: "No agreement (not archived) with customer {!r}.",
}


@dataclass
class _Route:
    rule: Rule
    regex: re.Pattern[str]


class Auth:
    """One service's token cache, customer-scope lookups and route table."""

    def __init__(self, service: str, settings: AuthSettings) -> None:
        self.service = service
        self.settings = settings
        self.routes = [_Route(r, compile_path(r.path)[0]) for r in rules(service)]
        self.cache = TokenCache(settings.asyncpg_dsn, settings.token_refresh_seconds)
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        if not self.settings.auth:
            log.warning(
                "AUTHENTICATION IS OFF (ACCORD_%s_AUTH=false): every request is served as an admin, tokens or not",
                self.service.upper(),
            )
            return
        await self.cache.start()

    async def stop(self) -> None:
        await self.cache.stop()
        if self._pool is not None:
            await self._pool.close()

    def route(self, method: str, path: str) -> tuple[Rule | None, dict[str, str]]:
        method = "GET" if method == "HEAD" else method
        for route in self.routes:
            match = route.regex.match(path)
            if match is not None and route.rule.method == method:
                return route.rule, match.groupdict()
        return None, {}

    async def customer_of(self, scope: CustomerScope, value: str) -> str | None:
        """The customer of the agreement (or objective) `value` names; None when there is none."""
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.settings.asyncpg_dsn, min_size=0, max_size=4)
        result: str | None = await self._pool.fetchval(SCOPE_QUERIES[scope], uuid.UUID(value), timeout=10)
        return result


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            kind, _, credentials = value.decode("latin-1").partition(" ")
            return credentials.strip() if kind.lower() == "bearer" else ""
    return None


def _unauthorized(detail: str, error: bool) -> Any:
    challenge = 'Bearer realm="accord"' + (', error="invalid_token"' if error else "")
    return problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": challenge})


class AuthMiddleware:
    """ASGI middleware: authenticate, authorize by `shared.permissions`, confine customers; before any body is read.

    The matched rule's permission decides; a path no rule matches (a route missing from the table, or
    none at all) needs `admin`, so that a forgotten route is never open.
    """

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        auth = self.auth
        rule, params = auth.route(scope["method"], scope["path"])
        permission = rule.permission if rule is not None else Permission.ADMIN
        if permission is Permission.METRICS and not auth.settings.metrics_need_token:
            permission = Permission.PUBLIC
        if not auth.settings.auth:
            scope["accord.principal"] = AUTH_DISABLED
            await self.app(scope, receive, send)
            return
        if permission is Permission.PUBLIC:  # a token sent along is not even looked at
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None or token == "":
            await _unauthorized("This request needs a bearer token: Authorization: Bearer <token>.", False)(
                scope, receive, send
            )
            return
        if auth.cache.loaded_at is None:
            await problem(
                503, "Service unavailable", "Tokens are not loaded yet; retry.", headers={"Retry-After": "1"}
            )(scope, receive, send)
            return
        try:
            principal = await auth.cache.authenticate(token)
        except Refused as exc:
            await _unauthorized(str(exc), True)(scope, receive, send)
            return
        decision = decide(principal.role, permission)
        if decision is Decision.FORBIDDEN:
            await problem(
                403, "Forbidden", f"Token {principal.name!r} (role {principal.role}) may not do this ({permission})."
            )(scope, receive, send)
            return
        if decision is Decision.HIDDEN:
            await problem(404, "Not found")(scope, receive, send)
            return
        scope["accord.principal"] = principal
        customer = principal.customer
        if customer is not None and rule is not None and permission is Permission.CUSTOMER:
            confined = await self._confine(scope, rule, params, customer)
            if confined is None:
                return await self._hide(scope, receive, send, rule, params)
            scope = confined
        await self.app(scope, receive, send)

    async def _confine(self, scope: Scope, rule: Rule, params: dict[str, str], customer: str) -> Scope | None:
        """The request confined to `customer`'s agreements, or None when it names something else."""
        if rule.scope is CustomerScope.LIST:
            query = [(k, v) for k, v in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)]
            query = [(k, v) for k, v in query if k != "customer"] + [("customer", customer)]
            return {**scope, "query_string": urlencode(query).encode("latin-1")}
        if rule.scope is CustomerScope.CUSTOMER:
            return scope if params.get("customer") == customer else None
        if rule.scope in SCOPE_QUERIES:
            value = params.get(SCOPE_PARAMETERS[rule.scope], "")
            try:
                uuid.UUID(value)
            except ValueError:
                return scope  # the route answers 422, as to anyone
            return scope if await self.auth.customer_of(rule.scope, value) == customer else None
        return None  # a customer rule without a scope is never open (fail closed)

    async def _hide(self, scope: Scope, receive: Receive, send: Send, rule: Rule, params: dict[str, str]) -> None:
        """404 worded as the route words a missing resource."""
        template = SCOPE_NOT_FOUND.get(rule.scope)
        detail = None
        if template is not None:
            value = params.get(SCOPE_PARAMETERS.get(rule.scope, "customer"), "")
            detail = template.format(str(uuid.UUID(value)) if rule.scope in SCOPE_PARAMETERS else value)
        await problem(404, "Not found", detail)(scope, receive, send)


def install_auth(app: FastAPI, service: str, settings: AuthSettings) -> None:
    """Enforce `shared.permissions` on `app` (call last in `create_app`): middleware, lifespan, OpenAPI."""
    auth = Auth(service, settings)
    app.state.auth = auth
    app.add_middleware(AuthMiddleware, auth=auth)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:  # outermost, so that a browser's preflight is answered without a token
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Content-Encoding", "If-Match"],
            expose_headers=["ETag", "Location", "Retry-After"],
        )
    original_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        await auth.start()
        try:
            async with original_lifespan(a) as state:
                yield state
        finally:
            await auth.stop()

    app.router.lifespan_context = lifespan
    original_openapi = app.openapi
    documented = False

    def openapi() -> dict[str, Any]:
        nonlocal documented
        schema = original_openapi()
        if not documented:
            document_security(schema, auth)
            documented = True
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_security(schema: dict[str, Any], auth: Auth) -> None:
    """The bearer scheme, and 401/403 on every operation that needs a token."""
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An Accord token (accord_<id>_<secret>); see README, Tokens.",
    }
    content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            rule, _ = auth.route(method.upper(), path)
            permission = rule.permission if rule is not None else Permission.ADMIN
            if permission is Permission.PUBLIC or not auth.settings.auth:
                continue
            if permission is Permission.METRICS and not auth.settings.metrics_need_token:
                continue
            operation["security"] = [{"bearer": []}]
            responses = operation.setdefault("responses", {})
            responses.setdefault(
                "401", {"description": "No token, or one unknown, revoked or expired.", "content": content}
            )
            responses.setdefault("403", {"description": "The token's role may not do this.", "content": content})
