"""Agreements and their revisions.

An agreement changes only through `save_revision`, under a row lock taken by `lock_agreement`:
the revision check (If-Match), the new revision row, the current-state rows the evaluator reads
(`agreements`, `objectives`) and the config NOTIFY all happen in the request's one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.pagination import after as keyset_after
from services.api.repository.session import announce_config_change
from shared.contract import legacy_columns
from shared.db import Agreement, AgreementRevision, Objective
from shared.errors import NotFound

Document = dict[str, Any]


def _split(document: Document) -> tuple[Document, list[Document]]:
    """A revision document's agreement spec and its objectives."""
    spec = {k: v for k, v in document.items() if k not in ("objectives", "archived_at")}
    return spec, list(document.get("objectives", ()))


async def _write_current(session: AsyncSession, agreement: Agreement, document: Document) -> None:
    """Make `agreements` and `objectives` hold the document: the rows the evaluator reads."""
    spec, objectives = _split(document)
    agreement.name, agreement.provider, agreement.customer = spec["name"], spec["provider"], spec["customer"]
    agreement.description, agreement.timezone = spec["description"], spec["timezone"]
    agreement.labels, agreement.spec = spec["labels"], spec
    ids = [uuid.UUID(o["id"]) for o in objectives]
    await session.flush()
    await session.execute(
        delete(Objective).where(Objective.agreement_id == agreement.id, Objective.id.not_in(ids))
        if ids
        else delete(Objective).where(Objective.agreement_id == agreement.id)
    )
    for objective in objectives:
        body = {k: v for k, v in objective.items() if k != "id"}
        values = {**legacy_columns(body), "spec": body}
        stmt = insert(Objective).values(id=uuid.UUID(objective["id"]), agreement_id=agreement.id, **values)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Objective.id],
                set_={**values, "updated_at": agreement.updated_at},
                where=Objective.spec != stmt.excluded.spec,
            )
        )


async def create_agreement(session: AsyncSession, document: Document, *, author: str, reason: str) -> AgreementRevision:
    """A new agreement at revision 1; objectives without an id get one."""
    now = await session.scalar(select(func.clock_timestamp()))
    document = {**document, "archived_at": None}
    document["objectives"] = [{"id": str(uuid.uuid4()), **o} for o in document.get("objectives", ())]
    agreement = Agreement(id=uuid.uuid4(), revision=1, created_at=now, updated_at=now)
    session.add(agreement)
    await _write_current(session, agreement, document)
    revision = AgreementRevision(
        agreement_id=agreement.id,
        revision=1,
        valid_from=now,
        author=author,
        reason=reason,
        change="created",
        document=document,
    )
    session.add(revision)
    await session.flush()
    await announce_config_change(session, f"agreement:{agreement.id}")
    return revision


async def lock_agreement(session: AsyncSession, agreement_id: uuid.UUID) -> Agreement:
    """The agreement's current row, locked until the transaction ends: concurrent changes queue here."""
    agreement = await session.get(Agreement, agreement_id, with_for_update=True, populate_existing=True)
    if agreement is None:
        raise NotFound(f"No agreement {agreement_id}.")
    return agreement


async def save_revision(
    session: AsyncSession,
    agreement: Agreement,
    document: Document,
    *,
    author: str,
    reason: str,
    change: str,
    review_id: uuid.UUID | None = None,
) -> AgreementRevision:
    """Record `document` as the agreement's next revision and make it current (call under `lock_agreement`)."""
    now = await session.scalar(select(func.clock_timestamp()))
    agreement.revision += 1
    agreement.updated_at = now  # type: ignore[assignment]
    archived = document.get("archived_at")
    agreement.archived_at = datetime.fromisoformat(archived) if archived else None
    await _write_current(session, agreement, document)
    revision = AgreementRevision(
        agreement_id=agreement.id,
        revision=agreement.revision,
        valid_from=now,
        author=author,
        reason=reason,
        change=change,
        review_id=review_id,
        document=document,
    )
    session.add(revision)
    await session.flush()
    await announce_config_change(session, f"agreement:{agreement.id}")
    return revision


