"""`resources:` offline: repositories (templates@alias, extends@alias, checkout alias), `@self`,
pipeline resources (completion triggers), containers; other repositories come from `--repo ALIAS=PATH`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlyard.cli.main import app
from mlyard.pipelines import PipelineError, Plan, compile_pipeline, load_pipeline
from mlyard.pipelines.resources import PipelineTrigger, RepositoryResource
from tests.pipelines.conftest import summary, write_tree

runner = CliRunner()

RESOURCES = """resources:
  repositories:
  - repository: shared
    type: git
    name: Platform/build-templates
    ref: refs/tags/v1
"""


def messages(exc: pytest.ExceptionInfo[PipelineError]) -> list[str]:
    return [f"{d.file.rsplit('/', 1)[-1]}:{d.line}:{d.column}: {d.message}" for d in exc.value.diagnostics]


def compiled(tmp_path: Path, files: dict[str, str], repos: dict[str, Path] | None = None) -> Plan:
    write_tree(tmp_path / "app", files)
    pipeline = load_pipeline(tmp_path / "app" / "azure-pipelines.yml")
    return compile_pipeline(pipeline, repo_root=tmp_path / "app", repositories=repos)


@pytest.mark.parametrize("reference", ["/steps/build.yml@self", "steps/build.yml@self"])
def test_bug7_at_self_is_this_repository(tmp_path: Path, reference: str) -> None:
    files = {
        "azure-pipelines.yml": "jobs:\n- template: jobs/ci.yml\n",
        "jobs/ci.yml": f"jobs:\n- job: A\n  steps:\n  - template: {reference}\n",
        "steps/build.yml": "steps:\n- script: echo build\n",
    }
    assert summary(compiled(tmp_path, files)) == ["echo build"]


def test_templates_and_extends_from_a_repository_resource(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    write_tree(shared, {
        "pipelines/main.yml": (
            "parameters:\n- name: buildSteps\n  type: stepList\n  default: []\n"
            "stages:\n- stage: Build\n  jobs:\n  - job: B\n    steps:\n    - template: /steps/setup.yml\n"
            "    - ${{ each step in parameters.buildSteps }}:\n      - ${{ step }}\n"
        ),
        "steps/setup.yml": "steps:\n- template: inner.yml\n",  # relative: in the shared repository
        "steps/inner.yml": "steps:\n- script: echo shared setup\n- template: /app.yml@self\n",
    })  # fmt: skip
    files = {
        "azure-pipelines.yml": RESOURCES + (
            "extends:\n  template: pipelines/main.yml@shared\n  parameters:\n    buildSteps:\n    - script: echo mine\n"
        ),
        "app.yml": "steps:\n- script: echo from self\n",
    }
    plan = compiled(tmp_path, files, {"shared": shared})
    assert summary(plan) == ["echo shared setup", "echo from self", "echo mine"]
    declared = RepositoryResource("shared", "Platform/build-templates", "build-templates", "git", "refs/tags/v1")
    assert plan.repositories == (declared,)
    assert Plan.from_dict(plan.to_dict()) == plan


def test_undeclared_alias_and_missing_files_are_errors_with_positions(tmp_path: Path) -> None:
    files = {
        "azure-pipelines.yml": RESOURCES + (
            "steps:\n- template: a.yml@other\n- template: b.yml@shared\n- checkout: tools\n- checkout: shared\n"
        ),
    }
    with pytest.raises(PipelineError) as caught:
        compiled(tmp_path, files)
    assert messages(caught) == [
        "azure-pipelines.yml:8:3: template 'a.yml@other': no repository resource 'other'; declare it under "
        "resources.repositories (declared: shared), or use '@self' for this repository",
        "azure-pipelines.yml:9:3: template 'b.yml@shared': the files of repository 'shared' are not available "
        "here; give them with --repo shared=PATH",
    ]
    files["azure-pipelines.yml"] = RESOURCES + "steps:\n- checkout: tools\n- checkout: shared\n"
    with pytest.raises(PipelineError) as caught:
        compiled(tmp_path, files)
    assert messages(caught) == [
        "azure-pipelines.yml:8:3: checkout 'tools': no repository resource 'tools'; use self, none or a repository "
        "declared under resources.repositories (declared: shared)",
    ]


def test_template_cannot_leave_the_other_repository(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    write_tree(shared, {"steps.yml": "steps:\n- template: ../app/secret.yml\n"})
    files = {"azure-pipelines.yml": RESOURCES + "steps:\n- template: steps.yml@shared\n", "secret.yml": "steps: []\n"}
    with pytest.raises(PipelineError) as caught:
        compiled(tmp_path, files, {"shared": shared})
    assert [d.message for d in caught.value.diagnostics] == ["template '../app/secret.yml' is outside the repository"]


def test_multi_checkout_plan(tmp_path: Path) -> None:
    files = {"azure-pipelines.yml": RESOURCES + "steps:\n- checkout: self\n- checkout: shared\n  path: s/tools\n"}
    plan = compiled(tmp_path, files)
    assert summary(plan) == ["checkout self", "checkout shared"]
    assert plan.jobs[0].steps[1].inputs == {"repository": "shared", "path": "s/tools"}


def test_resource_declarations_are_checked(tmp_path: Path) -> None:
    text = """resources:
  repositories:
  - repository: bad.alias
    name: x/y
  - repository: ok
    nmae: x/y
  pipelines:
  - pipeline: up
    source: '\\\\ML\\\\model-ci'
    trigger:
      branches: [main]
      stagez: [A]
  containers:
  - container: py
  builds: []
