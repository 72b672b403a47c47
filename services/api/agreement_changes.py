"""Agreement changes as one unit: merge a request into the current document, check it, save a revision.

Every change (update, objective added/changed/removed, review, archive, restore) goes
through `commit_change`: lock the agreement row, compare If-Match with its revision,
apply the change to the current document (a frozen `shared.spec.AgreementDocument`),
check the new document whole, and save it as the next revision.

A request's fields are merged as JSON values, validated into the spec (`Frozen.changed`);
values that are already typed (an objective list, the archive mark) use `model_copy(update=...)`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from services.api import repository as repo
from services.api.schemas import (
    AgreementIn,
    AgreementOut,
    AgreementPatch,
    ObjectiveIn,
    ObjectiveOut,
    ObjectivePatch,
    ReviewIn,
    ReviewOut,
)
from shared import contract
from shared.db import Agreement, AgreementRevision, Review
from shared.errors import Conflict, Invalid, NotFound, PreconditionFailed, PreconditionRequired
from shared.spec import AgreementDocument, AgreementSpec, ObjectiveSpec, StoredObjective

Problems = list[dict[str, str]]

# Fields that may be set to null in a change; the others must stay set.
NULLABLE_AGREEMENT = {"effective_from", "effective_until", "business_hours", "fee"}
NULLABLE_OBJECTIVE = {"slice_length", "slice_target", "threshold"}
CHANGE_META = {"author", "reason"}


def etag(revision: int) -> str:
    return f'"{revision}"'


def check_if_match(if_match: str | None, agreement: Agreement) -> None:
    """412 unless If-Match names the agreement's current revision (428 without If-Match)."""
    current = etag(agreement.revision)
    if if_match is None:
        raise PreconditionRequired(
            "Changes need If-Match with the agreement's current ETag (from GET).", headers={"ETag": current}
        )
    tags = {t.strip().removeprefix("W/") for t in if_match.split(",")}
    if current not in tags:
        raise PreconditionFailed(
            f"If-Match {if_match} is not the current revision {current}; read the agreement again and retry.",
            headers={"ETag": current},
            current_revision=agreement.revision,
        )


# --- rendering --------------------------------------------------------------------------------------


def objective_out(
    agreement_id: uuid.UUID, agreement: AgreementSpec, objective_id: uuid.UUID, objective: ObjectiveSpec
) -> ObjectiveOut:
    try:
        window = contract.objective_window(agreement, objective)
        tiers = [contract.tier_json(t) for t in contract.tiers_of(window, objective.alert_policy)]
    except ValueError:
        tiers = []
    return ObjectiveOut.model_validate(
        {**objective.to_json(), "id": objective_id, "agreement_id": agreement_id, "effective_tiers": tiers}
    )


def agreement_out(agreement: Agreement, revision: AgreementRevision) -> AgreementOut:
    document = revision.document
    return AgreementOut.model_validate(
        {
            **document.model_dump(mode="json", exclude={"objectives", "archived_at"}),
            "id": agreement.id,
            "revision": revision.revision,
            "valid_from": revision.valid_from,
            "created_at": agreement.created_at,
            "updated_at": agreement.updated_at,
            "archived_at": document.archived_at,
            "objectives": [objective_out(agreement.id, document, o.id, o) for o in document.objectives],
        }
    )


# --- merging ----------------------------------------------------------------------------------------


def _merge(patch: BaseModel, nullable: set[str], skip: set[str], path: str = "") -> tuple[dict[str, Any], Problems]:
    """The fields `patch` sets, as JSON values; null for a field that must stay set is a problem."""
    update: dict[str, Any] = {}
    problems = []
    dumped = patch.model_dump(mode="json")
    for name in sorted(patch.model_fields_set - skip):
        if dumped[name] is None and name not in nullable:
            problems.append({"field": f"{path}{name}", "reason": "cannot be null"})
            continue
        update[name] = dumped[name]
    return update, problems


