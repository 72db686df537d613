"""push_events.requested_for: the person a trusted service user pushed for (the project creator)

Revision ID: 0009_push_requested_for
Revises: 0008_schedules
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_push_requested_for"
down_revision = "0008_schedules"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain column with a default: added and dropped in place on SQLite, the events keep their ids.
    op.add_column(
        "push_events", sa.Column("requested_for", sa.String(length=64), nullable=False, server_default="")
    )


def downgrade() -> None:
    with op.batch_alter_table("push_events") as batch:
        batch.drop_column("requested_for")
