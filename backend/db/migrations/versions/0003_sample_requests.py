"""Random-face requests for the sampling queue.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 14:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sample_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("model_folder", sa.Text(), nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result_path", sa.Text(), nullable=True),
        sa.Column("media_type", sa.String(32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("finished_at", UTC_TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sample_requests")),
    )
    op.create_index(op.f("ix_sample_requests_cache_key"), "sample_requests", ["cache_key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sample_requests_cache_key"), table_name="sample_requests")
    op.drop_table("sample_requests")
