"""Tokens: create (the secret is shown once), list, read and revoke; admin only (shared.permissions)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.api import token_store
from services.api.deps import Session, State
from services.api.params import Cursor, Limit
from services.api.schemas import Instant, Name, Page
from shared.auth import MAX_INDICATOR_PATTERNS, principal_of
from shared.db import ApiToken

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])

IndicatorPattern = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9._-]{0,127}\*?$",
        description="An indicator key, or a key prefix ending in `*` (e.g. `checkout.*`).",
    ),
]
TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$", description="A token's id (12 hex digits).")]


class TokenIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "prometheus exporter", "role": "ingest", "indicators": ["checkout.*"]},
                {"name": "Acme portal", "role": "customer:Acme", "expires_at": "2027-06-30T00:00:00Z"},
            ]
        },
    )

    name: Name = Field(description="What the token is for (who holds it); shown in the audit log.")
    role: str = Field(
        max_length=220, description="`admin`, `editor`, `ingest`, `viewer` or `customer:<name>` (README: Tokens)."
    )
    expires_at: Instant | None = Field(default=None, description="When it stops working; none: until revoked.")
    indicators: list[IndicatorPattern] | None = Field(
        default=None,
        max_length=MAX_INDICATOR_PATTERNS,
        description=f"Ingest tokens only: the indicators it may post to (at most {MAX_INDICATOR_PATTERNS}).",
    )


class TokenOut(BaseModel):
    id: str = Field(description="Not secret: names the token in lists, the audit log and DELETE.")
    name: str
    role: str
    indicators: list[str] | None
    created_at: datetime
    created_by: str = Field(description="The name of the token (or `accord tokens` user) that created it.")
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The secret, shown this once only: send it as `Authorization: Bearer <token>`.")


def _out(row: ApiToken) -> TokenOut:
    return TokenOut(
        id=row.id, name=row.name, role=row.role, indicators=row.indicators, created_at=row.created_at,
        created_by=row.created_by_name, expires_at=row.expires_at, revoked_at=row.revoked_at,
    )  # fmt: skip


@router.post("", status_code=201, summary="Create a token (its secret is in this answer only)")
async def create_token(body: TokenIn, request: Request, session: Session, response: Response) -> TokenCreated:
    row, issued = await token_store.create_token(
        session,
        principal_of(request),
        name=body.name,
        role=body.role,
        expires_at=body.expires_at,
        indicators=body.indicators,
    )
    response.headers["Location"] = f"/v1/tokens/{row.id}"
    response.headers["Cache-Control"] = "no-store"
    return TokenCreated(**_out(row).model_dump(), token=issued.token)


@router.get("", summary="List tokens, oldest first (never their secrets)")
async def list_tokens(
    session: Session,
    state: State,
    revoked: Annotated[bool, Query(description="Include revoked tokens.")] = False,
    cursor: Cursor = None,
    limit: Limit = None,
) -> Page[TokenOut]:
    size = limit or state.settings.page_size
    after = token_store.decode_cursor(cursor, (str, str)) if cursor else None
    rows = await token_store.list_tokens(session, revoked=revoked, after=after, limit=size + 1)
    items = [_out(r) for r in rows[:size]]
    last = rows[size - 1] if len(rows) > size else None
    return Page(
        items=items, next_cursor=token_store.encode_cursor(last.created_at.isoformat(), last.id) if last else None
    )


@router.get("/{token_id}", summary="One token (never its secret)")
async def get_token(token_id: TokenId, session: Session) -> TokenOut:
    return _out(await token_store.get_token(session, token_id))


@router.delete(
    "/{token_id}",
    summary="Revoke a token: every replica refuses it within 5 s (README: Tokens)",
    responses={404: {"description": "No such token."}},
)
async def revoke_token(token_id: TokenId, request: Request, session: Session) -> TokenOut:
    return _out(await token_store.revoke_token(session, principal_of(request), token_id))
