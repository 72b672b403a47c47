"""Queries of the api; routes call these, nothing here commits (the unit of work does).

An agreement changes only through `save_revision`, under a row lock taken by
`lock_agreement`: the revision check (If-Match), the new revision row, the
current-state rows the evaluator reads (`agreements`, `objectives`) and the
config NOTIFY all happen in the request's one transaction.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import and_, delete, exists, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contract import MAX_QUERY_LENGTH, legacy_columns, text_problem
from shared.db import (
    CONFIG_CHANNEL,
    Agreement,
    AgreementRevision,
    BreachEvent,
    Indicator,
    IndicatorState,
    Objective,
    ObjectiveStatus,
    Review,
)
from shared.errors import Conflict, Invalid, NotFound
from shared.history import Bucket
from shared.series import SeriesKey, series_key

Document = dict[str, Any]


async def announce_config_change(session: AsyncSession, what: str) -> None:
    """NOTIFY listeners (ingest, evaluator); delivered only if and when the transaction commits."""
    await session.execute(text("SELECT pg_notify(:channel, :what)"), {"channel": CONFIG_CHANNEL, "what": what})


def _bad_cursor() -> Invalid:
    return Invalid("Invalid cursor.", [{"field": "cursor", "reason": "not a cursor this api issued"}])


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode()


def _cursor_part_ok(part: Any) -> bool:
    """A cursor holds short strings without control characters and integers that fit a BIGINT: a forged one
    must not reach the database with a NUL or an overflowing number."""
    if isinstance(part, str):
        return text_problem(part, MAX_QUERY_LENGTH) is None
    return isinstance(part, int) and not isinstance(part, bool) and -(2**63) <= part < 2**63


def decode_cursor(cursor: str, arity: int = 1) -> list[Any]:
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, orjson.JSONDecodeError):
        parts = None
    if not isinstance(parts, list) or len(parts) != arity or not all(_cursor_part_ok(p) for p in parts):
        raise _bad_cursor()
    return parts


def decode_revision_cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    value = decode_cursor(cursor)[0]
    if not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        raise _bad_cursor()
    return value


def _cursor_instant(part: Any) -> datetime:
    """An aware instant of a cursor within the years 1..9999 in UTC too."""
    instant = datetime.fromisoformat(part)
    if instant.tzinfo is None:
        raise ValueError("naive")
    instant.astimezone(UTC)  # OverflowError near the ends of the calendar
    return instant


def _after_time_id(parts: list[Any]) -> tuple[datetime, uuid.UUID]:
    try:
        return _cursor_instant(parts[0]), uuid.UUID(parts[1])
    except (TypeError, ValueError, OverflowError):
        raise _bad_cursor() from None


def _after(time_column: Any, id_column: Any, time: datetime, last: object) -> Any:
    """Keyset pagination: rows after (time, id) in (time, id) order."""
    return or_(time_column > time, and_(time_column == time, id_column > last))


def parse_label_filters(values: Iterable[str]) -> dict[str, str]:
    """`team=payments` query values to a label map; 422 naming the bad one otherwise."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, wanted = value.partition("=")
        if not sep or not name:
            raise Invalid("Invalid label filter.", [{"field": "label", "reason": f"{value!r} is not name=value"}])
        out[name] = wanted
    return out


# --- indicators -------------------------------------------------------------------------------------


async def create_indicator(session: AsyncSession, key: str, kind: str, unit: str | None, description: str) -> Indicator:
    if await session.get(Indicator, key) is not None:
        raise Conflict(f"Indicator {key!r} exists already.")
    indicator = Indicator(key=key, kind=kind, unit=unit, description=description)
    session.add(indicator)
    await session.flush()
    await session.refresh(indicator)
    await announce_config_change(session, f"indicator:{key}")
    return indicator


async def get_indicator(session: AsyncSession, key: str, *, lock: bool = False) -> Indicator:
    indicator = await session.get(Indicator, key, with_for_update=lock)
    if indicator is None:
        raise NotFound(f"No indicator {key!r}.")
    return indicator


async def indicator_in_use(session: AsyncSession, key: str) -> bool:
    """Whether an objective of an agreement that is not archived uses the indicator."""
    query = select(
        exists().where(
            Objective.indicator_key == key, Objective.agreement_id == Agreement.id, Agreement.archived_at.is_(None)
        )
    )
    return bool(await session.scalar(query))


async def update_indicator(session: AsyncSession, key: str, changes: dict[str, Any]) -> Indicator:
    indicator = await get_indicator(session, key, lock=True)
    if indicator.archived_at is not None:
        raise Conflict(f"Indicator {key!r} is archived.")
    if "kind" in changes and changes["kind"] != indicator.kind and await indicator_in_use(session, key):
        raise Conflict(f"Indicator {key!r} is used by objectives; its kind cannot change.")
    for name, value in changes.items():
        setattr(indicator, name, value)
    indicator.updated_at = await session.scalar(select(func.clock_timestamp()))  # type: ignore[assignment]
    await session.flush()
    await announce_config_change(session, f"indicator:{key}")
    return indicator


