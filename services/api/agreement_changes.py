"""Agreement changes as one unit: merge a request into the current document, check it, save a revision.

Every change (update, objective added/changed/removed, review, archive, restore) goes
through `_commit_change`: lock the agreement row, compare If-Match with its revision,
check the new document whole, and save it as the next revision.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
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

Document = dict[str, Any]

# Fields that may be set to null in a change; the others must stay set.
NULLABLE_AGREEMENT = {"effective_from", "effective_until", "business_hours"}
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


def objective_out(agreement_id: uuid.UUID, spec: Document, objective: Document) -> ObjectiveOut:
    try:
        tiers = [contract.tier_json(t) for t in contract.tiers_of(contract.objective_window(spec, objective),
                                                                  objective["alert_policy"])]  # fmt: skip
    except ValueError:
        tiers = []
    return ObjectiveOut.model_validate({**objective, "agreement_id": agreement_id, "effective_tiers": tiers})


def agreement_out(agreement: Agreement, revision: AgreementRevision) -> AgreementOut:
    document = revision.document
    spec = {k: v for k, v in document.items() if k not in ("objectives", "archived_at")}
    return AgreementOut.model_validate(
        {
            **spec,
            "id": agreement.id,
            "revision": revision.revision,
            "valid_from": revision.valid_from,
            "created_at": agreement.created_at,
            "updated_at": agreement.updated_at,
            "archived_at": document.get("archived_at"),
            "objectives": [objective_out(agreement.id, spec, o) for o in document.get("objectives", ())],
        }
    )


# --- merging ----------------------------------------------------------------------------------------


def _merge(
    current: Document, patch: BaseModel, nullable: set[str], skip: set[str], path: str = ""
) -> tuple[Document, list[dict[str, str]]]:
    """`current` with the fields `patch` sets; null for a field that must stay set is a problem."""
    merged = copy.deepcopy(current)
    problems = []
    dumped = patch.model_dump(mode="json")
    for name in sorted(patch.model_fields_set - skip):
        if dumped[name] is None and name not in nullable:
            problems.append({"field": f"{path}{name}", "reason": "cannot be null"})
            continue
        merged[name] = dumped[name]
    return merged, problems


def _objective_spec(item: BaseModel) -> Document:
    return ObjectiveIn.model_validate(item.model_dump(exclude={"id", *CHANGE_META})).model_dump(mode="json")


def apply_patch(document: Document, patch: AgreementPatch, path: str = "") -> tuple[Document, list[dict[str, str]]]:
    merged, problems = _merge(document, patch, NULLABLE_AGREEMENT, CHANGE_META | {"objectives"}, path)
    if patch.objectives is not None:
        known = {o["id"] for o in document.get("objectives", ())}
        objectives = []
        for n, item in enumerate(patch.objectives):
            if item.id is not None and str(item.id) not in known:
                problems.append({"field": f"{path}objectives.{n}.id", "reason": "no objective with this id here"})
            objectives.append({"id": str(item.id or uuid.uuid4()), **_objective_spec(item)})
        merged["objectives"] = objectives
    return merged, problems


async def check_document(
    session: AsyncSession, document: Document, problems: list[dict[str, str]], *, strip: str | None = None
) -> None:
    """422 listing every problem of `document`; `strip` drops a path prefix (objective sub-resources)."""
    kinds = await repo.indicator_kinds(session, {o["indicator"] for o in document.get("objectives", ())})
    problems = problems + contract.document_problems(document, kinds)
    if strip is not None:
        problems = [{**p, "field": p["field"].removeprefix(strip)} for p in problems]
    if problems:
        raise Invalid("The agreement has validation errors.", problems)


# --- changes ----------------------------------------------------------------------------------------


async def create(session: AsyncSession, body: AgreementIn) -> tuple[Agreement, AgreementRevision]:
    document = body.model_dump(mode="json", exclude=CHANGE_META)
    await check_document(session, document, [])
    revision = await repo.create_agreement(session, document, author=body.author, reason=body.reason)
    return await repo.get_revision(session, revision.agreement_id)


Edit = Callable[[Document], tuple[Document, list[dict[str, str]], str | None]]
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
) -> tuple[Agreement, AgreementRevision]:
    agreement = await repo.lock_agreement(session, agreement_id)
    check_if_match(if_match, agreement)
    if agreement.archived_at is not None and not allow_archived:
        raise Conflict(f"Agreement {agreement_id} is archived; restore it before changing it.")
    _, current = await repo.get_revision(session, agreement_id)
    document, problems, strip = edit(copy.deepcopy(current.document))
    await check_document(session, document, problems, strip=strip)
    revision = await repo.save_revision(
        session, agreement, document, author=author, reason=reason, change=change, review_id=review_id
    )
    return agreement, revision


def patch_edit(patch: AgreementPatch) -> Edit:
    def edit(document: Document) -> tuple[Document, list[dict[str, str]], str | None]:
        merged, problems = apply_patch(document, patch)
        return merged, problems, None

    return edit


def _index(document: Document, objective_id: uuid.UUID) -> int:
    for n, o in enumerate(document.get("objectives", ())):
        if o["id"] == str(objective_id):
            return n
    raise NotFound(f"No objective {objective_id} in this agreement.")


def add_objective_edit(body: ObjectiveIn, new_id: uuid.UUID) -> Edit:
    def edit(document: Document) -> tuple[Document, list[dict[str, str]], str | None]:
        objectives = document.setdefault("objectives", [])
        objectives.append({"id": str(new_id), **_objective_spec(body)})
        return document, [], f"objectives.{len(objectives) - 1}."

    return edit


def update_objective_edit(objective_id: uuid.UUID, patch: ObjectivePatch) -> Edit:
    def edit(document: Document) -> tuple[Document, list[dict[str, str]], str | None]:
        n = _index(document, objective_id)
        merged, problems = _merge(document["objectives"][n], patch, NULLABLE_OBJECTIVE, CHANGE_META)
        document["objectives"][n] = merged
        return document, problems, f"objectives.{n}."

    return edit


def remove_objective_edit(objective_id: uuid.UUID) -> Edit:
    def edit(document: Document) -> tuple[Document, list[dict[str, str]], str | None]:
        del document["objectives"][_index(document, objective_id)]
        return document, [], None

    return edit


def archived_edit(archived_at: str | None) -> Edit:
    def edit(document: Document) -> tuple[Document, list[dict[str, str]], str | None]:
        return {**document, "archived_at": archived_at}, [], None

    return edit


async def archive(
    session: AsyncSession, agreement_id: uuid.UUID, if_match: str | None, *, author: str, reason: str
) -> tuple[Agreement, AgreementRevision]:
    now = (await repo.now(session)).isoformat()
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
    """Record a service level review and apply its changes, as one revision."""
    review_id = uuid.uuid4()
    changes = body.changes

    def edit(document: Document) -> tuple[Document, list[dict[str, str]], str | None]:
        if changes is None:
            return document, [], None
        merged, problems = apply_patch(document, changes, "changes.")
        return merged, problems, None

    agreement = await repo.lock_agreement(session, agreement_id)
    check_if_match(if_match, agreement)
    if agreement.archived_at is not None:
        raise Conflict(f"Agreement {agreement_id} is archived; restore it before reviewing it.")
    _, current = await repo.get_revision(session, agreement_id)
    document, problems, _ = edit(copy.deepcopy(current.document))
    kinds = await repo.indicator_kinds(session, {o["indicator"] for o in document.get("objectives", ())})
    problems = problems + [{**p, "field": f"changes.{p['field']}"} for p in contract.document_problems(document, kinds)]
    if problems:
        raise Invalid("The review's changes have validation errors.", problems)
    revision = await repo.save_revision(
        session,
        agreement,
        document,
        author=body.author,
        reason="service level review" + (f": {body.decisions[0]}" if body.decisions else ""),
        change="reviewed",
        review_id=review_id,
    )
    row = Review(
        id=review_id,
        agreement_id=agreement_id,
        revision=revision.revision,
        author=body.author,
        notes=body.notes,
        decisions=body.decisions,
        participants=body.participants,
        changed=document != current.document,
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
