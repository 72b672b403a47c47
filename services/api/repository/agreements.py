"""Agreements and their revisions.

An agreement changes only through `save_revision`, under a row lock taken by `lock_agreement`:
the revision check (If-Match), the new revision row, the current-state rows the evaluator reads
(`agreements`, `objectives`) and the config NOTIFY all happen in the request's one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.api.pagination import after as keyset_after
from services.api.repository.session import announce_config_change
from services.api.repository.session import now as clock
from shared.db import Agreement, AgreementRevision, Objective
from shared.errors import NotFound
from shared.spec import AgreementDocument


async def _write_current(session: AsyncSession, agreement: Agreement, document: AgreementDocument) -> None:
    """Make `agreements` and `objectives` hold the document: the rows the evaluator reads."""
    agreement.name, agreement.provider, agreement.customer = document.name, document.provider, document.customer
    agreement.description, agreement.timezone = document.description, document.timezone
    agreement.labels, agreement.spec = dict(document.labels), document.spec()
    ids = [o.id for o in document.objectives]
    await session.flush()
    await session.execute(
        delete(Objective).where(Objective.agreement_id == agreement.id, Objective.id.not_in(ids))
        if ids
        else delete(Objective).where(Objective.agreement_id == agreement.id)
    )
    for objective in document.objectives:
        values = {"name": objective.name, "indicator_key": objective.indicator, "spec": objective.spec()}
        stmt = insert(Objective).values(id=objective.id, agreement_id=agreement.id, **values)
        await session.execute(
            stmt.on_conflict_do_update(
                index_elements=[Objective.id],
                set_={**values, "updated_at": agreement.updated_at},
                where=Objective.spec != stmt.excluded.spec,
            )
        )


async def create_agreement(
    session: AsyncSession, document: AgreementDocument, *, author: str, reason: str
) -> AgreementRevision:
    """A new agreement at revision 1."""
    now = await clock(session)
    agreement = Agreement(id=uuid.uuid4(), revision=0, created_at=now, updated_at=now)
    session.add(agreement)
    return await _record(session, agreement, document, now, author=author, reason=reason, change="created")


async def revision_documents(
    session: AsyncSession, wanted: Iterable[tuple[uuid.UUID, int]]
) -> dict[tuple[uuid.UUID, int], AgreementDocument]:
    """The documents of the named (agreement, revision) pairs that exist."""
    pairs = set(wanted)
    if not pairs:
        return {}
    query = select(AgreementRevision).where(
        tuple_(AgreementRevision.agreement_id, AgreementRevision.revision).in_(list(pairs))
    )
    return {(r.agreement_id, r.revision): r.document for r in (await session.scalars(query)).all()}


async def lock_agreement(session: AsyncSession, agreement_id: uuid.UUID) -> Agreement:
    """The agreement's current row, locked until the transaction ends: concurrent changes queue here."""
    agreement = await session.get(Agreement, agreement_id, with_for_update=True, populate_existing=True)
    if agreement is None:
        raise NotFound(f"No agreement {agreement_id}.")
    return agreement


async def save_revision(
    session: AsyncSession,
    agreement: Agreement,
    document: AgreementDocument,
    *,
    author: str,
    reason: str,
    change: str,
    review_id: uuid.UUID | None = None,
) -> AgreementRevision:
    """Record `document` as the agreement's next revision and make it current (call under `lock_agreement`)."""
    now = await clock(session)
    return await _record(
        session, agreement, document, now, author=author, reason=reason, change=change, review_id=review_id
    )


async def _record(
    session: AsyncSession,
    agreement: Agreement,
    document: AgreementDocument,
    now: datetime,
    *,
    author: str,
    reason: str,
    change: str,
    review_id: uuid.UUID | None = None,
) -> AgreementRevision:
    """The agreement's next revision, valid from `now`: its row, the current-state rows, the config NOTIFY."""
    agreement.revision += 1
    agreement.updated_at = now
    agreement.archived_at = document.archived_at
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
