"""`mlyard projects update`: a project made by the creator gets the platform's newer template on a branch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import Git, Server, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of this module's own: its tests change the platform's template."""
    server = start_server(tmp_path_factory.mktemp("projupdate"))
    yield server
    server.stop()


def create(server: Server, name: str) -> None:
    """The creator's own steps (what `mlyard create` runs in its pipeline), without the pipeline."""
    server.cli("infra", "create-project", "--repo-name", name, "--env-name", "dev")


def clone(server: Server, git: Git, repo: str, into: str, branch: str | None = None) -> Path:
    git("clone", "-q", *(["-b", branch] if branch else []), server.remote(repo), into)
    return git.cwd / into


def change_template(server: Server, git: Git, edits: dict[str, str], into: str) -> str:
    """Commit `edits` (path in the template repo -> new text) to the platform's template; the new commit."""
    work = clone(server, git, "ml-project-template", into)
    sha = git.commit(edits, "template: newer version", cwd=work)
    git("push", "-q", "origin", "HEAD", cwd=work)
    return sha


def update(server: Server, *args: str, check: bool = True) -> tuple[dict, str]:
    out = server.cli("projects", "update", *args, "--json", check=check)
    return (json.loads(out.stdout) if out.returncode == 0 else {}), out.stderr


def answers(work: Path) -> dict:
    return dict(yaml.safe_load((work / ".copier-answers.yml").read_text()))


def test_update_pushes_a_branch_with_the_templates_change_and_its_run_starts(srv: Server, git: Git) -> None:
    create(srv, "upd-a")
    project = clone(srv, git, "upd-a", "a")
    # The answers are data from the repo: a `_src_path` naming another template must not be followed.
    recorded = answers(project)
    text = (project / ".copier-answers.yml").read_text().replace(recorded["_src_path"], "/nonexistent/evil-template")
    git.commit({".copier-answers.yml": text}, "team: answers point elsewhere", cwd=project)
    git("push", "-q", "origin", "HEAD", cwd=project)
    template = clone(srv, git, "ml-project-template", "t")
    init = template / "template" / "src" / "{{package_name}}" / "__init__.py.jinja"
    new_sha = change_template(srv, git, {str(init.relative_to(template)): init.read_text() + "TEMPLATE_REVISION = 2\n"},
                              "t2")  # fmt: skip

    result, stderr = update(srv, "upd-a")
    branch = f"mlyard/template-update-{new_sha[:7]}"
    assert result["branch"] == branch and result["to_commit"] == new_sha and result["conflicts"] == []
    assert result["from_commit"].startswith(recorded["_commit"]) and not result["up_to_date"]
    assert result["ignored_src_path"] == "/nonexistent/evil-template"
    assert sorted(result["changed_files"]) == [".copier-answers.yml", "src/upd_a/__init__.py"]
    assert "running copier update" in stderr and f"pushing branch {branch}" in stderr

    updated = clone(srv, git, "upd-a", "b", branch=branch)
    assert (updated / "src" / "upd_a" / "__init__.py").read_text().endswith("TEMPLATE_REVISION = 2\n")
    after = answers(updated)
    assert new_sha.startswith(after["_commit"]) and after["_src_path"] == result["template"]
    assert git("rev-list", "--count", f"origin/master..{branch}", cwd=updated).stdout.strip() == "1"

    pipelines = {p["pipeline"]: p for p in result["pipelines"]}
    code = pipelines["upd-a-deploy-code"]
    assert code["triggers"] and code["run"]["source_branch"] == f"refs/heads/{branch}"
    assert code["run"]["source_version"] == result["commit"]
    assert not pipelines["upd-a-promote-model"]["triggers"]  # model CI runs on the default branch only
    assert all(p["run"] is None for p in result["pipelines"] if not p["triggers"])

    again = srv.cli("projects", "update", "upd-a", check=False)
    assert again.returncode == 4 and f"branch '{branch}' already exists in upd-a" in again.stderr


