"""`mlyard export azure-devops REPO`: the `az` commands that move a project to Azure DevOps + Databricks.

Everything is read through the API client (the repository, its pipelines, the variable groups and
service connections they use) and through git (the pipelines' YAML on the default branch, compiled
offline to find the protected resources it names). Secret values are never exported: the plan names
an environment variable for each, which the script requires before it changes anything.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlyard.cli import output
from mlyard.cli.context import client
from mlyard.errors import InvalidInput, NotFound, OperationFailed

if TYPE_CHECKING:
    from mlyard.client import Client
    from mlyard.views import PipelineView, RepoView

export_app = typer.Typer(help="Export a project to another home (Azure DevOps + Databricks).", no_args_is_help=True)

MAX_PIPELINES = 100  # pipelines of one repository exported at most
MAX_RESOURCES = 50  # variable groups / connections / environments per export
MAX_OPTION = 300  # characters of --org / --project
CLONE_TIMEOUT = 120.0  # seconds


# -- the plan: a typed document -------------------------------------------------------------------
@dataclass(frozen=True)
class SecretInput:
    """A secret the script needs: the environment variable that holds it and what to put there."""

    env: str
    prompt: str


@dataclass(frozen=True)
class ExportVariable:
    """A variable: a plain one keeps its value (as the default of `env`); a secret only names `env`."""

    name: str
    secret: bool
    value: str | None  # None for a secret
    env: str  # the script's variable holding the value


@dataclass(frozen=True)
class ExportGroup:
    name: str
    variables: tuple[ExportVariable, ...]
    found: bool  # False: a pipeline names it but the server has no such group


@dataclass(frozen=True)
class ExportConnection:
    name: str
    type: str
    settings: tuple[ExportVariable, ...]  # mlyard's settings: on Azure they belong in a variable group
    found: bool


@dataclass(frozen=True)
class ExportPipeline:
    name: str
    folder: str
    yaml_path: str
    variables: tuple[ExportVariable, ...]
    resources: tuple[str, ...]  # KIND:NAME of the protected resources it uses


@dataclass(frozen=True)
class AzureDevOpsExport:
    repo: str
    default_branch: str
    clone_url: str
    organization: str  # '' when not given: the script then requires AZURE_DEVOPS_ORG
    project: str
    pipelines: tuple[ExportPipeline, ...]
    variable_groups: tuple[ExportGroup, ...]
    connections: tuple[ExportConnection, ...]
    environments: tuple[str, ...]
    secrets: tuple[SecretInput, ...]
    commands: tuple[str, ...]  # in order, as the script runs them
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- reading the project --------------------------------------------------------------------------
def env_name(*parts: str) -> str:
    """A shell variable name from parts (`dev`, `DATABRICKS_TOKEN` -> DEV_DATABRICKS_TOKEN)."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", "_".join(p for p in parts if p)).strip("_").upper()
    return name if name and not name[0].isdigit() else f"V_{name}"


def _variables(owner: str, plain: dict[str, Any], secret: list[str]) -> tuple[ExportVariable, ...]:
    rows = [ExportVariable(name=k, secret=False, value=str(value), env=env_name(owner, k))
            for k, value in sorted(plain.items())]
    rows += [ExportVariable(name=k, secret=True, value=None, env=env_name(owner, k)) for k in sorted(secret)]
    return tuple(rows)


def plan_resources(root: Path, yaml_path: str) -> tuple[list[str], str]:
    """The protected resources (KIND:NAME) a pipeline file names, compiled with its defaults; a note
    instead when it cannot be compiled offline (parameters without defaults, errors)."""
    from mlyard.pipelines import PipelineError, compile_pipeline, load_pipeline
    from mlyard.pipelines.plan import protected_resources

    file = root / yaml_path
    if not file.is_file():
        return [], f"{yaml_path} is not on the default branch"
    try:
        pipeline = load_pipeline(file, repo_root=root)
        required = [p.name for p in pipeline.parameters if not p.has_default]
        if required:
            return [], f"{yaml_path}: parameters without a default ({', '.join(required)}): resources not read"
        plan = compile_pipeline(pipeline, repo_root=root)
    except PipelineError as exc:
        return [], f"{yaml_path} does not compile: {exc}"
    return [f"{kind}:{name}" for kind, name in protected_resources(plan)], ""


