"""schedules: scheduled triggers per pipeline, schedule and branch; runs know the schedule that created them

Revision ID: 0008_schedules
Revises: 0007_coverage (temporarily 0006 on the `schedules` branch: rechained at merge)
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_schedules"
down_revision = "0007_coverage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("pipeline_id", sa.Integer(), sa.ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False),
        sa.Column("branch", sa.Text(), nullable=False),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("display_name", sa.String(255), nullable=False),
        sa.Column("always", sa.Boolean(), nullable=False),
        sa.Column("batch", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=False),
        sa.Column("last_fire_at", sa.DateTime(), nullable=True),
        sa.Column("last_outcome", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("pipeline_id", "branch", "cron", "display_name", name="uq_schedules_key"),
    )
    op.create_index("ix_schedules_pipeline_id", "schedules", ["pipeline_id"])
    # A plain column (no foreign key), like push_event_id: added and dropped in place on SQLite, without
    # copying `runs` (which would delete the stages and jobs of every run through their foreign keys).
    op.add_column("runs", sa.Column("schedule_id", sa.Integer(), nullable=True))
    op.create_index("ix_runs_schedule_id", "runs", ["schedule_id"])


def downgrade() -> None:
    op.drop_index("ix_runs_schedule_id", table_name="runs")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE runs DROP COLUMN schedule_id")
    else:
        op.drop_column("runs", "schedule_id")
    op.drop_index("ix_schedules_pipeline_id", table_name="schedules")
    op.drop_table("schedules")
