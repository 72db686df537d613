"""run engine: race-free run numbers, the trigger outbox, run errors

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipelines") as batch:
        batch.add_column(sa.Column("last_run_number", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE pipelines SET last_run_number = "
        "(SELECT COALESCE(MAX(runs.number), 0) FROM runs WHERE runs.pipeline_id = pipelines.id)"
    )
    with op.batch_alter_table("push_events") as batch:
        batch.add_column(sa.Column("triggered_at", sa.DateTime(), nullable=True))
        batch.create_index("ix_push_events_triggered_at", ["triggered_at"])
    # Events recorded before the outbox were triggered when they were recorded: never again.
    op.execute("UPDATE push_events SET triggered_at = created_at")
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("errors", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("errors")
    with op.batch_alter_table("push_events") as batch:
        batch.drop_index("ix_push_events_triggered_at")
        batch.drop_column("triggered_at")
    with op.batch_alter_table("pipelines") as batch:
        batch.drop_column("last_run_number")