def _stored_objective(objective_id: uuid.UUID, item: BaseModel) -> StoredObjective:
    """A request's objective (defaults applied by `ObjectiveIn`) as the document stores it."""
    spec = ObjectiveIn.model_validate(item.model_dump(exclude={"id", *CHANGE_META})).model_dump(mode="json")
    return StoredObjective.model_validate({**spec, "id": objective_id})


def new_document(body: AgreementIn) -> AgreementDocument:
    """A created agreement's first document: its objectives get their ids."""
    terms = body.model_dump(mode="json", exclude={"objectives", *CHANGE_META})
    objectives = [_stored_objective(uuid.uuid4(), o) for o in body.objectives]
    return AgreementDocument.model_validate({**terms, "archived_at": None, "objectives": objectives})


def apply_patch(document: AgreementDocument, patch: AgreementPatch) -> tuple[AgreementDocument, Problems]:
    update, problems = _merge(patch, NULLABLE_AGREEMENT, CHANGE_META | {"objectives"})
    merged = document.changed(**update)
    if patch.objectives is not None:
        known = {o.id for o in document.objectives}
        objectives = []
        for n, item in enumerate(patch.objectives):
            if item.id is not None and item.id not in known:
                problems.append({"field": f"objectives.{n}.id", "reason": "no objective with this id here"})
            objectives.append(_stored_objective(item.id or uuid.uuid4(), item))
        merged = merged.model_copy(update={"objectives": tuple(objectives)})
    return merged, problems


async def check_document(
    session: AsyncSession,
    document: AgreementDocument,
    problems: Problems,
    *,
    strip: str | None = None,
    prefix: str = "",
) -> None:
    """422 listing every problem of `document`; `strip` drops a path prefix (objective sub-resources),
    `prefix` names where the document sits in the request (a review's `changes.`)."""
    kinds = await repo.indicator_kinds(session, {o.indicator for o in document.objectives})
    problems = problems + contract.document_problems(document, kinds)
    if strip is not None:
        problems = [{**p, "field": p["field"].removeprefix(strip)} for p in problems]
    if problems:
        problems = [{**p, "field": prefix + p["field"]} for p in problems]
        raise Invalid(f"The {'review' if prefix else 'agreement'} has validation errors.", problems)


# --- changes ----------------------------------------------------------------------------------------


async def create(session: AsyncSession, body: AgreementIn) -> tuple[Agreement, AgreementRevision]:
    document = new_document(body)
    await check_document(session, document, [])
    revision = await repo.create_agreement(session, document, author=body.author, reason=body.reason)
    return await repo.get_revision(session, revision.agreement_id)


Edit = Callable[[AgreementDocument], tuple[AgreementDocument, Problems, str | None]]
"""Current document to (new document, problems found while merging, path prefix to strip from problems)."""


async def commit_change(
    session: AsyncSession,
    agreement_id: uuid.UUID,
    if_match: str | None,
    edit: Edit,
    *,
    author: str,
    reason: str,
    change: str,
    allow_archived: bool = False,
    review_id: uuid.UUID | None = None,
    problems_prefix: str = "",
) -> tuple[Agreement, AgreementRevision]:
    """Lock, check If-Match, apply `edit` to the current document, check the result whole, save it as the next
    revision (`problems_prefix`: where the edited document sits in the request, for the 422's field names)."""
    agreement = await repo.lock_agreement(session, agreement_id)
    check_if_match(if_match, agreement)
    if agreement.archived_at is not None and not allow_archived:
        raise Conflict(f"Agreement {agreement_id} is archived; restore it before changing it.")
    _, current = await repo.get_revision(session, agreement_id)
    document, problems, strip = edit(current.document)
    await check_document(session, document, problems, strip=strip, prefix=problems_prefix)
    revision = await repo.save_revision(
        session, agreement, document, author=author, reason=reason, change=change, review_id=review_id
    )
    return agreement, revision


def patch_edit(patch: AgreementPatch) -> Edit:
    def edit(document: AgreementDocument) -> tuple[AgreementDocument, Problems, str | None]:
        merged, problems = apply_patch(document, patch)
        return merged, problems, None

    return edit


