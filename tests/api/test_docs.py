"""The limits and the scopes are documented where users look for them (docs tested against the code)."""

from __future__ import annotations

import dataclasses

from mlyard.services.auth import SCOPES
from mlyard.settings import Settings
from tests.conftest import REPO_ROOT


def test_every_limit_setting_is_in_the_limits_table() -> None:
    table = (REPO_ROOT / "docs" / "server.md").read_text()
    limits = [f.name for f in dataclasses.fields(Settings) if f.name.startswith("max_") or "per_minute" in f.name]
    assert limits, "no limit settings found"
    for name in limits:
        assert f"| `{name}` |" in table, f"docs/server.md does not document {name}"


def test_every_scope_is_in_the_scopes_table() -> None:
    table = (REPO_ROOT / "docs" / "auth.md").read_text()
    for scope in SCOPES:
        assert f"| `{scope}` |" in table, f"docs/auth.md does not document the scope {scope}"


def test_the_cli_help_names_every_scope() -> None:
    from mlyard.cli.identity import SCOPE_HELP

    expected = f"Scope to grant (repeat): {', '.join(SCOPES)}."
    assert expected == SCOPE_HELP
