"""The render API: answers, package names, errors, and rendering from a git repository."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlyard.errors import InvalidInput, OperationFailed
from mlyard.scaffold import TEMPLATE_DIR, default_answers, package_name_for, render_project
from tests.conftest import Git, free_port
from tests.scaffold.conftest import CASES


@pytest.mark.parametrize("case", CASES["package_names"], ids=lambda case: case["repo"])
def test_package_name_of_a_repository(case: dict[str, str]) -> None:
    assert package_name_for(case["repo"]) == case["package"]


def test_default_answers_name_the_model_like_the_repository() -> None:
    assert default_answers("churn.v2", environment="test", demo=True, default_branch="main") == {
        "repo_name": "churn.v2",
        "model_name": "churn.v2",
        "package_name": "churn_v2",
        "environment": "test",
        "problem_type": "binary",
        "demo": True,
        "default_branch": "main",
    }


def test_questions_not_answered_take_the_template_defaults(tmp_path: Path) -> None:
    project = render_project(TEMPLATE_DIR, tmp_path / "p", {"repo_name": "9lives"})
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert {key: value for key, value in answers.items() if not key.startswith("_")} == {
        "repo_name": "9lives",
        "model_name": "9lives",
        "package_name": "p_9lives",
        "environment": "dev",
        "problem_type": "binary",
        "demo": False,
        "default_branch": "master",
        "description": "An ML project created with mlyard.",
    }
    assert (project / "src/p_9lives/notebooks/train.py").is_file()


@pytest.mark.parametrize("case", CASES["invalid_answers"], ids=lambda case: str(case["answers"]))
def test_an_invalid_answer_is_refused_with_the_rule(case: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        render_project(TEMPLATE_DIR, tmp_path / "p", case["answers"])
    assert str(caught.value) == f"invalid answer for the project template {TEMPLATE_DIR}: {case['message']}"
    assert not (tmp_path / "p").exists()


def test_a_missing_template_is_an_operation_failure(tmp_path: Path) -> None:
    with pytest.raises(OperationFailed) as caught:
        render_project(tmp_path / "nowhere", tmp_path / "p", {"repo_name": "x"})
    assert str(caught.value) == f"the project template {tmp_path / 'nowhere'} does not exist"


def test_a_folder_without_copier_yml_is_not_a_template(tmp_path: Path) -> None:
    with pytest.raises(OperationFailed) as caught:
        render_project(tmp_path, tmp_path / "p", {"repo_name": "x"})
    assert str(caught.value) == f"{tmp_path} is not a project template: it has no copier.yml"


def test_a_broken_template_is_an_operation_failure(tmp_path: Path) -> None:
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE_DIR, template)
    (template / "template/broken.txt.jinja").write_text("{{ repo_name | no_such_filter }}\n")
    with pytest.raises(OperationFailed) as caught:
        render_project(template, tmp_path / "p", {"repo_name": "x"})
    assert str(caught.value).startswith(f"could not render the project template {template}: ")
    assert "no_such_filter" in str(caught.value)


def test_a_template_without_an_answers_file_is_refused(tmp_path: Path) -> None:
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE_DIR, template)
    (template / "template/{{_copier_conf.answers_file}}.jinja").unlink()
    with pytest.raises(OperationFailed) as caught:
        render_project(template, tmp_path / "p", {"repo_name": "x"})
    assert str(caught.value) == (
        f"the project template {template} did not write .copier-answers.yml: it needs a file named "
        "'{{ _copier_conf.answers_file }}.jinja' so that projects can be updated"
    )


def test_render_from_a_git_repository_holding_the_template(git: Git, tmp_path: Path) -> None:
    """As the creator does: the platform's ml-project-template repo holds the template at its root."""
    git("init", "-q")
    shutil.copytree(TEMPLATE_DIR, git.cwd, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    (git.cwd / "template/CUSTOM.md").write_text("added by the organisation\n")
    commit = git.commit({}, "the organisation's template")
    project = render_project(git.cwd, tmp_path / "project", default_answers("from-git", demo=True))
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert commit.startswith(answers["_commit"])
    assert answers["_src_path"] == str(git.cwd)
    assert (project / "CUSTOM.md").read_text() == "added by the organisation\n"
    assert (project / "src/from_git/train.py").is_file()


def test_render_a_tagged_version_of_the_template(git: Git, tmp_path: Path) -> None:
    git("init", "-q")
    shutil.copytree(TEMPLATE_DIR, git.cwd, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    git.commit({}, "v1")
    git("tag", "v1.0.0")
    git.commit({"template/NEW.md": "after the tag\n"}, "unreleased")
    latest = render_project(git.cwd, tmp_path / "latest", {"repo_name": "a"})
    head = render_project(git.cwd, tmp_path / "head", {"repo_name": "a"}, vcs_ref="HEAD")
    assert not (latest / "NEW.md").exists()
    assert (head / "NEW.md").is_file()
    assert yaml.safe_load((latest / ".copier-answers.yml").read_text())["_commit"] == "v1.0.0"


def test_an_unreachable_template_repository_says_what_git_said_without_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COPIER_CACHE_DIR", str(tmp_path / "cache"))
    url = f"http://127.0.0.1:{free_port()}/git/ml-project-template.git"
    with pytest.raises(OperationFailed) as caught:
        render_project(url.replace("//", "//creator:s3cr3t-token@"), tmp_path / "p", {"repo_name": "x"})
    assert str(caught.value).startswith(f"could not render the project template {url}: Unexpected exit code: 128: ")
    assert "fatal: unable to access" in str(caught.value)
    assert "s3cr3t" not in str(caught.value) and "creator" not in str(caught.value)


def test_credentials_in_the_template_url_stay_out_of_the_project(
    git: Git, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The creator renders from the platform's git URL with a token in it; the answers file is committed."""
    monkeypatch.setenv("COPIER_CACHE_DIR", str(tmp_path / "cache"))
    git("init", "-q")
    shutil.copytree(TEMPLATE_DIR, git.cwd, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    git.commit({}, "template")
    url = f"git+file://creator:s3cr3t-token@localhost{git.cwd}"
    project = render_project(url, tmp_path / "p", {"repo_name": "x"}, vcs_ref="HEAD")
    answers = (project / ".copier-answers.yml").read_text(encoding="utf-8")
    assert f"\n_src_path: git+file://localhost{git.cwd}\n" in answers
    assert "s3cr3t" not in answers


def _logging_git(folder: Path) -> Path:
    """A `git` first on PATH that writes its arguments to a log, then runs the real git."""
    real = shutil.which("git")
    assert real is not None
    log = folder / "git.log"
    shim = folder / "bin" / "git"
    shim.parent.mkdir(parents=True)
    shim.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real}" "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    log.touch()
    return log


def test_rendering_a_new_folder_asks_git_about_file_modes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """copier asks git after each rendered file whether the destination's repository ignores file modes:
    render_project asks once for the whole render (one `git config`, not one per file of the project)."""
    from plumbum import local

    log = _logging_git(tmp_path)
    path = f"{tmp_path / 'bin'}:{local.env['PATH']}"
    monkeypatch.setenv("PATH", path)
    with local.env(PATH=path):
        project = render_project(TEMPLATE_DIR, tmp_path / "p", default_answers("p", demo=True))
    rendered = sum(1 for item in project.rglob("*") if item.is_file())
    asked = [line for line in log.read_text(encoding="utf-8").splitlines() if "core.fileMode" in line]
    assert rendered > 20 and len(asked) == 1, asked


def test_in_a_repository_that_ignores_file_modes_copier_still_stages_the_executable_bit(
    git: Git, tmp_path: Path
) -> None:
    """Where git ignores file modes (`core.fileMode false`), copier records a rendered file's executable bit in
    the index of the destination's repository: render_project leaves that step to copier."""
    template = tmp_path / "template"
    (template / "t").mkdir(parents=True)
    (template / "copier.yml").write_text("_subdirectory: t\nname: x\n", encoding="utf-8")
    (template / "t" / "{{_copier_conf.answers_file}}.jinja").write_text(
        "{{ _copier_answers|to_nice_yaml }}", encoding="utf-8"
    )
    (template / "t" / "run.sh").write_text("#!/bin/sh\n", encoding="utf-8")
    (template / "t" / "run.sh").chmod(0o755)
    repo = tmp_path / "repo"
    git("init", "-q", "-b", "master", str(repo))
    git("config", "core.fileMode", "false", cwd=repo)
    (repo / "run.sh").write_text("old\n", encoding="utf-8")
    git("add", "run.sh", cwd=repo)
    assert git("ls-files", "--stage", "run.sh", cwd=repo).stdout.startswith("100644 ")
    render_project(template, repo, {"name": "x"})
    assert git("ls-files", "--stage", "run.sh", cwd=repo).stdout.startswith("100755 ")
