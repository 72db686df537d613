"""coverage: the code coverage summaries published by PublishCodeCoverageResults@1/@2

Revision ID: 0007_coverage
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_coverage"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coverage_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("lines_covered", sa.Integer(), nullable=False),
        sa.Column("lines_valid", sa.Integer(), nullable=False),
        sa.Column("branches_covered", sa.Integer(), nullable=False),
        sa.Column("branches_valid", sa.Integer(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("coverage_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_coverage_results_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("coverage_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coverage_results_run_id"))
    op.drop_table("coverage_results")