def _index(document: AgreementDocument, objective_id: uuid.UUID) -> int:
    for n, o in enumerate(document.objectives):
        if o.id == objective_id:
            return n
    raise NotFound(f"No objective {objective_id} in this agreement.")


def add_objective_edit(body: ObjectiveIn, new_id: uuid.UUID) -> Edit:
    def edit(document: AgreementDocument) -> tuple[AgreementDocument, Problems, str | None]:
        objectives = (*document.objectives, _stored_objective(new_id, body))
        return document.model_copy(update={"objectives": objectives}), [], f"objectives.{len(objectives) - 1}."

    return edit


def update_objective_edit(objective_id: uuid.UUID, patch: ObjectivePatch) -> Edit:
    def edit(document: AgreementDocument) -> tuple[AgreementDocument, Problems, str | None]:
        n = _index(document, objective_id)
        update, problems = _merge(patch, NULLABLE_OBJECTIVE, CHANGE_META)
        objectives = list(document.objectives)
        objectives[n] = objectives[n].changed(**update)
        return document.model_copy(update={"objectives": tuple(objectives)}), problems, f"objectives.{n}."

    return edit


def remove_objective_edit(objective_id: uuid.UUID) -> Edit:
    def edit(document: AgreementDocument) -> tuple[AgreementDocument, Problems, str | None]:
        n = _index(document, objective_id)
        objectives = document.objectives[:n] + document.objectives[n + 1 :]
        return document.model_copy(update={"objectives": objectives}), [], None

    return edit


def archived_edit(archived_at: datetime | None) -> Edit:
    def edit(document: AgreementDocument) -> tuple[AgreementDocument, Problems, str | None]:
        return document.model_copy(update={"archived_at": archived_at}), [], None

    return edit


async def archive(
    session: AsyncSession, agreement_id: uuid.UUID, if_match: str | None, *, author: str, reason: str
) -> tuple[Agreement, AgreementRevision]:
    now = await repo.now(session)
    return await commit_change(
        session, agreement_id, if_match, archived_edit(now), author=author, reason=reason, change="archived"
    )


async def restore(
    session: AsyncSession, agreement_id: uuid.UUID, if_match: str | None, *, author: str, reason: str
) -> tuple[Agreement, AgreementRevision]:
    agreement = await repo.get_agreement_row(session, agreement_id)
    if agreement.archived_at is None:
        raise Conflict(f"Agreement {agreement_id} is not archived.")
    return await commit_change(
        session,
        agreement_id,
        if_match,
        archived_edit(None),
        author=author,
        reason=reason,
        change="restored",
        allow_archived=True,
    )


async def review(
    session: AsyncSession, agreement_id: uuid.UUID, if_match: str | None, body: ReviewIn
) -> tuple[Review, Agreement, AgreementRevision]:
    """Record a service level review and apply its changes, as one revision (through `commit_change`)."""
    review_id = uuid.uuid4()
    changes = body.changes
    changed = False

    def edit(document: AgreementDocument) -> tuple[AgreementDocument, Problems, str | None]:
        nonlocal changed
        if changes is None:
            return document, [], None
        merged, problems = apply_patch(document, changes)
        changed = merged != document
        return merged, problems, None

    agreement, revision = await commit_change(
        session,
        agreement_id,
        if_match,
        edit,
        author=body.author,
        reason="service level review" + (f": {body.decisions[0]}" if body.decisions else ""),
        change="reviewed",
        review_id=review_id,
        problems_prefix="changes.",
    )
    row = Review(
        id=review_id,
        agreement_id=agreement_id,
        revision=revision.revision,
        author=body.author,
        notes=body.notes,
        decisions=body.decisions,
        participants=body.participants,
        changed=changed,
        created_at=revision.valid_from,
    )
    await repo.add_review(session, row)
    return row, agreement, revision


def review_out(row: Review) -> ReviewOut:
    return ReviewOut(
        id=row.id,
        agreement_id=row.agreement_id,
        revision=row.revision,
        created_at=row.created_at,
        author=row.author,
        participants=row.participants,
        notes=row.notes,
        decisions=row.decisions,
        changed=row.changed,
    )