steps:
- script: echo
"""
    with pytest.raises(PipelineError) as caught:
        load_pipeline(text, name="p.yml")
    assert messages(caught) == [
        "p.yml:3:5: invalid alias 'bad.alias': use letters, digits, '-' and '_'",
        "p.yml:5:5: 'name' is required",
        "p.yml:6:5: unknown key 'nmae'; supported keys: repository, type, name, ref, endpoint, trigger, "
        "checkoutOptions",
        "p.yml:12:7: unknown key 'stagez'; supported keys: enabled, branches, stages, tags",
        "p.yml:14:5: 'image' is required",
        "p.yml:15:3: 'builds' resources are not supported by mlyard; supported: repositories, pipelines, containers",
    ]


def test_triggers_of_repository_and_container_resources_are_ignored_with_a_warning() -> None:
    text = (
        "resources:\n  repositories:\n  - repository: t\n    name: tools\n    trigger: [main]\n"
        "  - repository: u\n    name: u\n    trigger: none\n"
        "  containers:\n  - container: c\n    image: x\n    trigger: true\nsteps:\n- script: echo\n"
    )
    assert load_pipeline(text, name="p.yml").warnings == tuple(
        f"resources.{key}: '{alias}' has a trigger, which mlyard ignores: pushes to other repositories and new "
        "container images do not run pipelines"
        for key, alias in (("repositories", "t"), ("containers", "c"))
    )


def test_an_expression_in_a_repository_ref_is_reported() -> None:
    text = "resources:\n  repositories:\n  - repository: t\n    name: x/y\n    ref: ${{ parameters.r }}\n"
    text += "steps:\n- script: a\n"
    with pytest.raises(PipelineError) as caught:
        load_pipeline(text, name="p.yml")
    assert messages(caught) == [
        "p.yml:5:5: expressions in a repository's 'ref' are not supported by mlyard; write the ref out"
    ]


def test_pipeline_resource_and_its_completion_trigger() -> None:
    text = """resources:
  pipelines:
  - pipeline: training
    source: '\\\\models\\\\train'
    trigger:
      branches:
        include: [main, releases/*]
        exclude: [releases/old]
  - pipeline: quiet
    source: other
    trigger: none
steps:
- script: echo
"""
    resources = load_pipeline(text, name="p.yml").resources
    training, quiet = resources.pipelines
    assert (training.pipeline, quiet.trigger) == ("train", None)
    assert training.trigger == PipelineTrigger(("main", "releases/*"), ("releases/old",))
    assert training.trigger.matches("refs/heads/releases/v2")[0]
    assert not training.trigger.matches("refs/heads/releases/old")[0]
    assert not training.trigger.matches("dev")[0]
    assert PipelineTrigger().matches("anything")[0]


def test_container_jobs_validate_and_carry_their_image(tmp_path: Path) -> None:
    files = {
        "azure-pipelines.yml": """resources:
  containers:
  - container: py
    image: python:3.12
    options: --cpus 2
jobs:
- job: A
  container: py
  steps: [{script: echo a}]
- job: B
  container: {image: ubuntu:22.04, env: {X: '1'}}
  steps: [{script: echo b}]
- job: D
  container: {alias: py}
  steps: [{script: echo d}]
- job: C
  container: {env: {X: '1'}}
  steps: [{script: echo c}]
""",
    }
    with pytest.raises(PipelineError) as caught:
        compiled(tmp_path, files)
    assert messages(caught) == ["azure-pipelines.yml:17:3: a container needs an 'image'"]
    files["azure-pipelines.yml"] = files["azure-pipelines.yml"].rsplit("- job: C", 1)[0]
    plan = compiled(tmp_path, files)
    assert [job.container for job in plan.jobs] == ["python:3.12", "ubuntu:22.04", "python:3.12"]
    assert Plan.from_dict(plan.to_dict()) == plan
    result = runner.invoke(app, ["pipelines", "validate", "--json", str(tmp_path / "app" / "azure-pipelines.yml")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"][0]["warnings"] == [
        "job 'A' runs in container 'python:3.12': container jobs need a container engine, and none is "
        "configured on this mlyard server",
        "job 'B' runs in container 'ubuntu:22.04': container jobs need a container engine, and none is "
        "configured on this mlyard server",
        "job 'D' runs in container 'python:3.12': container jobs need a container engine, and none is "
        "configured on this mlyard server",
    ]


def test_cli_validate_and_expand_take_repo(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    write_tree(shared, {"steps.yml": "steps:\n- script: echo shared\n"})
    write_tree(tmp_path / "app", {"azure-pipelines.yml": RESOURCES + "steps:\n- template: steps.yml@shared\n"})
    file = str(tmp_path / "app" / "azure-pipelines.yml")
    result = runner.invoke(app, ["pipelines", "validate", file])
    assert result.exit_code == 1
    assert "give them with --repo shared=PATH" in str(result.exception)
    result = runner.invoke(app, ["pipelines", "validate", file, "--repo", f"shared={shared}"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["pipelines", "expand", file, "--repo", f"shared={shared}"])
    assert result.exit_code == 0, result.output
    assert "echo shared" in result.stdout
    result = runner.invoke(app, ["pipelines", "expand", file, "--repo", f"shared={tmp_path / 'nope'}"])
    assert result.exit_code != 0
    assert "not a folder; give the root folder of repository 'shared'" in str(result.exception)


def test_inline_repository_checkout(tmp_path: Path) -> None:
    """"Repository declared using inline syntax": checkout: git://Project/Repo[@ref]."""
    files = {
        "azure-pipelines.yml": (
            "steps:\n- checkout: self\n- checkout: git://Platform/Tools@features/x\n- checkout: git://Platform/Docs\n"
        )
    }
    plan = compiled(tmp_path, files)
    assert plan.repositories == (
        RepositoryResource("git://Platform/Tools@features/x", "Platform/Tools", "tools", "git", "features/x"),
        RepositoryResource("git://Platform/Docs", "Platform/Docs", "docs", "git", None),
    )
    assert Plan.from_dict(plan.to_dict()) == plan
    files["azure-pipelines.yml"] = "steps:\n- checkout: git://Platform/Bad Name\n- checkout: git://P/x@\n"
    with pytest.raises(PipelineError) as caught:
        compiled(tmp_path, files)
    assert messages(caught) == [
        f"azure-pipelines.yml:{line}:3: checkout '{value}': write an inline repository as git://Project/Repo or "
        "git://Project/Repo@ref, its last segment an mlyard repository name"
        for line, value in ((2, "git://Platform/Bad Name"), (3, "git://P/x@"))
    ]
