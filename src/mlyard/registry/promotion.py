"""Stage changes, their history and rollback. Callers hold the model's lock (see `Registry`).

Aliases are the source of truth: `production` and `staging` point at one version each. The legacy MLflow
stage of every version is then made to agree with them (so `models:/NAME/Production` keeps working):
the alias holders are in Production/Staging, a version that loses `production` goes to Archived, one that
loses `staging` goes back to None. MLflow keeps no alias history, so every change is appended to a JSON
list in the registered model tag `mlyard.history`.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import Any

from mlyard.errors import NotFound, OperationFailed
from mlyard.registry.stages import ALIASES, HISTORY_TAG
from mlyard.registry.store import quiet_mlflow
from mlyard.registry.versions import (
    MlflowClient,
    ModelVersion,
    RegisteredModel,
    all_versions,
    get_model,
    get_version,
    model_aliases,
    stage_of,
)

HISTORY_MAX_CHARS = 90_000  # MLflow allows 100,000 characters in a registered model tag value
_DEMOTED = {"Production": "Archived", "Staging": "None"}


def read_history(rm: RegisteredModel) -> list[dict[str, Any]]:
    try:
        entries = json.loads((rm.tags or {}).get(HISTORY_TAG, "[]"))
    except ValueError:
        return []
    return [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []


def _write_history(client: MlflowClient, name: str, entries: list[dict[str, Any]]) -> None:
    """Store the history, dropping the oldest entries when it outgrows the tag."""
    text = json.dumps(entries, separators=(",", ":"))
    while len(text) > HISTORY_MAX_CHARS and len(entries) > 1:
        entries = entries[len(entries) // 10 + 1 :]
        text = json.dumps(entries, separators=(",", ":"))
    client.set_registered_model_tag(name, HISTORY_TAG, text)


def _aliases_after(version: int, stage: str, aliases: dict[str, int]) -> dict[str, int | None]:
    """The `staging`/`production` aliases once `version` is in `stage` (None = no alias)."""
    after: dict[str, int | None] = {alias: aliases.get(alias) for alias in ALIASES.values()}
    for alias in ALIASES.values():
        if after[alias] == version:
            after[alias] = None
    if stage in ALIASES:
        after[ALIASES[stage]] = version
    return after


def _move_aliases(client: MlflowClient, name: str, aliases: dict[str, int], after: dict[str, int | None]) -> None:
    for alias, target in after.items():
        if target is not None and aliases.get(alias) != target:
            client.set_registered_model_alias(name, alias, str(target))
    for alias, target in after.items():
        if target is None and alias in aliases:
            client.delete_registered_model_alias(name, alias)


def _mirror_legacy(
    client: MlflowClient, versions: list[ModelVersion], after: dict[str, int | None], version: int, stage: str
) -> None:
    """Make every version's legacy stage agree with the aliases; `version` goes to `stage`."""
    holders = {target: held for held, alias in ALIASES.items() if (target := after[alias]) is not None}
    holders[version] = stage
    for mv in versions:
        number = int(mv.version)
        legacy = mv.current_stage or "None"
        wanted = holders.get(number) or _DEMOTED.get(legacy, legacy)
        if wanted != legacy:
            with quiet_mlflow():
                client.transition_model_version_stage(mv.name, mv.version, wanted, archive_existing_versions=False)


def transition(
    client: MlflowClient,
    name: str,
    version: int,
    stage: str,
    *,
    by: str | None = None,
    reason: str | None = None,
    action: str = "stage",
) -> dict[str, Any]:
    """Put `version` of `name` in `stage` (canonical spelling); return the history entry recorded."""
    rm = get_model(client, name)
    versions = all_versions(client, rm.name)
    mv = get_version(client, rm.name, version, versions)
    aliases = model_aliases(rm)
    after = _aliases_after(version, stage, aliases)
    entry: dict[str, Any] = {
        "version": version,
        "from": stage_of(version, aliases, mv.current_stage),
        "to": stage,
        "by": by or _current_user(),
        "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "action": action,
        "reason": reason or "",
        "previous_production": aliases.get("production"),
        "archived": None,
    }
    if stage == "Production" and entry["previous_production"] not in (None, version):
        entry["archived"] = entry["previous_production"]
    _move_aliases(client, rm.name, aliases, after)
    _mirror_legacy(client, versions, after, version, stage)
    _write_history(client, rm.name, [*read_history(rm), entry])
    return entry


def production_chain(history: list[dict[str, Any]]) -> list[int]:
    """The versions that were in Production, oldest first, as rollbacks and demotions leave them."""
    chain: list[int] = []
    for entry in history:
        version = entry.get("version")
        if not isinstance(version, int):
            continue
        if entry.get("to") == "Production":
            if entry.get("action") == "rollback" and chain and chain[-1] == entry.get("previous_production"):
                chain.pop()
            if not chain or chain[-1] != version:
                chain.append(version)
        elif entry.get("from") == "Production" and chain and chain[-1] == version:
            chain.pop()
    return chain


def rollback_target(name: str, rm: RegisteredModel) -> int:
    """The version that was in Production before the current one, from the history."""
    current = model_aliases(rm).get("production")
    if current is None:
        raise NotFound(f"model {name!r} has no version in Production: nothing to roll back")
    chain = production_chain(read_history(rm))
    if not chain or chain[-1] != current:
        raise OperationFailed(
            f"cannot roll back model {name!r}: its history does not show how version {current} reached "
            "Production (was the alias set outside mlyard?); stage the version you want in Production instead"
        )
    if len(chain) < 2:
        raise NotFound(
            f"model {name!r} has no previous Production version to roll back to "
            f"(version {current} is the first one in its history)"
        )
    return chain[-2]


def rollback(client: MlflowClient, name: str, *, by: str | None = None, reason: str | None = None) -> dict[str, Any]:
    rm = get_model(client, name)
    target = rollback_target(rm.name, rm)
    return transition(client, rm.name, target, "Production", by=by, reason=reason, action="rollback")


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
