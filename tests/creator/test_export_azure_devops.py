"""`mlyard export azure-devops REPO`: the az commands that move a created project to Azure DevOps."""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from mlyard.cli.export import (
    AzureDevOpsExport,
    ExportGroup,
    ExportPipeline,
    ExportVariable,
    build_commands,
    plan_resources,
    script,
    secrets_of,
)
from tests.conftest import Server

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


@pytest.mark.slow
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
            assert f"{prefix}_{name}=${{{prefix}_{name}:-{shlex.quote(value)}}}" in text
        for name in group["secret_variables"]:  # secrets: a required variable, never the value
            assert f': "${{{prefix}_{name}:?set {prefix}_{name} to ' in text
            assert f"--name {name} --secret true" in text
    assert "EXPORT_VARS_REGION=${EXPORT_VARS_REGION:-'eu west'}" in text
    assert GROUP_SECRET not in text and PIPELINE_SECRET not in text and server.token not in text
    assert f"--pipeline-name {REPO}-deploy-code --name PIPELINE_SECRET --secret true" in text
    assert 'ORG="${AZURE_DEVOPS_ORG:-https://dev.azure.com/acme}"' in text


def used_groups(text: str) -> list[str]:
    return [shlex.split(line.partition("$(")[2])[5] for line in text.splitlines()
            if "az pipelines variable-group create --name" in line]


@pytest.mark.slow
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
    resources = names[f"{REPO}-deploy-code"]["resources"]
    assert "variablegroup:dev" in resources and not [r for r in resources if r.startswith("connection:")]
    secrets = {s["env"] for s in doc["secrets"]}
    for group in doc["variable_groups"]:
        for variable in group["variables"]:
            if variable["secret"]:
                assert variable["value"] is None and variable["env"] in secrets
            else:
                assert f"{variable['env']}=" in printed
    assert GROUP_SECRET not in json.dumps(doc) and PIPELINE_SECRET not in json.dumps(doc)
    assert ': "${ORG:?set AZURE_DEVOPS_ORG' in printed  # no --org: the script asks for it


@pytest.mark.slow
def test_unknown_repo_and_bad_options(server: Server) -> None:
    out = server.cli("export", "azure-devops", "no-such-repo", check=False)
    assert out.returncode == 3 and "repository 'no-such-repo' not found" in out.stderr
    assert "Traceback" not in out.stderr
    out = server.cli("export", "azure-devops", REPO, "--org", "not a url", check=False)
    assert out.returncode == 2 and "--org" in out.stderr


PIPELINE = """\
trigger: none
variables:
- group: dev
stages:
- stage: S
  jobs:
  - deployment: D
    environment: prod
    strategy:
      runOnce:
        deploy:
          steps:
          - task: AzureCLI@2
            inputs:
              azureSubscription: prod-connection
              scriptType: bash
              scriptLocation: inlineScript
              inlineScript: echo hi
  - job: J
    variables:
    - group: shared
    steps:
    - script: echo hi
"""


def test_plan_resources_reads_groups_connections_environments(tmp_path: Path) -> None:
    (tmp_path / "p.yml").write_text(PIPELINE)
    found, note = plan_resources(tmp_path, "p.yml")
    assert note == ""
    assert sorted(found) == ["connection:prod-connection", "environment:prod", "variablegroup:dev",
                             "variablegroup:shared"]
    assert plan_resources(tmp_path, "missing.yml") == ([], "missing.yml is not on the default branch")
    (tmp_path / "bad.yml").write_text("steps: [ {script: }\n")
    found, note = plan_resources(tmp_path, "bad.yml")
    assert found == [] and note.startswith("bad.yml does not compile")


def test_script_passes_odd_values_and_secrets_exactly(tmp_path: Path) -> None:
    """The generated script, run against a stub `az`, hands every value to az unchanged."""
    odd = "a}b \"$c\" `x` \\ it's"
    plan = AzureDevOpsExport(
        repo="m", default_branch="main", clone_url="http://h/git/m.git", organization="https://dev.azure.com/o",
        project="p",
        pipelines=(ExportPipeline(name="m-x", folder="m", yaml_path="a b/x.yml", resources=("variablegroup:g",),
                                  variables=(ExportVariable(name="my.var", secret=True, value=None,
                                                            env="M_X_MY_VAR"),)),),
        variable_groups=(ExportGroup(name="g", found=True, variables=(
            ExportVariable(name="ODD", secret=False, value=odd, env="G_ODD"),
            ExportVariable(name="TOKEN", secret=True, value=None, env="G_TOKEN"))),),
        connections=(), environments=("prod",), secrets=(), commands=(), notes=("two\nlines $(not run)",),
    )
    plan = replace(plan, secrets=secrets_of(plan))
    plan = replace(plan, commands=tuple(build_commands(plan)))
    target = tmp_path / "move.sh"
    target.write_text(script(plan))
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "az").write_text("#!/usr/bin/env bash\n"
                             'for a in "$@"; do printf "%s\\0" "$a"; done >> "$AZ_LOG"; printf "\\n" >> "$AZ_LOG"\n'
                             'env | grep "^AZURE_DEVOPS_EXT_" >> "$AZ_ENV" || true\n'
                             'echo 42\n')
    (stub / "az").chmod(0o755)
    base = {"PATH": f"{stub}:/usr/bin:/bin", "AZ_LOG": str(tmp_path / "log"), "AZ_ENV": str(tmp_path / "env")}
    missing = subprocess.run(["bash", str(target)], env=base, capture_output=True, text=True)
    assert missing.returncode != 0 and "MLYARD_GIT_TOKEN" in missing.stderr
    assert not (tmp_path / "log").exists(), "nothing runs before every secret is set"
    env = {**base, "MLYARD_GIT_TOKEN": "t0k", "G_TOKEN": "s3cret", "M_X_MY_VAR": "v4r"}
    done = subprocess.run(["bash", str(target)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    calls = [line.split("\0")[:-1] for line in (tmp_path / "log").read_text().splitlines()]
    group = next(c for c in calls if c[:3] == ["pipelines", "variable-group", "create"])
    assert f"ODD={odd}" in group
    secret = next(c for c in calls if c[:4] == ["pipelines", "variable-group", "variable", "create"])
    assert secret[secret.index("--group-id") + 1] == "42" and "s3cret" not in secret
    created = next(c for c in calls if c[:2] == ["pipelines", "create"])
    assert created[created.index("--yml-path") + 1] == "a b/x.yml"
    passed = (tmp_path / "env").read_text()
    assert "AZURE_DEVOPS_EXT_PIPELINE_VAR_TOKEN=s3cret" in passed
    assert "AZURE_DEVOPS_EXT_PIPELINE_VAR_my.var=v4r" in passed
    assert "AZURE_DEVOPS_EXT_GIT_SOURCE_PASSWORD_OR_PAT=t0k" in passed
