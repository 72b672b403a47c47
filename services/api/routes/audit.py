"""The audit log: who (which token) changed what, newest first; admin only (shared.permissions)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.api import token_store
from services.api.deps import Session, State
from services.api.params import INSTANT, Cursor, Limit, Text
from services.api.schemas import Page, QueryInstant

router = APIRouter(prefix="/v1/audit", tags=["audit"])


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor_token_id: str | None = Field(description="The token that made the change; null: auth off, or no token.")
    actor_name: str = Field(description="That token's name (the `author` of a revision is what a person typed).")
    action: str = Field(
        description="`agreement.<change>` (a revision: created, updated, archived, reviewed, ...), "
        "`review.recorded`, `indicator.created|updated|archived`, `token.created|revoked`.",
        examples=["agreement.updated"],
    )
    agreement_id: uuid.UUID | None
    target: str = Field(
        description="What changed: `<agreement>@<revision>`, a review id, an indicator key, a token id."
    )
    detail: dict[str, Any]


@router.get("", summary="Audit entries, newest first")
async def list_audit(
    session: Session,
    state: State,
    actor: Annotated[Text, Query(description="Entries of this token id.")] = None,
    action: Annotated[Text, Query(description="This action, or every action starting so when it ends in `.`.")] = None,
    agreement: uuid.UUID | None = None,
    since: Annotated[QueryInstant | None, Query(description=f"Entries at or after this instant. {INSTANT}")] = None,
    until: Annotated[QueryInstant | None, Query(description=f"Entries before this instant. {INSTANT}")] = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> Page[AuditOut]:
    size = limit or state.settings.page_size
    before = token_store.decode_cursor(cursor, (int,))[0] if cursor else None
    rows = await token_store.list_audit(
        session, actor=actor, action=action, agreement_id=agreement, since=since, until=until, before=before,
        limit=size + 1,
    )  # fmt: skip
    items = [
        AuditOut(
            id=r.id, at=r.at, actor_token_id=r.actor_token_id, actor_name=r.actor_name, action=r.action,
            agreement_id=r.agreement_id, target=r.target, detail=r.detail,
        )
        for r in rows[:size]
    ]  # fmt: skip
    return Page(items=items, next_cursor=token_store.encode_cursor(items[-1].id) if len(rows) > size else None)
