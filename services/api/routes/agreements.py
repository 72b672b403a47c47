"""Agreements (the contract): terms, objectives, revisions, reviews and archive.

Every change needs `If-Match` with the agreement's ETag (its revision, quoted) and makes
a new immutable revision; a stale ETag is refused with 412.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Response

from services.api import agreement_changes, pagination
from services.api import repository as repo
from services.api.agreement_changes import agreement_out, etag, review_out
from services.api.deps import Session, State
from services.api.params import At, Author, Cursor, LabelFilters, Limit, Reason, Revision, RevisionPath, Text
from services.api.schemas import (
    AgreementChange,
    AgreementIn,
    AgreementOut,
    ObjectiveChange,
    ObjectiveCreate,
    ObjectiveOut,
    Page,
    ReviewIn,
    ReviewOut,
    RevisionOut,
)
from shared.db import Agreement, AgreementRevision

router = APIRouter(prefix="/v1/agreements", tags=["agreements"])

IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", description='The agreement\'s current ETag, e.g. `"3"`.', examples=['"1"']),
]
CHANGE_RESPONSES: dict[int | str, dict[str, str]] = {
    404: {"description": "No such agreement (or objective)."},
    409: {"description": "The agreement is archived."},
    412: {"description": "If-Match is not the current revision."},
    422: {"description": "Validation errors, every one listed with its field."},
    428: {"description": "If-Match is missing."},
}


def _respond(response: Response, agreement: Agreement, revision: AgreementRevision) -> AgreementOut:
    response.headers["ETag"] = etag(revision.revision)
    return agreement_out(agreement, revision)


@router.post("", status_code=201, summary="Create an agreement with its objectives", responses={422: {}})
async def create_agreement(body: AgreementIn, session: Session, response: Response) -> AgreementOut:
    agreement, revision = await agreement_changes.create(session, body)
    response.headers["Location"] = f"/v1/agreements/{agreement.id}"
    return _respond(response, agreement, revision)


MAX_PAGE_BYTES = 4 * 1024 * 1024
"""A page of agreements holds at most this much of their documents (one agreement can reach ~2 MB)."""


@router.get(
    "",
    summary="List agreements (current revisions), oldest first",
    description="A page ends after `limit` agreements or 4 MiB of them, whichever comes first; "
    "follow `next_cursor` for the rest.",
)
async def list_agreements(
    session: Session,
    state: State,
    labels: LabelFilters,
    customer: Text = None,
    provider: Text = None,
    indicator: Annotated[Text, Query(description="Agreements with an objective on this indicator.")] = None,
    archived: Annotated[bool, Query(description="Include archived agreements.")] = False,
    cursor: Cursor = None,
    limit: Limit = None,
) -> Page[AgreementOut]:
    size = limit or state.settings.page_size
    rows = await repo.list_agreements(
        session,
        customer=customer,
        provider=provider,
        indicator=indicator,
        labels=labels,
        archived=archived,
        after=pagination.time_id_after(cursor, uuid.UUID),
        limit=size + 1,
    )
    # A page ends after `size` agreements or once it holds MAX_PAGE_BYTES of them, whichever comes first.
    page, next_cursor = pagination.page(
        rows,
        size,
        lambda row: (row[0].created_at.isoformat(), str(row[0].id)),
        weigh=lambda row: len(orjson.dumps(row[1].document)),
        max_weight=MAX_PAGE_BYTES,
    )
    return Page(items=[agreement_out(a, r) for a, r in page], next_cursor=next_cursor)


@router.get("/{agreement_id}", summary="Get an agreement: as it is, at a revision, or as it was at an instant")
async def get_agreement(
    agreement_id: uuid.UUID,
    session: Session,
    response: Response,
    at: At = None,
    revision: Revision = None,
) -> AgreementOut:
    agreement, rev = await repo.get_revision(session, agreement_id, number=revision, at=at)
    out = agreement_out(agreement, rev)
    response.headers["ETag"] = etag(agreement.revision)
    return out


@router.patch("/{agreement_id}", summary="Change an agreement's terms and objectives", responses=CHANGE_RESPONSES)
async def update_agreement(
    agreement_id: uuid.UUID, body: AgreementChange, session: Session, response: Response, if_match: IfMatch = None
) -> AgreementOut:
    agreement, revision = await agreement_changes.commit_change(
        session,
        agreement_id,
        if_match,
        agreement_changes.patch_edit(body),
        author=body.author,
        reason=body.reason,
        change="updated",
    )
    return _respond(response, agreement, revision)


@router.delete("/{agreement_id}", summary="Archive an agreement (its history stays)", responses=CHANGE_RESPONSES)
async def archive_agreement(
    agreement_id: uuid.UUID,
    session: Session,
    response: Response,
    author: Author,
    reason: Reason = "",
    if_match: IfMatch = None,
) -> AgreementOut:
    agreement, revision = await agreement_changes.archive(session, agreement_id, if_match, author=author, reason=reason)
    return _respond(response, agreement, revision)


@router.post("/{agreement_id}/restore", summary="Restore an archived agreement", responses=CHANGE_RESPONSES)
async def restore_agreement(
    agreement_id: uuid.UUID,
    session: Session,
    response: Response,
    author: Author,
    reason: Reason = "",
    if_match: IfMatch = None,
) -> AgreementOut:
    agreement, revision = await agreement_changes.restore(session, agreement_id, if_match, author=author, reason=reason)
    return _respond(response, agreement, revision)


# --- objectives of an agreement ----------------------------------------------------------------------


@router.post("/{agreement_id}/objectives", status_code=201, summary="Add an objective", responses=CHANGE_RESPONSES)
async def add_objective(
    agreement_id: uuid.UUID, body: ObjectiveCreate, session: Session, response: Response, if_match: IfMatch = None
) -> ObjectiveOut:
    new_id = uuid.uuid4()
    agreement, revision = await agreement_changes.commit_change(
        session,
        agreement_id,
        if_match,
        agreement_changes.add_objective_edit(body, new_id),
        author=body.author,
        reason=body.reason,
        change="objective-added",
    )
    out = _respond(response, agreement, revision)
    response.headers["Location"] = f"/v1/objectives/{new_id}"
    return next(o for o in out.objectives if o.id == new_id)


@router.patch("/{agreement_id}/objectives/{objective_id}", summary="Change an objective", responses=CHANGE_RESPONSES)
async def update_objective(
    agreement_id: uuid.UUID,
    objective_id: uuid.UUID,
    body: ObjectiveChange,
    session: Session,
    response: Response,
    if_match: IfMatch = None,
) -> ObjectiveOut:
    agreement, revision = await agreement_changes.commit_change(
        session,
        agreement_id,
        if_match,
        agreement_changes.update_objective_edit(objective_id, body),
        author=body.author,
        reason=body.reason,
        change="objective-updated",
    )
    out = _respond(response, agreement, revision)
    return next(o for o in out.objectives if o.id == objective_id)


@router.delete(
    "/{agreement_id}/objectives/{objective_id}",
    summary="Remove an objective (its terms stay in earlier revisions)",
    responses=CHANGE_RESPONSES,
)
async def remove_objective(
    agreement_id: uuid.UUID,
    objective_id: uuid.UUID,
    session: Session,
    response: Response,
    author: Author,
    reason: Reason = "",
    if_match: IfMatch = None,
) -> AgreementOut:
    agreement, revision = await agreement_changes.commit_change(
        session,
        agreement_id,
        if_match,
        agreement_changes.remove_objective_edit(objective_id),
        author=author,
        reason=reason,
        change="objective-removed",
    )
    return _respond(response, agreement, revision)


# --- revisions and reviews ---------------------------------------------------------------------------


@router.get("/{agreement_id}/revisions", summary="The agreement's revisions, newest first")
async def list_revisions(
    agreement_id: uuid.UUID, session: Session, state: State, cursor: Cursor = None, limit: Limit = None
) -> Page[RevisionOut]:
    size = limit or state.settings.page_size
    before = pagination.revision_before(cursor)
    rows = await repo.list_revisions(session, agreement_id, before=before, limit=size + 1)
    page, next_cursor = pagination.page(rows, size, lambda r: (r.revision,))
    items = [
        RevisionOut(
            revision=r.revision, valid_from=r.valid_from, author=r.author, reason=r.reason, change=r.change,
            review_id=r.review_id,
        )
        for r in page
    ]  # fmt: skip
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{agreement_id}/revisions/{revision}", summary="The agreement as it was at one revision")
async def get_revision(
    agreement_id: uuid.UUID, revision: RevisionPath, session: Session, response: Response
) -> AgreementOut:
    agreement, rev = await repo.get_revision(session, agreement_id, number=revision)
    response.headers["ETag"] = etag(agreement.revision)
    return agreement_out(agreement, rev)


@router.post(
    "/{agreement_id}/reviews",
    status_code=201,
    summary="Record a service level review; its changes apply in the same revision",
    responses=CHANGE_RESPONSES,
)
async def create_review(
    agreement_id: uuid.UUID, body: ReviewIn, session: Session, response: Response, if_match: IfMatch = None
) -> ReviewOut:
    row, _, revision = await agreement_changes.review(session, agreement_id, if_match, body)
    response.headers["ETag"] = etag(revision.revision)
    response.headers["Location"] = f"/v1/agreements/{agreement_id}/reviews/{row.id}"
    return review_out(row)


@router.get("/{agreement_id}/reviews", summary="The agreement's reviews, newest first")
async def list_reviews(
    agreement_id: uuid.UUID, session: Session, state: State, cursor: Cursor = None, limit: Limit = None
) -> Page[ReviewOut]:
    size = limit or state.settings.page_size
    before = pagination.revision_before(cursor)
    rows = await repo.list_reviews(session, agreement_id, before=before, limit=size + 1)
    page, next_cursor = pagination.page(rows, size, lambda r: (r.revision,))
    return Page(items=[review_out(r) for r in page], next_cursor=next_cursor)


@router.get("/{agreement_id}/reviews/{review_id}", summary="One review")
async def get_review(agreement_id: uuid.UUID, review_id: uuid.UUID, session: Session) -> ReviewOut:
    return review_out(await repo.get_review(session, agreement_id, review_id))
