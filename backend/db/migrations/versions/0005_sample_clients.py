"""Which client asked for each random-face request, so a client's waiting requests can be capped.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 20:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sample_requests") as batch:
        batch.add_column(sa.Column("client", sa.String(80), nullable=True))
        batch.create_index(op.f("ix_sample_requests_client"), ["client"])


def downgrade() -> None:
    with op.batch_alter_table("sample_requests") as batch:
        batch.drop_index(op.f("ix_sample_requests_client"))
        batch.drop_column("client")