def test_lines_the_team_and_the_template_both_changed_are_pushed_as_conflicts(srv: Server, git: Git) -> None:
    create(srv, "upd-b")
    project = clone(srv, git, "upd-b", "a")
    readme = (project / "README.md").read_text().splitlines(True)
    git.commit({"README.md": "".join(["# Team title\n", *readme[1:]])}, "team: title", cwd=project)
    git("push", "-q", "origin", "HEAD", cwd=project)
    template = clone(srv, git, "ml-project-template", "t")
    source = (template / "template" / "README.md.jinja").read_text().splitlines(True)
    change_template(srv, git, {"template/README.md.jinja": "".join(["# Template title\n", *source[1:]])}, "t2")

    result, stderr = update(srv, "upd-b", "--branch", "review/template")
    assert result["branch"] == "review/template" and result["conflicts"] == ["README.md"]
    assert "conflicts in 1 file(s)" in stderr
    updated = clone(srv, git, "upd-b", "b", branch="review/template")
    text = (updated / "README.md").read_text()
    assert "<<<<<<< before updating\n# Team title\n=======\n# Template title\n>>>>>>> after updating\n" in text
    pipelines = {p["pipeline"]: p for p in result["pipelines"]}
    code = pipelines["upd-b-deploy-code"]  # README only: the code pipeline does not run
    assert not code["triggers"] and code["run"] is None and "no changed path matches" in code["reason"]


def test_a_project_at_the_current_template_is_up_to_date(srv: Server) -> None:
    create(srv, "upd-c")
    result, stderr = update(srv, "upd-c")
    assert result["up_to_date"] and result["branch"] is None and result["from_commit"] == result["to_commit"]
    assert "upd-c is up to date" in stderr
    out = srv.cli("projects", "update", "upd-c")
    assert out.stdout == f"upd-c is up to date with the template ({result['to_commit'][:7]})\n"


def test_a_repo_without_answers_gets_a_clear_error(srv: Server, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "README.md").write_text("made by hand\n")
    srv.cli("repos", "create", "upd-plain", "--from-dir", str(plain))
    out = srv.cli("projects", "update", "upd-plain", check=False)
    assert out.returncode == 3 and "Traceback" not in out.stderr
    assert "upd-plain (master) has no .copier-answers.yml" in out.stderr
    assert "add .copier-answers.yml to it (see docs/creator.md, 'Projects without answers')" in out.stderr


def test_bad_input_is_refused(srv: Server) -> None:
    out = srv.cli("projects", "update", "upd-none", check=False)
    assert out.returncode == 3 and "upd-none" in out.stderr
    out = srv.cli("projects", "update", "ml-project-template", "--branch", "bad..name", check=False)
    assert out.returncode == 2 and "invalid branch name 'bad..name'" in out.stderr


def test_a_repo_adopts_the_template_with_an_answers_file(srv: Server, git: Git, tmp_path: Path) -> None:
    # The way docs/creator.md gives for a repo made without answers: commit them, naming a template commit.
    template = clone(srv, git, "ml-project-template", "t")
    first = git("rev-list", "--max-parents=0", "HEAD", cwd=template).stdout.split()[0]
    own = tmp_path / "own"
    own.mkdir()
    (own / "notes.txt").write_text("the team's own file\n")
    # Quoted: an abbreviated sha of digits only (one in 27) is a YAML integer otherwise.
    (own / ".copier-answers.yml").write_text(
        f"_commit: '{first[:7]}'\n_src_path: ignored\nrepo_name: upd-adopt\nmodel_name: upd-adopt\n"
        "package_name: upd_adopt\nenvironment: dev\ndemo: false\ndefault_branch: master\n"
    )
    srv.cli("repos", "create", "upd-adopt", "--from-dir", str(own))
    change_template(srv, git, {"template/CONTRIBUTING.md": "Open a pull request.\n"}, "t2")
    result, _ = update(srv, "upd-adopt")
    assert result["ignored_src_path"] == "ignored" and result["branch"]
    updated = clone(srv, git, "upd-adopt", "b", branch=result["branch"])
    assert (updated / "CONTRIBUTING.md").read_text() == "Open a pull request.\n"  # what the template added since
    assert (updated / "notes.txt").is_file()
    assert not (updated / "src").exists()  # copier's rule: files the project lacks were deleted on purpose
    assert answers(updated)["_src_path"] == result["template"]


def test_a_pipeline_missing_from_an_older_project_is_registered(srv: Server) -> None:
    """A project made before the template had a pipeline (here: made, then its monitor pipeline deleted) gets
    it registered by `projects update`, like the creator registers it, once the file is on its default branch."""
    create(srv, "upd-m")
    srv.cli("pipelines", "delete", "upd-m-monitor", "--yes")
    result, stderr = update(srv, "upd-m")
    assert result["registered"] == ["upd-m-monitor"] and result["up_to_date"]
    assert "registered pipeline upd-m/upd-m-monitor (mlops/pipelines/monitor.yml of master)" in stderr
    shown = json.loads(srv.cli("pipelines", "show", "upd-m-monitor", "--json").stdout)
    assert (shown["folder"], shown["repo"], shown["yaml_path"]) == ("upd-m", "upd-m", "mlops/pipelines/monitor.yml")
    assert update(srv, "upd-m")[0]["registered"] == []  # once
