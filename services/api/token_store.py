"""Tokens and the audit log in Postgres: create, list, revoke; who did what. Nothing here commits.

Used by the api's /v1/tokens and /v1/audit routes and by `accord tokens` (which works against the
database before any token exists). Every token change records an audit entry and notifies
`accord_tokens` in its transaction, so every replica's cache reloads once it commits (shared.auth).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import TOKENS_CHANNEL, IssuedToken, Principal, issue_token, role_problem, token_hash, token_id_of
from shared.db import ApiToken, AuditEntry
from shared.errors import Invalid, NotFound


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode()


def decode_cursor(cursor: str, kinds: tuple[type, ...]) -> list[Any]:
    """The parts of a cursor this module issued (of `kinds`); 422 naming `cursor` otherwise."""
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, orjson.JSONDecodeError):
        parts = None
    if (
        not isinstance(parts, list)
        or len(parts) != len(kinds)
        or not all(type(p) is k for p, k in zip(parts, kinds, strict=True))
        or any(isinstance(p, int) and not 0 <= p < 2**63 for p in parts)
        or any(isinstance(p, str) and (len(p) > 100 or "\x00" in p) for p in parts)
    ):
        raise Invalid("Invalid cursor.", [{"field": "cursor", "reason": "not a cursor this api issued"}])
    return parts


async def set_actor(session: AsyncSession, principal: Principal) -> None:
    """Name the transaction's actor: the audit triggers record it with every revision, review and indicator."""
    await session.execute(
        text("SELECT set_config('accord.actor_token_id', :id, true), set_config('accord.actor_name', :name, true)"),
        {"id": principal.token_id or "", "name": principal.name},
    )


async def record(
    session: AsyncSession,
    actor: Principal,
    action: str,
    target: str,
    detail: dict[str, Any],
    agreement_id: uuid.UUID | None = None,
) -> None:
    """An audit entry written in the session's transaction (what the triggers do not see: token changes)."""
    session.add(
        AuditEntry(
            actor_token_id=actor.token_id, actor_name=actor.name, action=action, target=target, detail=detail,
            agreement_id=agreement_id,
        )
    )  # fmt: skip
    await session.flush()


async def _notify(session: AsyncSession, token_id: str) -> None:
    await session.execute(text("SELECT pg_notify(:channel, :id)"), {"channel": TOKENS_CHANNEL, "id": token_id})


async def create_token(
    session: AsyncSession,
    actor: Principal,
    *,
    name: str,
    role: str,
    expires_at: datetime | None = None,
    indicators: Sequence[str] | None = None,
) -> tuple[ApiToken, IssuedToken]:
    """A new token; the secret is in the IssuedToken only (its hash is stored)."""
    problems = []
    if (reason := role_problem(role)) is not None:
        problems.append({"field": "role", "reason": reason})
    if indicators is not None and role != "ingest":
        problems.append({"field": "indicators", "reason": "only an ingest token is limited to indicators"})
    now = await session.scalar(select(func.clock_timestamp()))
    if expires_at is not None and now is not None and expires_at <= now:
        problems.append({"field": "expires_at", "reason": "must be in the future"})
    if problems:
        raise Invalid("Invalid token.", problems)
    issued = issue_token()
    row = ApiToken(
        id=issued.id, name=name, role=role, token_hash=issued.hash,
        indicators=list(indicators) if indicators is not None else None, created_at=now,
        created_by_token_id=actor.token_id, created_by_name=actor.name, expires_at=expires_at,
    )  # fmt: skip
    session.add(row)
    await session.flush()
    detail = {"name": name, "role": role, "expires_at": expires_at.isoformat() if expires_at else None}
    await record(session, actor, "token.created", issued.id, {**detail, "indicators": row.indicators})
    await _notify(session, issued.id)
    return row, issued


async def get_token(session: AsyncSession, token_id: str) -> ApiToken:
    row = await session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"No token {token_id}.")
    return row


async def list_tokens(
    session: AsyncSession, *, revoked: bool, after: list[Any] | None, limit: int
) -> Sequence[ApiToken]:
    """Tokens, oldest first (revoked ones too when `revoked`)."""
    query = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id).limit(limit)
    if not revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    if after is not None:
        try:
            created, last = datetime.fromisoformat(after[0]), after[1]
            if created.tzinfo is None:
                raise ValueError("naive")
        except ValueError:
            raise Invalid("Invalid cursor.", [{"field": "cursor", "reason": "not a cursor this api issued"}]) from None
        query = query.where((ApiToken.created_at > created) | ((ApiToken.created_at == created) & (ApiToken.id > last)))
    return (await session.scalars(query)).all()


async def revoke_token(session: AsyncSession, actor: Principal, token_id: str) -> ApiToken:
    """Revoke a token (again: no change); every replica refuses it once this commits (shared.auth)."""
    row = await session.get(ApiToken, token_id, with_for_update=True)
    if row is None:
        raise NotFound(f"No token {token_id}.")
    if row.revoked_at is None:
        row.revoked_at = await session.scalar(select(func.clock_timestamp()))
        await session.flush()
        await record(session, actor, "token.revoked", token_id, {"name": row.name, "role": row.role})
        await _notify(session, token_id)
    return row


async def token_in_force(session: AsyncSession, token: str) -> bool:
    """Whether `token` is a stored token that is neither revoked nor expired (the local admin token's check)."""
    token_id = token_id_of(token)
    if token_id is None:
        return False
    row = await session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None or row.token_hash != token_hash(token):
        return False
    now = await session.scalar(select(func.clock_timestamp()))
    return row.expires_at is None or (now is not None and row.expires_at > now)


async def list_audit(
    session: AsyncSession,
    *,
    actor: str | None,
    action: str | None,
    agreement_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
    before: int | None,
    limit: int,
) -> Sequence[AuditEntry]:
    """Audit entries, newest first; `action` ending in `.` matches every action it starts (e.g. `token.`)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if actor is not None:
        query = query.where(AuditEntry.actor_token_id == actor)
    if action is not None:
        if action.endswith("."):
            query = query.where(func.starts_with(AuditEntry.action, action))
        else:
            query = query.where(AuditEntry.action == action)
    if agreement_id is not None:
        query = query.where(AuditEntry.agreement_id == agreement_id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    return (await session.scalars(query)).all()