async def get_revision(
    session: AsyncSession, agreement_id: uuid.UUID, *, number: int | None = None, at: datetime | None = None
) -> tuple[Agreement, AgreementRevision]:
    """The current revision, revision `number`, or the one in force at instant `at`."""
    agreement = await session.get(Agreement, agreement_id)
    if agreement is None:
        raise NotFound(f"No agreement {agreement_id}.")
    query = select(AgreementRevision).where(AgreementRevision.agreement_id == agreement_id)
    if at is not None:
        query = query.where(AgreementRevision.valid_from <= at).order_by(AgreementRevision.revision.desc()).limit(1)
    else:
        query = query.where(AgreementRevision.revision == (agreement.revision if number is None else number))
    revision = await session.scalar(query)
    if revision is None:
        if at is not None:
            raise NotFound(f"Agreement {agreement_id} did not exist yet at {at.isoformat()}.")
        raise NotFound(f"Agreement {agreement_id} has no revision {number}.")
    return agreement, revision


async def list_revisions(
    session: AsyncSession, agreement_id: uuid.UUID, *, before: int | None, limit: int
) -> Sequence[AgreementRevision]:
    if await session.get(Agreement, agreement_id) is None:
        raise NotFound(f"No agreement {agreement_id}.")
    query = (
        select(AgreementRevision)
        .where(AgreementRevision.agreement_id == agreement_id)
        .order_by(AgreementRevision.revision.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(AgreementRevision.revision < before)
    return (await session.scalars(query)).all()


def agreement_filters(
    query: Any, *, customer: str | None, provider: str | None, indicator: str | None, labels: dict[str, str]
) -> Any:
    if customer is not None:
        query = query.where(Agreement.customer == customer)
    if provider is not None:
        query = query.where(Agreement.provider == provider)
    if labels:
        query = query.where(Agreement.labels.contains(labels))
    if indicator is not None:
        query = query.where(
            exists().where(Objective.agreement_id == Agreement.id, Objective.indicator_key == indicator)
        )
    return query


async def list_agreements(
    session: AsyncSession,
    *,
    customer: str | None,
    provider: str | None,
    indicator: str | None,
    labels: dict[str, str],
    archived: bool,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> Sequence[tuple[Agreement, AgreementRevision]]:
    """Agreements (oldest first) with their current revision."""
    query = (
        select(Agreement, AgreementRevision)
        .join(
            AgreementRevision,
            and_(AgreementRevision.agreement_id == Agreement.id, AgreementRevision.revision == Agreement.revision),
        )
        .order_by(Agreement.created_at, Agreement.id)
    )
    if not archived:
        query = query.where(Agreement.archived_at.is_(None))
    query = agreement_filters(query, customer=customer, provider=provider, indicator=indicator, labels=labels)
    if after is not None:
        query = query.where(keyset_after(Agreement.created_at, Agreement.id, after))
    return [(a, r) for a, r in (await session.execute(query.limit(limit))).all()]


async def get_agreement_row(session: AsyncSession, agreement_id: uuid.UUID) -> Agreement:
    agreement = await session.get(Agreement, agreement_id)
    if agreement is None:
        raise NotFound(f"No agreement {agreement_id}.")
    return agreement


async def customer_agreements(session: AsyncSession, customer: str) -> Sequence[Agreement]:
    """The customer's agreements that are not archived, by name."""
    query = (
        select(Agreement)
        .where(Agreement.customer == customer, Agreement.archived_at.is_(None))
        .order_by(Agreement.name, Agreement.id)
    )
    return (await session.scalars(query)).all()


async def all_revisions(session: AsyncSession, agreement_id: uuid.UUID) -> Sequence[AgreementRevision]:
    """Every revision of an agreement, oldest first (history evaluates each instant under its revision)."""
    query = (
        select(AgreementRevision)
        .where(AgreementRevision.agreement_id == agreement_id)
        .order_by(AgreementRevision.revision)
    )
    return (await session.scalars(query)).all()
