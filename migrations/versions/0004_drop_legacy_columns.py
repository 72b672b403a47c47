"""drop the objectives columns only the foundation evaluator read (target, window, alert_policy)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 03:30:00.000000

Since 0002 an objective's terms live whole in `objectives.spec` (shared/contract.py describes the
format); the three columns were still written and no longer read.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("objectives", "alert_policy")
    op.drop_column("objectives", "window")
    op.drop_column("objectives", "target")


def downgrade() -> None:
    op.add_column("objectives", sa.Column("target", sa.Double(), nullable=True))
    op.add_column("objectives", sa.Column("window", sa.Text(), nullable=True))
    op.add_column(
        "objectives",
        sa.Column("alert_policy", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
    )
    op.execute(
        """UPDATE objectives SET target = (spec ->> 'target')::double precision, "window" = spec ->> 'window',
                  alert_policy = coalesce(spec -> 'alert_policy', '{}'::jsonb)"""
    )
    op.alter_column("objectives", "target", nullable=False)
    op.alter_column("objectives", "window", nullable=False)
