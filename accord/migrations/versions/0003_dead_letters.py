"""dead letters: records and measurements the evaluator could not apply

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 00:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Written in the evaluator's checkpoint transaction, with the offsets that move past them.
    # measurement_index is NULL when the whole record was refused; the unique key treats NULLs as
    # equal so that a replay after a crash finds the row already there.
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("measurement_index", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index(
        "uq_dead_letters_position",
        "dead_letters",
        ["topic", "partition", "offset", "measurement_index"],
        unique=True,
        postgresql_nulls_not_distinct=True,
    )
    op.create_index("ix_dead_letters_created_at", "dead_letters", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_dead_letters_created_at", table_name="dead_letters")
    op.drop_index("uq_dead_letters_position", table_name="dead_letters")
    op.drop_table("dead_letters")
