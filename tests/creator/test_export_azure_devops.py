"""`mlyard export azure-devops REPO`: the az commands that move a created project to Azure DevOps."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Server

pytestmark = pytest.mark.slow

REPO = "export-model"
GROUP_SECRET = "group-secret-value-1f3a"
PIPELINE_SECRET = "pipeline-secret-value-9c2e"
GROUP = "export-vars"


@pytest.fixture(scope="module")
def project(server: Server) -> Server:
    server.cli("create", REPO, "--env", "dev", "--follow")
    # a group of its own (the shared `dev` stays untouched) that the pipeline may use
    server.cli("variable-groups", "create", GROUP, "--var", "REGION=eu west", "--var", "TIER=gold",
               "--secret", f"API_KEY={GROUP_SECRET}")
    server.cli("pipelines", "permit", f"{REPO}-deploy-code", "--resource", f"variablegroup:{GROUP}")
    server.cli("pipelines", "variables", "set", f"{REPO}-deploy-code", "PIPELINE_SECRET", PIPELINE_SECRET,
               "--secret")
    server.cli("pipelines", "variables", "set", f"{REPO}-deploy-code", "PLAIN", "p-value")
    return server


def test_script_names_every_pipeline_group_and_no_secret(project: Server, tmp_path: Path) -> None:
    server = project
    target = tmp_path / "move.sh"
    out = server.cli("export", "azure-devops", REPO, "--org", "https://dev.azure.com/acme", "--project", "ml",
                     "--script", str(target))
    assert "wrote" in out.stdout
    text = target.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    assert subprocess.run(["bash", "-n", str(target)], capture_output=True).returncode == 0
    with server.client() as api:
        pipelines = [p for p in api.get("/api/v1/pipelines").json() if p["repo"] == REPO]
        assert len(pipelines) >= 3
        for p in pipelines:
            line = next(c for c in text.splitlines() if c.startswith(f"az pipelines create --name {p['name']} "))
            words = shlex.split(line)
            assert words[words.index("--folder-path") + 1] == p["folder"] == REPO
            assert words[words.index("--yml-path") + 1] == p["yaml_path"]
            assert words[words.index("--repository") + 1] == REPO and "--skip-first-run" in words
        groups = [api.get(f"/api/v1/variable-groups/{g}").json() for g in {GROUP, *used_groups(text)}]
    assert "az repos import create" in text and f"az repos create --name {REPO}" in text
    for group in groups:
        prefix = group["name"].replace("-", "_").upper()
        assert f"az pipelines variable-group create --name {group['name']} " in text
        for name, value in group["variables"].items():  # plain values as defaults, overridable
            assert f'{prefix}_{name}="${{{prefix}_{name}:-{value}}}"' in text
        for name in group["secret_variables"]:  # secrets: a required variable, never the value
            assert f': "${{{prefix}_{name}:?set {prefix}_{name} to ' in text
            assert f"--name {name} --secret true" in text
    assert 'EXPORT_VARS_REGION="${EXPORT_VARS_REGION:-eu west}"' in text
    assert GROUP_SECRET not in text and PIPELINE_SECRET not in text and server.token not in text
    assert f"--pipeline-name {REPO}-deploy-code --name PIPELINE_SECRET --secret true" in text
    assert 'ORG="${AZURE_DEVOPS_ORG:-https://dev.azure.com/acme}"' in text


def used_groups(text: str) -> list[str]:
    return [shlex.split(line.partition("$(")[2])[5] for line in text.splitlines()
            if "az pipelines variable-group create --name" in line]


def test_json_has_the_same_content(project: Server, tmp_path: Path) -> None:
    server = project
    printed = server.cli("export", "azure-devops", REPO, "--project", "ml").stdout
    doc = json.loads(server.cli("export", "azure-devops", REPO, "--project", "ml", "--json").stdout)
    assert doc["repo"] == REPO and doc["organization"] == "" and doc["project"] == "ml"
    for command in doc["commands"]:
        assert command in printed
    names = {p["name"]: p for p in doc["pipelines"]}
    assert {f"{REPO}-deploy-code", f"{REPO}-promote-model", f"{REPO}-deploy-model"} <= set(names)
    for p in doc["pipelines"]:
        assert p["folder"] == REPO and p["yaml_path"].startswith("mlops/pipelines/")
    assert any(r.endswith(":dev") or r.endswith(":dev-connection") for r in names[f"{REPO}-deploy-code"]["resources"])
    secrets = {s["env"] for s in doc["secrets"]}
    for group in doc["variable_groups"]:
        for variable in group["variables"]:
            if variable["secret"]:
                assert variable["value"] is None and variable["env"] in secrets
            else:
                assert f"{variable['env']}=" in printed
    assert GROUP_SECRET not in json.dumps(doc) and PIPELINE_SECRET not in json.dumps(doc)
    assert ': "${ORG:?set AZURE_DEVOPS_ORG' in printed  # no --org: the script asks for it


def test_unknown_repo_and_bad_options(server: Server) -> None:
    out = server.cli("export", "azure-devops", "no-such-repo", check=False)
    assert out.returncode == 3 and "repository 'no-such-repo' not found" in out.stderr
    assert "Traceback" not in out.stderr
    out = server.cli("export", "azure-devops", REPO, "--org", "not a url", check=False)
    assert out.returncode == 2 and "--org" in out.stderr
