"""tokens and audit: bearer tokens (hashes only) and who changed what

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The actor of a change is the request's token: the api sets these two transaction-local settings
# (services/api/token_store.py `set_actor`) in the transaction that writes the change, and the
# triggers below record it with the change, atomically. A change made outside the api (a script,
# psql) is recorded too, as actor 'database session <user>'.
ACTOR = (
    "NULLIF(current_setting('accord.actor_token_id', true), ''), "
    "COALESCE(NULLIF(current_setting('accord.actor_name', true), ''), 'database session ' || current_user)"
)
FUNCTIONS = [
    f"""
CREATE FUNCTION accord_audit_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (actor_token_id, actor_name, action, agreement_id, target, detail)
    VALUES ({ACTOR}, 'agreement.' || NEW.change, NEW.agreement_id, NEW.agreement_id::text || '@' || NEW.revision,
            jsonb_build_object('revision', NEW.revision, 'author', NEW.author, 'reason', NEW.reason,
                               'review_id', NEW.review_id));
    RETURN NEW;
END $$
""",
    f"""
CREATE FUNCTION accord_audit_review() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (actor_token_id, actor_name, action, agreement_id, target, detail)
    VALUES ({ACTOR}, 'review.recorded', NEW.agreement_id, NEW.id::text,
            jsonb_build_object('revision', NEW.revision, 'author', NEW.author, 'changed', NEW.changed));
    RETURN NEW;
END $$
""",
    f"""
CREATE FUNCTION accord_audit_indicator() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (actor_token_id, actor_name, action, target, detail)
    VALUES ({ACTOR},
            CASE WHEN TG_OP = 'INSERT' THEN 'indicator.created'
                 WHEN OLD.archived_at IS NULL AND NEW.archived_at IS NOT NULL THEN 'indicator.archived'
                 ELSE 'indicator.updated' END,
            NEW.key, jsonb_build_object('kind', NEW.kind, 'unit', NEW.unit));
    RETURN NEW;
END $$
""",
]
TRIGGERS = [
    "CREATE TRIGGER audit_revision AFTER INSERT ON agreement_revisions "
    "FOR EACH ROW EXECUTE FUNCTION accord_audit_revision()",
    "CREATE TRIGGER audit_review AFTER INSERT ON reviews FOR EACH ROW EXECUTE FUNCTION accord_audit_review()",
    "CREATE TRIGGER audit_indicator AFTER INSERT OR UPDATE ON indicators "
    "FOR EACH ROW EXECUTE FUNCTION accord_audit_indicator()",
]


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("indicators", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by_token_id", sa.Text(), nullable=True),
        sa.Column("created_by_name", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False),
        sa.Column("actor_token_id", sa.Text(), nullable=True),
        sa.Column("actor_name", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("agreement_id", sa.UUID(), nullable=True),
        sa.Column("target", sa.Text(), server_default="", nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_actor_token_id"), "audit_log", ["actor_token_id"])
    op.create_index(op.f("ix_audit_log_action"), "audit_log", ["action"])
    op.create_index(op.f("ix_audit_log_agreement_id"), "audit_log", ["agreement_id"])
    for statement in FUNCTIONS + TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_indicator ON indicators")
    op.execute("DROP TRIGGER audit_review ON reviews")
    op.execute("DROP TRIGGER audit_revision ON agreement_revisions")
    op.execute("DROP FUNCTION accord_audit_indicator(), accord_audit_review(), accord_audit_revision()")
    op.drop_index(op.f("ix_audit_log_agreement_id"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_action"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_actor_token_id"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_tokens")
