"""The Postgres schema (SQLAlchemy 2 declarative) and the engine factory.

Migrations in `accord/migrations/` create these tables; tests build the schema with
`alembic upgrade head`, so the migrations are tested too.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

import asyncpg
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Text,
    TypeDecorator,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.settings import libpq_url, sqlalchemy_url, without_query
from shared.spec import AgreementDocument, AgreementSpec, Frozen, ObjectiveSpec

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CONFIG_CHANNEL = "accord_config"
"""Postgres NOTIFY channel: the api announces committed agreement/indicator changes here."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


M = TypeVar("M", bound=Frozen)


class SpecJSONB(TypeDecorator[M], Generic[M]):
    """A shared.spec model in a JSONB column: dumped in JSON mode on write, validated on read (the one conversion)."""

    impl = JSONB
    cache_ok = True

    def __init__(self, model: type[M]) -> None:
        super().__init__()
        self.model = model

    def process_bind_param(self, value: M | None, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else value.to_json()

    def process_result_value(self, value: Any, dialect: Dialect) -> M | None:
        return None if value is None else self.model.model_validate(value)


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Indicator(Base):
    __tablename__ = "indicators"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text, nullable=False)
    unit: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Agreement(Base):
    """The current revision of an agreement; older revisions live in `agreement_revisions`.

    `spec` holds the agreement's terms at the current revision (shared.spec);
    the scalar columns repeat the fields lists filter on.
    """

    __tablename__ = "agreements"
    __table_args__ = (Index("ix_agreements_labels", "labels", postgresql_using="gin"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    provider: Mapped[str] = mapped_column(Text, nullable=False)
    customer: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    timezone: Mapped[str] = mapped_column(Text, nullable=False, server_default="UTC")
    revision: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    labels: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False, server_default="{}")
    spec: Mapped[AgreementSpec] = mapped_column(SpecJSONB(AgreementSpec), nullable=False, server_default="{}")


class Objective(Base):
    """An objective of an agreement's current revision; `spec` holds its full terms (shared.spec)."""

    __tablename__ = "objectives"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    agreement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agreements.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    indicator_key: Mapped[str] = mapped_column(ForeignKey("indicators.key"), nullable=False, index=True)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    spec: Mapped[ObjectiveSpec] = mapped_column(SpecJSONB(ObjectiveSpec), nullable=False, server_default="{}")


class AgreementRevision(Base):
    """One immutable revision of an agreement: the whole document (terms and objectives) as it was from `valid_from`."""

    __tablename__ = "agreement_revisions"

    agreement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agreements.id"), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    author: Mapped[str] = mapped_column(Text, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    change: Mapped[str] = mapped_column(Text, nullable=False)
    review_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    document: Mapped[AgreementDocument] = mapped_column(SpecJSONB(AgreementDocument), nullable=False)


class Review(Base):
    """A service level review: notes and decisions, recorded as the revision it produced."""

    __tablename__ = "reviews"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    agreement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agreements.id"), nullable=False, index=True)
    revision: Mapped[int] = mapped_column(Integer, nullable=False)
    author: Mapped[str] = mapped_column(Text, nullable=False)
    notes: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    decisions: Mapped[list[str]] = mapped_column(JSONB, nullable=False, server_default="[]")
    participants: Mapped[list[str]] = mapped_column(JSONB, nullable=False, server_default="[]")
    changed: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class SeriesBucket(Base):
    """Minute-bucket counts per indicator series: the stored truth budgets are recomputed from."""

    __tablename__ = "series_buckets"

    indicator_key: Mapped[str] = mapped_column(Text, primary_key=True)
    series: Mapped[str] = mapped_column(Text, primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    good: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SeriesHour(Base):
    """Hour roll-ups of series_buckets: the sum of minutes [60·hour, 60·hour + 60), written with them.

    Kept longer than the minutes (docs/evaluator.md, retention); a sum over a long range reads
    whole hours from here and only the minutes at its edges and around exclusions
    (shared/budget/rollups.py).
    """

    __tablename__ = "series_hours"

    indicator_key: Mapped[str] = mapped_column(Text, primary_key=True)
    series: Mapped[str] = mapped_column(Text, primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    good: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ObjectiveStatus(Base):
    """The evaluator's latest reading of an objective, and its announced alert state."""

    __tablename__ = "objective_status"

    # An objective removed by a revision takes its live status with it (its history stays in the revisions).
    objective_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("objectives.id", ondelete="CASCADE"), primary_key=True)
    good: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sli: Mapped[float | None] = mapped_column(Double)
    budget_consumed: Mapped[float] = mapped_column(Double, nullable=False)
    burn_rate: Mapped[float | None] = mapped_column(Double)
    tiers: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    alert_state: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    last_measurement_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    evaluated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revision: Mapped[int | None] = mapped_column(Integer)
    """The agreement revision whose terms the reading is under (None: written before migration 0004)."""


class ConsumerOffset(Base):
    """Next offset to consume per partition, written in the same transaction as the state it produced."""

    __tablename__ = "consumer_offsets"

    group_id: Mapped[str] = mapped_column(Text, primary_key=True)
    topic: Mapped[str] = mapped_column(Text, primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = _now()


class IndicatorState(Base):
    """Which partition an indicator's measurements arrive on, and its event-time watermark."""

    __tablename__ = "indicator_state"

    indicator_key: Mapped[str] = mapped_column(Text, primary_key=True)
    topic: Mapped[str] = mapped_column(Text, nullable=False)
    partition: Mapped[int] = mapped_column(Integer, nullable=False)
    watermark_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)


class SeenMeasurement(Base):
    """Measurement ids already counted, per indicator, so a retried send counts once."""

    __tablename__ = "seen_measurements"

    indicator_key: Mapped[str] = mapped_column(Text, primary_key=True)
    measurement_id: Mapped[str] = mapped_column(Text, primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, nullable=False)


class BreachEvent(Base):
    """Every breach event ever decided (the outbox): unpublished rows are relayed to the breach topic."""

    __tablename__ = "breach_events"
    __table_args__ = (
        Index("ix_breach_events_unpublished", "created_at", postgresql_where="published_at IS NULL"),
        Index("ix_breach_events_objective_time", "objective_id", "time"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    objective_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)
    agreement_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False, index=True)
    customer: Mapped[str] = mapped_column(Text, nullable=False, index=True)
    type: Mapped[str] = mapped_column(Text, nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    event: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = _now()
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PeriodReportRow(Base):
    """A closed reporting period's report, frozen (services/api/reports.py): version 1 by the period closer,
    N + 1 by each recompute. Rows are never updated; every version stays readable (docs/reports.md)."""

    __tablename__ = "period_reports"

    agreement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agreements.id"), primary_key=True)
    period: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer: Mapped[str] = mapped_column(Text, nullable=False, index=True)
    author: Mapped[str] = mapped_column(Text, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    report: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = _now()


class ApiToken(Base):
    """A bearer token: only its SHA-256 is stored (shared.auth); revoked tokens stay, for the audit log."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    role: Mapped[str] = mapped_column(Text, nullable=False)
    token_hash: Mapped[str] = mapped_column(Text, nullable=False)
    indicators: Mapped[list[str] | None] = mapped_column(JSONB(none_as_null=True))
    created_at: Mapped[datetime] = _now()
    created_by_token_id: Mapped[str | None] = mapped_column(Text)
    created_by_name: Mapped[str] = mapped_column(Text, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """Who changed what: revisions, reviews, indicators (database triggers) and tokens, with the token's id and name."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.clock_timestamp(), nullable=False)
    actor_token_id: Mapped[str | None] = mapped_column(Text, index=True)
    actor_name: Mapped[str] = mapped_column(Text, nullable=False)
    action: Mapped[str] = mapped_column(Text, nullable=False, index=True)
    agreement_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    target: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")


def make_engine(url: str, *, pool_size: int = 5, **options: Any) -> AsyncEngine:
    """An engine on DATABASE_URL whose connections asyncpg opens from the libpq form of the URL.

    So `?sslmode=verify-full&sslrootcert=...` (and libpq's PGSSL* variables) mean the same to
    SQLAlchemy's connections as to the raw asyncpg ones (shared/notify.py, the evaluator's pool):
    SQLAlchemy would pass unknown query parameters to asyncpg.connect as keywords, which fails.
    """
    dsn = libpq_url(url)

    async def connect() -> Any:
        return await asyncpg.connect(dsn)

    if options.get("poolclass") is None:
        options.update(pool_size=pool_size, max_overflow=pool_size)
    return create_async_engine(without_query(sqlalchemy_url(url)), async_creator=connect, pool_pre_ping=True, **options)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)
