"""hardening: token names unique per user (among tokens not revoked), pipelines have an owner

Revision ID: 0006
Revises: 0005 (temporarily 0004 on the `harden` branch: rechained at merge)
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    _rename_duplicate_tokens(bind)
    op.create_index(
        "uq_tokens_user_name_active",
        "tokens",
        ["user_id", "name"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    if bind.dialect.name == "sqlite":
        # No batch copy of the table: with foreign keys on, dropping `pipelines` would delete its runs.
        op.execute("ALTER TABLE pipelines ADD COLUMN owner_id INTEGER REFERENCES users(id)")
    else:
        op.add_column("pipelines", sa.Column("owner_id", sa.Integer(), nullable=True))
        op.create_foreign_key("fk_pipelines_owner_id_users", "pipelines", "users", ["owner_id"], ["id"])
    # The creator of an existing pipeline is its owner; a creator that is no user leaves it to the
    # repository's owner and the administrators.
    op.execute(
        "UPDATE pipelines SET owner_id = (SELECT users.id FROM users WHERE users.username = pipelines.created_by)"
    )


def _rename_duplicate_tokens(bind: sa.Connection) -> None:
    """Active tokens sharing a name with an older active token of the same user get `-<id>` appended."""
    rows = bind.execute(
        sa.text("SELECT id, user_id, name FROM tokens WHERE revoked_at IS NULL ORDER BY id")
    ).fetchall()
    seen: set[tuple[int, str]] = set()
    for token_id, user_id, name in rows:
        if (user_id, name) in seen:
            suffix = f"-{token_id}"
            bind.execute(
                sa.text("UPDATE tokens SET name = :name WHERE id = :id"),
                {"name": name[: 100 - len(suffix)] + suffix, "id": token_id},
            )
        else:
            seen.add((user_id, name))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE pipelines DROP COLUMN owner_id")
    else:
        op.drop_constraint("fk_pipelines_owner_id_users", "pipelines", type_="foreignkey")
        op.drop_column("pipelines", "owner_id")
    op.drop_index("uq_tokens_user_name_active", table_name="tokens")
