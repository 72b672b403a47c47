"""hour roll-ups beside the minute buckets

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-01 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Hour h sums the minute buckets [60h, 60h + 60) of one series. The evaluator adds to it in the
    # checkpoint transaction that writes the minutes (and moves the offsets), so it never drifts.
    op.create_table(
        "series_hours",
        sa.Column("indicator_key", sa.Text(), nullable=False),
        sa.Column("series", sa.Text(), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("good", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("indicator_key", "series", "hour", name=op.f("pk_series_hours")),
    )
    # The minutes stored so far, rolled up (floor division: minutes are never negative here).
    op.execute(
        """
        INSERT INTO series_hours (indicator_key, series, hour, good, total)
        SELECT indicator_key, series, floor(minute / 60.0)::bigint, sum(good), sum(total)
        FROM series_buckets GROUP BY 1, 2, 3
        """
    )


def downgrade() -> None:
    op.drop_table("series_hours")
