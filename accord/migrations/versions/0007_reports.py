"""reports: frozen reports of closed reporting periods, one row per version

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 04:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Written by the api's period closer (version 1) and by recomputes (N + 1); never updated.
    op.create_table(
        "period_reports",
        sa.Column("agreement_id", sa.UUID(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("customer", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("report", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["agreement_id"], ["agreements.id"], name=op.f("fk_period_reports_agreement_id_agreements")
        ),
        sa.PrimaryKeyConstraint("agreement_id", "period", "version", name=op.f("pk_period_reports")),
    )
    op.create_index(op.f("ix_period_reports_customer"), "period_reports", ["customer"])


def downgrade() -> None:
    op.drop_index(op.f("ix_period_reports_customer"), table_name="period_reports")
    op.drop_table("period_reports")