async def archive_indicator(session: AsyncSession, key: str) -> Indicator:
    indicator = await get_indicator(session, key, lock=True)
    if indicator.archived_at is None:
        if await indicator_in_use(session, key):
            raise Conflict(f"Indicator {key!r} is used by objectives of agreements that are not archived.")
        now = await session.scalar(select(func.clock_timestamp()))
        indicator.archived_at = now
        indicator.updated_at = now  # type: ignore[assignment]
        await session.flush()
        await announce_config_change(session, f"indicator:{key}")
    return indicator


async def list_indicators(
    session: AsyncSession, *, kind: str | None, archived: bool, after: str | None, limit: int
) -> Sequence[Indicator]:
    query = select(Indicator).order_by(Indicator.key).limit(limit)
    if not archived:
        query = query.where(Indicator.archived_at.is_(None))
    if kind is not None:
        query = query.where(Indicator.kind == kind)
    if after is not None:
        query = query.where(Indicator.key > after)
    return (await session.scalars(query)).all()


async def indicator_kinds(session: AsyncSession, keys: Iterable[str]) -> dict[str, str]:
    """Kinds of the named indicators that exist and are not archived."""
    rows = await session.execute(
        select(Indicator.key, Indicator.kind).where(Indicator.key.in_(set(keys)), Indicator.archived_at.is_(None))
    )
    return {key: kind for key, kind in rows.all()}


# --- agreements and revisions -----------------------------------------------------------------------


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


