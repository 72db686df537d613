"""The platform's own infrastructure, created at init and repaired by `mlyard infra sync`.

- a service connection `<env>-connection` per environment (workspace, MLflow and serving settings);
- a variable group `<env>` per environment (services/environment_groups.py; brought up to date);
- the repo `infrastructure` with `environments/<env>.yml` and `.cicd/pipelines/create-ml-repo.yml`;
- the repo `ml-project-template` holding the project template (copier), so an organisation
  customises its template in git;
- the pipeline `ml-project-creator-pipeline` (folder `infrastructure`) with the variables
  `GIT_USERNAME` and `GIT_ACCESS_TOKEN` (secret), a token of the `creator` user.

Everything is created only when missing: an organisation's changes in git are never overwritten.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mlyard.db.engine import transaction
from mlyard.db.tables import Pipeline, PipelineVariable, Repo, User
from mlyard.git import repos as git
from mlyard.services import auth, environment_groups, environments, pipelines, repos, resources
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform

INFRA_REPO = "infrastructure"
TEMPLATE_REPO = "ml-project-template"
CREATOR_PIPELINE = "ml-project-creator-pipeline"
CREATOR_YAML = ".cicd/pipelines/create-ml-repo.yml"
CREATOR_USER = "creator"
TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "project_template"


def connection_name(env: str) -> str:
    return f"{env}-connection"


def connection_settings(env: dict[str, Any]) -> dict[str, str]:
    serving = env.get("serving") or {}
    ports = serving.get("port_range") or []
    return {
        "MLYARD_ENVIRONMENT": env["name"],
        "WORKSPACE_URI": env["workspace_uri"],
        "MLFLOW_TRACKING_URI": env["mlflow_tracking_uri"],
        "MLFLOW_REGISTRY_URI": env["mlflow_tracking_uri"],
        "SERVING_TARGET": str(serving.get("target", "local")),
        "SERVING_HOST": str(serving.get("host", "127.0.0.1")),
        "SERVING_PORT_RANGE": "-".join(str(p) for p in ports),
    }


def creator_yaml(env_names: list[str]) -> str:
    values = ", ".join(env_names)
    default = env_names[0] if env_names else "dev"
    return f"""# The ML project creator: run it with a repository name, an environment and "demo: yes/no".
# It creates a git repository from the platform's ml-project-template repository, registers the
# pipelines <repo>-deploy-code, <repo>-promote-model and <repo>-deploy-model in the folder <repo>,
# and the push of the first commit starts <repo>-deploy-code run #1.
# It works like a remote user: through git and the REST API, with the token in GIT_ACCESS_TOKEN.
trigger: none

parameters:
- name: repo_name
  displayName: Repository (and model) name
  type: string
- name: env_name
  displayName: Environment
  type: string
  default: {default}
  values: [{values}]
- name: demo
  displayName: Run with the demo project
  type: boolean
  default: false
- name: problem_type
  displayName: Problem type
  type: string
  default: binary
  values: [binary, multiclass, regression]

jobs:
- job: CreateProject
  displayName: Create ${{{{ parameters.repo_name }}}}
  steps:
  - checkout: none
  - script: >-
      mlyard infra create-project --repo-name "$REPO_NAME" --env-name "$ENV_NAME" --demo "$DEMO"
      --problem-type "$PROBLEM_TYPE"
    displayName: Create the repository and its pipelines
    env:
      REPO_NAME: ${{{{ parameters.repo_name }}}}
      ENV_NAME: ${{{{ parameters.env_name }}}}
      DEMO: ${{{{ parameters.demo }}}}
      PROBLEM_TYPE: ${{{{ parameters.problem_type }}}}
      MLYARD_URL: $(System.CollectionUri)
      MLYARD_TOKEN: $(GIT_ACCESS_TOKEN)
      GIT_USERNAME: $(GIT_USERNAME)
