"""`mlyard connections ...` and `mlyard variable-groups ...` against a real server: the same life cycle
for both kinds of protected resource, secrets never shown, changes audited, admin only."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Server
from tests.foundation.test_auth import make_token

pytestmark = pytest.mark.slow

KINDS = [
    # command, name, plain option, secret option, plain key, secret-names key, audit prefix
    ("connections", "cli-conn", "--env", "--secret", "settings", "secret_keys", "connection"),
    ("variable-groups", "cli-group", "--var", "--secret", "variables", "secret_variables", "variablegroup"),
]


@pytest.mark.parametrize(("command", "name", "plain", "secret", "plain_key", "secret_key", "audit"), KINDS)
def test_create_show_list_update_delete(
    server: Server, command: str, name: str, plain: str, secret: str, plain_key: str, secret_key: str, audit: str
) -> None:
    created = json.loads(
        server.cli(command, "create", name, plain, "REGION=westeurope", secret, "KEY=p4ss-w0rd-x", "--json").stdout
    )
    assert created[plain_key] == {"REGION": "westeurope"} and created[secret_key] == ["KEY"]
    assert "p4ss-w0rd-x" not in json.dumps(created)

    again = server.cli(command, "create", name, check=False)
    assert again.returncode == 4 and "already exists; pass --update" in again.stderr
    server.cli(command, "create", name, plain, "REGION=northeurope", secret, "KEY=n3w-s3cret-y", "--update")

    shown = server.cli(command, "show", name).stdout
    assert "northeurope" in shown and "KEY" in shown and "***" in shown and "n3w-s3cret-y" not in shown
    assert "westeurope" not in shown  # --update replaces the values
    listed = server.cli(command, "list").stdout
    assert any(line.split()[0] == name for line in listed.splitlines()[1:])

    reader = make_token(server, "repo:read", name=f"{name}-reader")
    refused = server.cli(command, "delete", name, token=reader, check=False)
    assert refused.returncode == 5 and "admin" in refused.stderr

    server.cli(command, "delete", name)
    missing = server.cli(command, "show", name, check=False)
    assert missing.returncode == 3 and f"list them with `mlyard {command} list`" in missing.stderr
    with server.client() as api:
        actions = [(e["action"], e["target"]) for e in api.get("/api/v1/audit").json()]
    assert (f"{audit}.saved", name) in actions and (f"{audit}.deleted", name) in actions


@pytest.mark.parametrize("command", ["connections", "variable-groups"])
def test_names_are_checked(server: Server, command: str) -> None:
    bad = server.cli(command, "create", "../escape", check=False)
    assert bad.returncode == 2 and "escape" in bad.stderr


def test_environment_webhook_is_checked_and_kept_secret(server: Server) -> None:
    bad = server.cli("environments", "set", "test", "--notify-webhook", "ftp://hooks.example/x", check=False)
    assert bad.returncode == 2 and "is not an http:// or https:// URL" in bad.stderr
    missing = server.cli("environments", "set", "no-such-env", "--notify-webhook", "https://h.example/x", check=False)
    assert missing.returncode == 3
    try:
        done = json.loads(server.cli("environments", "set", "test", "--notify-webhook", "https://h.example/T/B/x",
                                     "--json").stdout)  # fmt: skip
        assert done["notify_webhook"] is True
        shown = json.loads(server.cli("connections", "show", "test-connection", "--json").stdout)
        assert "NOTIFY_WEBHOOK_URL" in shown["secret_keys"] and "h.example" not in json.dumps(shown)
    finally:
        server.cli("environments", "set", "test", "--notify-webhook", "")
    shown = json.loads(server.cli("connections", "show", "test-connection", "--json").stdout)
    assert "NOTIFY_WEBHOOK_URL" not in shown["secret_keys"]
