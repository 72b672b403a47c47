"""Agreements (the contract) and their objectives."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response

from services.api import repository as repo
from services.api.deps import Session, State
from services.api.schemas import AgreementIn, AgreementOut, ObjectiveOut, Page
from shared.errors import Invalid

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])


async def _out(session: Session, agreement_id: uuid.UUID) -> AgreementOut:
    agreement, objectives = await repo.get_agreement(session, agreement_id)
    return AgreementOut(
        id=agreement.id,
        name=agreement.name,
        provider=agreement.provider,
        customer=agreement.customer,
        description=agreement.description,
        timezone=agreement.timezone,
        revision=agreement.revision,
        created_at=agreement.created_at,
        updated_at=agreement.updated_at,
        archived_at=agreement.archived_at,
        objectives=[
            ObjectiveOut(
                id=o.id, name=o.name, indicator=o.indicator_key, target=o.target, window=o.window,
                alert_policy=o.alert_policy,
            )
            for o in objectives
        ],
    )  # fmt: skip


@router.post("", status_code=201, summary="Create an agreement with its objectives")
async def create_agreement(body: AgreementIn, session: Session, response: Response) -> AgreementOut:
    missing = await repo.missing_indicators(session, {o.indicator for o in body.objectives})
    if missing:
        raise Invalid(
            "Objectives name unknown indicators.",
            [
                {"field": f"objectives.{n}.indicator", "reason": f"unknown indicator {o.indicator!r}"}
                for n, o in enumerate(body.objectives)
                if o.indicator in missing
            ],
        )
    agreement_id = await repo.create_agreement(
        session,
        body.model_dump(include={"name", "provider", "customer", "description", "timezone"}),
        [
            {
                "name": o.name,
                "indicator_key": o.indicator,
                "target": o.target,
                "window": o.window,
                "alert_policy": o.alert_policy.model_dump(exclude_none=True),
            }
            for o in body.objectives
        ],
    )
    out = await _out(session, agreement_id)
    response.headers["Location"] = f"/v1/agreements/{agreement_id}"
    response.headers["ETag"] = f'"{out.revision}"'
    return out


@router.get("", summary="List agreements")
async def list_agreements(
    session: Session,
    state: State,
    customer: str | None = None,
    provider: str | None = None,
    cursor: str | None = None,
    limit: int | None = Query(default=None, ge=1, le=1000),
) -> Page[AgreementOut]:
    size = limit or state.settings.page_size
    after = repo.decode_cursor(cursor) if cursor else None
    rows = await repo.list_agreements(session, customer=customer, provider=provider, after=after, limit=size + 1)
    items = [await _out(session, a.id) for a in rows[:size]]
    last = rows[size - 1] if len(rows) > size else None
    return Page(
        items=items, next_cursor=repo.encode_cursor(last.created_at.isoformat(), str(last.id)) if last else None
    )


@router.get("/{agreement_id}", summary="Get an agreement")
async def get_agreement(agreement_id: uuid.UUID, session: Session, response: Response) -> AgreementOut:
    out = await _out(session, agreement_id)
    response.headers["ETag"] = f'"{out.revision}"'
    return out
