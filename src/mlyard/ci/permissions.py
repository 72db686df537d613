"""Protected resources as the scheduler sees them: does one exist, which may a pipeline use."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.db.tables import Connection, Environment, Permission, VariableGroup


def exists(session: Session, kind: str, name: str) -> bool:
    tables: dict[str, type[Connection] | type[VariableGroup] | type[Environment]] = {
        "connection": Connection, "variablegroup": VariableGroup, "environment": Environment,
    }  # fmt: skip
    table = tables[kind]
    return session.scalars(select(table.id).where(table.name == name)).first() is not None


def permitted(session: Session, pipeline_id: int) -> set[tuple[str, str]]:
    return {
        (p.kind, p.resource) for p in session.scalars(select(Permission).where(Permission.pipeline_id == pipeline_id))
    }
