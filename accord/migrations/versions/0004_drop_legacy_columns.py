"""drop the objectives columns nothing reads (target, window, alert_policy); readings name their revision

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 03:30:00.000000

Since 0002 an objective's terms live whole in `objectives.spec` (shared/spec.py is the format);
the three columns were still written and no longer read.

`objective_status.revision` is the agreement revision whose terms the evaluator's reading is
under: the api recomputes a status under those same terms, so /status and the evaluator's
numbers (/metrics) are one reading even right after a change (docs/design.md §5.5).
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
    op.add_column("objective_status", sa.Column("revision", sa.Integer(), nullable=True))
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
    op.drop_column("objective_status", "revision")