"""


def environment_yaml(env: dict[str, Any]) -> str:
    doc = {"name": env["name"], "workspace_uri": env["workspace_uri"],
           "mlflow_tracking_uri": env["mlflow_tracking_uri"], "serving": env.get("serving") or {},
           "connection": connection_name(env["name"])}
    return "# Environment declared by mlyard init; change it with `mlyard environments`.\n" + json.dumps(
        doc, indent=2) + "\n"


def sync(platform: Platform, admin: Principal) -> dict[str, list[str]]:
    """Create whatever part of the infrastructure is missing; report what was created."""
    created: dict[str, list[str]] = {"connections": [], "groups": [], "repos": [], "pipelines": [], "variables": []}
    envs = environments.list_environments(platform)
    for env in envs:
        name = connection_name(env["name"])
        existing = {c["name"] for c in resources.CONNECTIONS.list(platform)}
        if name not in existing:
            resources.create_connection(platform, admin, name, type="generic", settings=connection_settings(env))
            created["connections"].append(name)
    synced = environment_groups.sync_all(platform, actor=admin.username)
    created["groups"] = [group.environment for group in synced if group.written]
    existing_repos = {r.name for r in repos.list_repos(platform)}
    if TEMPLATE_REPO not in existing_repos:
        _seed_repo(platform, admin, TEMPLATE_REPO, TEMPLATE_DIR, "Project template shipped with mlyard")
        created["repos"].append(TEMPLATE_REPO)
    if INFRA_REPO not in existing_repos:
        with tempfile.TemporaryDirectory(prefix="mlyard-infra-") as tmp:
            root = Path(tmp)
            (root / ".cicd" / "pipelines").mkdir(parents=True)
            (root / CREATOR_YAML).write_text(creator_yaml([e["name"] for e in envs]), encoding="utf-8")
            (root / "environments").mkdir()
            for env in envs:
                (root / "environments" / f"{env['name']}.yml").write_text(environment_yaml(env), encoding="utf-8")
            (root / "README.md").write_text(_INFRA_README, encoding="utf-8")
            _seed_repo(platform, admin, INFRA_REPO, root, "Infrastructure: environments and the project creator")
        created["repos"].append(INFRA_REPO)
    with transaction(platform.sessions) as session:
        has_pipeline = session.scalars(select(Pipeline).where(Pipeline.name == CREATOR_PIPELINE)).first() is not None
    if not has_pipeline:
        pipelines.create_pipeline(platform, admin, name=CREATOR_PIPELINE, repo=INFRA_REPO, yaml_path=CREATOR_YAML,
                                  folder="infrastructure")
        created["pipelines"].append(CREATOR_PIPELINE)
    created["variables"] = _creator_credentials(platform, admin)
    return created


def _seed_repo(platform: Platform, admin: Principal, name: str, source: Path, message: str) -> None:
    info = repos.create_repo(platform, admin, name)
    path = git.repo_path(platform.settings.repos_dir, name)
    with tempfile.TemporaryDirectory(prefix="mlyard-seed-src-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
        git.commit_directory(path, branch=info.default_branch, source=copy, message=message, author=admin.username)


def _creator_credentials(platform: Platform, admin: Principal) -> list[str]:
    """GIT_USERNAME and GIT_ACCESS_TOKEN (secret) on the creator pipeline: a token of user `creator`."""
    with transaction(platform.sessions) as session:
        row = pipelines.get_row(session, CREATOR_PIPELINE)
        have = {v.name for v in session.scalars(select(PipelineVariable).where(PipelineVariable.pipeline_id == row.id))}
        has_user = session.scalars(select(User).where(User.username == CREATOR_USER)).first() is not None
    if {"GIT_USERNAME", "GIT_ACCESS_TOKEN"} <= have:
        return []
    if not has_user:
        auth.create_user(platform, CREATOR_USER, actor=admin.username)
    token = auth.replace_token(platform, username=CREATOR_USER, name="ml-project-creator",
                               scopes=["repo:write", "pipelines:run"], actor=admin.username)
    pipelines.set_variable(platform, admin, CREATOR_PIPELINE, "GIT_USERNAME", CREATOR_USER)
    pipelines.set_variable(platform, admin, CREATOR_PIPELINE, "GIT_ACCESS_TOKEN", str(token.token), secret=True)
    return ["GIT_USERNAME", "GIT_ACCESS_TOKEN"]


def admin_principal(platform: Platform) -> Principal:
    """The first administrator, acting for init and `infra sync` (which run on the server's machine)."""
    with transaction(platform.sessions) as session:
        user = session.scalars(select(User).where(User.is_admin.is_(True)).order_by(User.id)).first()
        assert user is not None, "no administrator: run mlyard init"
        return Principal(user.id, user.username, True, 0, frozenset(auth.SCOPES))


def repo_exists(platform: Platform, name: str) -> bool:
    with transaction(platform.sessions) as session:
        return session.scalars(select(Repo.id).where(Repo.name == name)).first() is not None


_INFRA_README = """# infrastructure

Managed by mlyard. `environments/` declares the environments (dev, test, prod): their workspace,
MLflow registry and serving settings; each has a service connection `<env>-connection`.
`.cicd/pipelines/create-ml-repo.yml` is the ML project creator pipeline
(`ml-project-creator-pipeline`): run it with `mlyard create REPO --env ENV [--demo]`.
"""