def _checkout(api: Client, repo: RepoView, dest: Path) -> str:
    """Clone the default branch into `dest`; '' or a note saying why not."""
    from mlyard.git.remote import auth_env

    username = api.me().username
    try:
        done = subprocess.run(
            ["git", "clone", "-q", "--depth", "1", "--branch", repo.default_branch, repo.clone_url, str(dest)],
            env=auth_env(username, api.token), capture_output=True, text=True, timeout=CLONE_TIMEOUT, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"could not clone {repo.name}: {exc}"
    if done.returncode != 0:
        return f"could not clone {repo.name} (branch {repo.default_branch}): {done.stderr.strip()[:300]}"
    return ""


def _kind(resource: str) -> tuple[str, str]:
    kind, _, name = resource.partition(":")
    kind = {"variable_group": "variablegroup", "group": "variablegroup", "service_connection": "connection"}.get(
        kind, kind)
    return kind, name


def build_plan(api: Client, repo_name: str, *, organization: str = "", project: str = "") -> AzureDevOpsExport:
    try:
        repo = api.repos.get(repo_name)
    except NotFound:
        raise NotFound(f"repository {repo_name!r} not found; list repositories with `mlyard repos list`") from None
    views: list[PipelineView] = [p for p in api.pipelines.list() if p.repo == repo.name][:MAX_PIPELINES]
    notes: list[str] = []
    pipelines: list[ExportPipeline] = []
    with tempfile.TemporaryDirectory(prefix="mlyard-export-") as tmp:
        root = Path(tmp) / "repo"
        clone_error = _checkout(api, repo, root) if views else ""
        if clone_error:
            notes.append(clone_error + "; resources are those the pipelines were permitted to use")
        for brief in views:
            view = api.pipelines.get(brief.name)
            used: list[str] = []
            if not clone_error:
                used, note = plan_resources(root, view.yaml_path)
                if note:
                    notes.append(note)
            for granted in view.permissions or []:
                kind, name = _kind(granted)
                if f"{kind}:{name}" not in used:
                    used.append(f"{kind}:{name}")
            variables = tuple(
                ExportVariable(name=v.name, secret=v.secret, value=None if v.secret else (v.value or ""),
                               env=env_name(view.name, v.name))
                for v in view.variables or []
            )
            pipelines.append(ExportPipeline(name=view.name, folder=view.folder, yaml_path=view.yaml_path,
                                            variables=variables, resources=tuple(used)))
    wanted: dict[str, list[str]] = {"variablegroup": [], "connection": [], "environment": []}
    for pipeline in pipelines:
        for resource in pipeline.resources:
            kind, name = _kind(resource)
            if kind in wanted and name not in wanted[kind] and len(wanted[kind]) < MAX_RESOURCES:
                wanted[kind].append(name)
    groups = []
    for name in wanted["variablegroup"]:
        try:
            group = api.variable_groups.get(name)
        except NotFound:
            notes.append(f"variable group {name!r} is used by a pipeline but does not exist on the server")
            groups.append(ExportGroup(name=name, variables=(), found=False))
            continue
        groups.append(ExportGroup(name=name, variables=_variables(name, group.variables, group.secret_variables),
                                  found=True))
    connections = []
    for name in wanted["connection"]:
        try:
            conn = api.connections.get(name)
        except NotFound:
            notes.append(f"service connection {name!r} is used by a pipeline but does not exist on the server")
            connections.append(ExportConnection(name=name, type="", settings=(), found=False))
            continue
        connections.append(ExportConnection(name=name, type=conn.type, found=True,
                                            settings=_variables(name, conn.settings, conn.secret_keys)))
    draft = AzureDevOpsExport(
        repo=repo.name, default_branch=repo.default_branch, clone_url=repo.clone_url, organization=organization,
        project=project, pipelines=tuple(pipelines), variable_groups=tuple(groups),
        connections=tuple(connections), environments=tuple(wanted["environment"]), secrets=(), commands=(),
        notes=tuple(notes),
    )
    return replace(draft, secrets=secrets_of(draft), commands=tuple(build_commands(draft)))


# -- the commands ---------------------------------------------------------------------------------
def secrets_of(plan: AzureDevOpsExport) -> tuple[SecretInput, ...]:
    found = [SecretInput("MLYARD_GIT_TOKEN", f"a token of this mlyard server with repo:read, to import {plan.repo}")]
    for group in plan.variable_groups:
        found += [SecretInput(v.env, f"the value of secret {v.name} of variable group {group.name}")
                  for v in group.variables if v.secret]
    for pipeline in plan.pipelines:
        found += [SecretInput(v.env, f"the value of secret variable {v.name} of pipeline {pipeline.name}")
                  for v in pipeline.variables if v.secret]
    for conn in plan.connections:
        found.append(SecretInput(env_name(conn.name, "SP_KEY"),
                                 f"the service principal key (secret) of Azure connection {conn.name}"))
    return tuple(found)


def q(value: str) -> str:
    return shlex.quote(value)


def v(env: str) -> str:
    return f'"${env}"'


def secret_env(x: ExportVariable) -> str:
    """`env NAME=VALUE`: az reads a secret it is not given with --value from AZURE_DEVOPS_EXT_PIPELINE_VAR_<name>
    (`env` also passes names with '.', which a shell assignment cannot)."""
    return "env " + q(f"AZURE_DEVOPS_EXT_PIPELINE_VAR_{x.name}=") + v(x.env)


def build_commands(plan: AzureDevOpsExport) -> list[str]:
    """The `az` commands, in order (they use the variables that `script` defines at the top)."""
    out = [
        'az devops configure --defaults organization="$ORG" project="$PROJECT"',
        f"az repos create --name {q(plan.repo)}",
        f'AZURE_DEVOPS_EXT_GIT_SOURCE_PASSWORD_OR_PAT="$MLYARD_GIT_TOKEN" az repos import create '
        f'--git-source-url "$MLYARD_CLONE_URL" --repository {q(plan.repo)} --requires-authorization '
        f'--user-name "$MLYARD_GIT_USER"',
    ]
    for group in plan.variable_groups:
        plain = [x for x in group.variables if not x.secret]
        pairs = " ".join(q(f"{x.name}=") + v(x.env) for x in plain) or "EXPORTED_FROM=mlyard"
        gid = env_name(group.name, "GROUP_ID")
        out.append(f"{gid}=$(az pipelines variable-group create --name {q(group.name)} --variables {pairs} "
                   "--authorize false --query id --output tsv)")
        for x in group.variables:
            if x.secret:
                out.append(f"{secret_env(x)} az pipelines variable-group variable "
                           f"create --group-id {v(gid)} --name {q(x.name)} --secret true")
    for conn in plan.connections:
        out.append(
            f"AZURE_DEVOPS_EXT_AZURE_RM_SERVICE_PRINCIPAL_KEY={v(env_name(conn.name, 'SP_KEY'))} "
            f"az devops service-endpoint azurerm create --name {q(conn.name)} "
            '--azure-rm-service-principal-id "$AZURE_SP_ID" --azure-rm-subscription-id "$AZURE_SUBSCRIPTION_ID" '
            '--azure-rm-subscription-name "$AZURE_SUBSCRIPTION_NAME" --azure-rm-tenant-id "$AZURE_TENANT_ID"'
        )
    for folder in dict.fromkeys(p.folder for p in plan.pipelines if p.folder):
        out.append(f"az pipelines folder create --path {q(folder)} --output none || true  # it may exist")
    for p in plan.pipelines:
        folder = f" --folder-path {q(p.folder)}" if p.folder else ""
        out.append(f"az pipelines create --name {q(p.name)}{folder} --yml-path {q(p.yaml_path)} "
                   f"--repository {q(plan.repo)} --repository-type tfsgit --branch {q(plan.default_branch)} "
                   "--skip-first-run true")
        for x in p.variables:
            if x.secret:
                out.append(f"{secret_env(x)} az pipelines variable create "
                           f"--pipeline-name {q(p.name)} --name {q(x.name)} --secret true")
            else:
                out.append(f"az pipelines variable create --pipeline-name {q(p.name)} --name {q(x.name)} "
                           f"--value {v(x.env)}")
    return out


def script(plan: AzureDevOpsExport) -> str:
    """The plan as a bash script: settings and required secrets at the top, then the commands."""
    lines = [
        "#!/usr/bin/env bash",
        f"# Move the mlyard project {plan.repo} to Azure DevOps (generated by `mlyard export azure-devops`).",
        "# Needs the Azure CLI with the azure-devops extension, signed in (`az login` or `az devops login`).",
        "# See docs/azure-devops.md. Every value below can be overridden from the environment.",
        "set -euo pipefail",
        "",
        f'ORG="${{AZURE_DEVOPS_ORG:-{plan.organization}}}"',
        f'PROJECT="${{AZURE_DEVOPS_PROJECT:-{plan.project}}}"',
        ': "${ORG:?set AZURE_DEVOPS_ORG (or pass --org) to the organization URL, e.g. https://dev.azure.com/ORG}"',
        ': "${PROJECT:?set AZURE_DEVOPS_PROJECT (or pass --project) to the Azure DevOps project name}"',
        f'MLYARD_CLONE_URL=${{MLYARD_CLONE_URL:-{q(plan.clone_url)}}}  # must be reachable from Azure DevOps',
        'MLYARD_GIT_USER="${MLYARD_GIT_USER:-mlyard}"',
    ]
    if plan.connections:
        lines.append("# The Azure subscription and service principal of the service connection(s):")
        lines += [f': "${{{name}:?set {name}}}"' for name in
                  ("AZURE_SP_ID", "AZURE_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_NAME", "AZURE_TENANT_ID")]
    values = [(group.name, x) for group in plan.variable_groups for x in group.variables if not x.secret]
    values += [(p.name, x) for p in plan.pipelines for x in p.variables if not x.secret]
    if values:
        lines += ["", "# Plain values as on mlyard: on Azure point them at the Databricks workspace, MLflow and",
                  "# deployments target of each environment (docs/azure-devops.md)."]
        lines += [f"{x.env}=${{{x.env}:-{q(x.value or '')}}}  # {_comment(owner)}: {_comment(x.name)}"
                  for owner, x in values]
    lines += ["", "# Secrets are not exported: set each one in the environment before running this script."]
    lines += [f': "${{{s.env}:?set {s.env} to {_dq(s.prompt)}}}"' for s in plan.secrets]
    if plan.environments:
        lines += ["", "# Environments (Pipelines > Environments; approvals and checks are set there):"]
        lines += [f"#   {name}" for name in plan.environments]
    if plan.notes:
        lines += ["", "# Notes:"] + [f"#   {_comment(n)}" for n in plan.notes]
    lines += ["", *plan.commands, "", 'echo "done: $ORG $PROJECT"']
    return "\n".join(lines) + "\n"


def _dq(text: str) -> str:
    """`text` safe as the message of a double-quoted `${X:?message}`."""
    return re.sub(r'([\\"$`])', r"\\\1", _comment(text).replace("}", ")"))


def _comment(text: str) -> str:
    """`text` on one line (a comment or a message)."""
    return " ".join(text.split())


def _check(value: str, option: str, url: bool = False) -> str:
    value = value.strip()
    if len(value) > MAX_OPTION or any(ord(c) < 32 for c in value):
        raise InvalidInput(f"{option} must be at most {MAX_OPTION} printable characters")
    if url and value and not re.match(r"^https?://[^\s\"'`$\\]+$", value):
        raise InvalidInput(f"{option} {value!r} is not an http(s) URL (e.g. https://dev.azure.com/ORG)")
    if not url and re.search(r"[\"'`$\\]", value):
        raise InvalidInput(f"{option} must not contain quotes, '$', '`' or '\\'")
    return value


@export_app.callback()
def export_group() -> None:
    """Export a project to another home (Azure DevOps + Databricks)."""


@export_app.command("azure-devops")
def azure_devops(
    repo: str,
    org: Annotated[str, typer.Option("--org", help="Azure DevOps organization URL.")] = "",
    project: Annotated[str, typer.Option("--project", help="Azure DevOps project name.")] = "",
    script_file: Annotated[Path | None, typer.Option("--script", help="Write the commands as a bash script.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the plan as one JSON document.")] = False,
) -> None:
    """Print the `az` commands that import REPO, its variable groups, connections and pipelines into Azure DevOps."""
    organization, project = _check(org, "--org", url=True), _check(project, "--project")
    with client() as api:
        plan = build_plan(api, repo, organization=organization, project=project)
    text = script(plan)
    if script_file is not None:
        try:
            script_file.write_text(text)
            script_file.chmod(0o700)
        except OSError as exc:
            raise OperationFailed(f"cannot write {script_file}: {exc.strerror}") from None
    if json:
        output.print_json(plan.to_dict())
    elif script_file is not None:
        output.console().print(f"wrote {script_file}: {len(plan.commands)} commands for {len(plan.pipelines)} "
                               f"pipelines; set the {len(plan.secrets)} secrets it names, then run it")
    else:
        print(text, end="")