def _agreement_filters(
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
    after: list[Any] | None,
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
    query = _agreement_filters(query, customer=customer, provider=provider, indicator=indicator, labels=labels)
    if after is not None:
        query = query.where(_after(Agreement.created_at, Agreement.id, *_after_time_id(after)))
    return [(a, r) for a, r in (await session.execute(query.limit(limit))).all()]


async def list_objectives(
    session: AsyncSession,
    *,
    agreement_id: uuid.UUID | None,
    customer: str | None,
    provider: str | None,
    indicator: str | None,
    labels: dict[str, str],
    archived: bool,
    after: list[Any] | None,
    limit: int,
) -> Sequence[tuple[Objective, Agreement]]:
    """Objectives of current revisions (oldest first) with their agreement."""
    query = select(Objective, Agreement).join(Agreement, Agreement.id == Objective.agreement_id)
    query = query.order_by(Objective.created_at, Objective.id)
    if agreement_id is not None:
        query = query.where(Objective.agreement_id == agreement_id)
    if not archived:
        query = query.where(Agreement.archived_at.is_(None))
    query = _agreement_filters(query, customer=customer, provider=provider, indicator=None, labels=labels)
    if indicator is not None:
        query = query.where(Objective.indicator_key == indicator)
    if after is not None:
        query = query.where(_after(Objective.created_at, Objective.id, *_after_time_id(after)))
    return [(o, a) for o, a in (await session.execute(query.limit(limit))).all()]


async def get_objective(session: AsyncSession, objective_id: uuid.UUID) -> tuple[Objective, Agreement]:
    row = (
        await session.execute(
            select(Objective, Agreement)
            .join(Agreement, Agreement.id == Objective.agreement_id)
            .where(Objective.id == objective_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"No objective {objective_id}.")
    return row[0], row[1]


async def get_agreement_row(session: AsyncSession, agreement_id: uuid.UUID) -> Agreement:
    agreement = await session.get(Agreement, agreement_id)
    if agreement is None:
        raise NotFound(f"No agreement {agreement_id}.")
    return agreement


async def add_review(session: AsyncSession, review: Review) -> None:
    session.add(review)
    await session.flush()


async def list_reviews(
    session: AsyncSession, agreement_id: uuid.UUID, *, before: int | None, limit: int
) -> Sequence[Review]:
    await get_agreement_row(session, agreement_id)
    query = select(Review).where(Review.agreement_id == agreement_id).order_by(Review.revision.desc()).limit(limit)
    if before is not None:
        query = query.where(Review.revision < before)
    return (await session.scalars(query)).all()


async def get_review(session: AsyncSession, agreement_id: uuid.UUID, review_id: uuid.UUID) -> Review:
    review = await session.get(Review, review_id)
    if review is None or review.agreement_id != agreement_id:
        raise NotFound(f"No review {review_id} of agreement {agreement_id}.")
    return review


async def now(session: AsyncSession) -> datetime:
    value: datetime | None = await session.scalar(select(func.clock_timestamp()))
    assert value is not None
    return value


# --- status and events ------------------------------------------------------------------------------


async def read_snapshot(session: AsyncSession) -> None:
    """Make the request's reads one snapshot (REPEATABLE READ; call before its first query).

    A status row and the buckets it is recomputed from are then from the same evaluator checkpoint.
    """
    await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


async def statuses_of(session: AsyncSession, objective_ids: list[uuid.UUID]) -> dict[uuid.UUID, ObjectiveStatus]:
    rows = (await session.scalars(select(ObjectiveStatus).where(ObjectiveStatus.objective_id.in_(objective_ids)))).all()
    return {r.objective_id: r for r in rows}


async def customer_agreements(session: AsyncSession, customer: str) -> Sequence[Agreement]:
    """The customer's agreements that are not archived, by name."""
    query = (
        select(Agreement)
        .where(Agreement.customer == customer, Agreement.archived_at.is_(None))
        .order_by(Agreement.name, Agreement.id)
    )
    return (await session.scalars(query)).all()


async def objectives_of(session: AsyncSession, agreement_ids: list[uuid.UUID]) -> Sequence[Objective]:
    """The current objectives of the agreements, by name."""
    query = select(Objective).where(Objective.agreement_id.in_(agreement_ids)).order_by(Objective.name, Objective.id)
    return (await session.scalars(query)).all()


async def watermarks(session: AsyncSession, indicators: Iterable[str]) -> dict[str, int]:
    """The evaluator's event-time watermark (ms) of each indicator it has seen."""
    rows = await session.execute(
        select(IndicatorState.indicator_key, IndicatorState.watermark_ms).where(
            IndicatorState.indicator_key.in_(set(indicators))
        )
    )
    return {key: watermark for key, watermark in rows.all()}


async def series_buckets(session: AsyncSession, indicator: str, start: int, end: int) -> dict[SeriesKey, list[Bucket]]:
    """The stored minute buckets of every series of `indicator` with start <= minute < end.

    A 400-day window is over half a million rows per series: each series comes back as three arrays
    (one row), read by asyncpg on the session's own connection (same snapshot) in a fraction of the
    time row-by-row ORM results take, so the event loop is not held for seconds.
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    rows = await driver.fetch(
        """
        SELECT series, array_agg(minute ORDER BY minute), array_agg(good ORDER BY minute),
               array_agg(total ORDER BY minute)
        FROM series_buckets
        WHERE indicator_key = $1 AND minute >= $2 AND minute < $3
        GROUP BY series
        """,
        indicator,
        start,
        end,
    )
    return {series_key(name): list(zip(minutes, good, total, strict=True)) for name, minutes, good, total in rows}


async def all_revisions(session: AsyncSession, agreement_id: uuid.UUID) -> Sequence[AgreementRevision]:
    """Every revision of an agreement, oldest first (history evaluates each instant under its revision)."""
    query = (
        select(AgreementRevision)
        .where(AgreementRevision.agreement_id == agreement_id)
        .order_by(AgreementRevision.revision)
    )
    return (await session.scalars(query)).all()


async def live_statuses(session: AsyncSession) -> Sequence[tuple[ObjectiveStatus, Objective, Agreement]]:
    """Every stored objective status of agreements that are not archived, with its objective and agreement."""
    query = (
        select(ObjectiveStatus, Objective, Agreement)
        .join(Objective, Objective.id == ObjectiveStatus.objective_id)
        .join(Agreement, Agreement.id == Objective.agreement_id)
        .where(Agreement.archived_at.is_(None))
    )
    return [(s, o, a) for s, o, a in (await session.execute(query)).all()]


async def list_breach_events(
    session: AsyncSession,
    *,
    agreement_id: uuid.UUID | None,
    objective_id: uuid.UUID | None,
    customer: str | None,
    event_type: str | None,
    since: datetime | None,
    until: datetime | None,
    after: list[Any] | None,
    limit: int,
) -> Sequence[BreachEvent]:
    query = select(BreachEvent).order_by(BreachEvent.time, BreachEvent.id)
    for column, value in (
        (BreachEvent.agreement_id, agreement_id),
        (BreachEvent.objective_id, objective_id),
        (BreachEvent.customer, customer),
        (BreachEvent.type, event_type),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(BreachEvent.time >= since)
    if until is not None:
        query = query.where(BreachEvent.time < until)
    if after is not None:
        try:
            t, last = _cursor_instant(after[0]), str(after[1])
        except (TypeError, ValueError, OverflowError):
            raise _bad_cursor() from None
        query = query.where(_after(BreachEvent.time, BreachEvent.id, t, last))
    return (await session.scalars(query.limit(limit))).all()
