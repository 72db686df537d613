"""issue 15: a pipeline that can read no template is compiled from its own file, without exporting the
commit (a `git archive` and a temporary tree per run); the plan is the one the export gives, and the links
of the commit are still checked, with the same messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlyard.ci import sources
from mlyard.git import repos
from mlyard.pipelines import Plan
from tests.ci.engine import Engine

PLAIN = "trigger: none\nvariables:\n  answer: 42\nsteps:\n- script: echo $(answer)\n  displayName: plain\n"
WITH_TEMPLATE = "trigger: none\nsteps:\n- template: steps.yml\n"
STEPS = "steps:\n- script: echo from a template\n"


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The commits exported by compile_at (the real export still happens)."""
    done: list[str] = []
    real = repos.export_tree
    monkeypatch.setattr(repos, "export_tree", lambda path, rev, dest: done.append(rev) or real(path, rev, dest))
    return done


def head(work: Path, engine: Engine) -> str:
    return engine.git("rev-parse", "HEAD", cwd=work).stdout.strip()


def compile_at(engine: Engine, repo: str, commit: str, yaml_path: str, **parameters: object) -> Plan:
    return sources.compile_at(
        engine.platform, repo, commit, yaml_path, parameters=parameters, variables={}, context={}
    )


def test_a_plain_pipeline_is_compiled_without_exporting_the_commit(
    engine: Engine, exports: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = engine.repo("plain", {"ci/build.yml": PLAIN, "src/app.py": "print('hi')\n"})
    commit = head(work, engine)
    plan = compile_at(engine, "plain", commit, "ci/build.yml")
    assert exports == []
    monkeypatch.setattr(sources, "_lone_file", lambda *args: None)  # the export, as before issue 15
    assert compile_at(engine, "plain", commit, "ci/build.yml") == plan
    assert exports == [commit]


@pytest.mark.parametrize(
    ("files", "yaml_path", "parameters"),
    [
        ({"ci.yml": WITH_TEMPLATE, "steps.yml": STEPS}, "ci.yml", {}),  # a template reference
        ({"ci.yml": "steps:\n- script: echo ${{ 'x' }}\n"}, "ci.yml", {}),  # an expression may build one
        ({"ci.yml": "steps:\n- script: echo \"\\x41\"\n"}, "ci.yml", {}),  # an escape may spell one
        ({"real.yml": PLAIN}, "ci.yml", {}),  # the file is a link
        ({"ci.yml": PLAIN}, "./ci.yml", {}),  # not a plain path
    ],
    ids=["template", "expression", "escape", "link", "path"],
)
def test_what_may_read_other_files_is_exported(
    engine: Engine, exports: list[str], files: dict[str, str], yaml_path: str, parameters: dict[str, object]
) -> None:
    work = engine.repo("other", files)
    if "real.yml" in files:
        os.symlink("real.yml", work / "ci.yml")
        engine.git.commit({}, "link", cwd=work)
        engine.push("other", work, "master")
    commit = head(work, engine)
    plan = compile_at(engine, "other", commit, yaml_path, **parameters)
    assert exports == [commit]
    assert plan.jobs[0].steps


def test_links_out_of_the_repository_still_fail_first_in_the_archives_order(engine: Engine, exports: list[str]) -> None:
    work = engine.repo("links", {"ci.yml": PLAIN, "b/keep.txt": "x\n"})
    os.symlink("../../../etc", work / "b" / "up")  # b/up comes before z in the archive (depth first)
    os.symlink("/etc/passwd", work / "z")
    os.symlink("../b/keep.txt", work / "b" / "fine")  # inside the repository: allowed
    engine.git.commit({}, "links", cwd=work)
    engine.push("links", work, "master")
    commit = head(work, engine)
    with pytest.raises(sources.RepoContentError) as raised:
        compile_at(engine, "links", commit, "ci.yml")
    assert raised.value.message == (
        f"cannot read the files of repository 'links' at {commit[:10]}: 'b/up' is a link pointing outside the "
        "repository; remove the link or make it point inside the repository"
    )
    assert exports == []
    os.remove(work / "b" / "up")
    engine.git.commit({}, "one link left", cwd=work)
    engine.push("links", work, "master")
    with pytest.raises(sources.RepoContentError, match="'z' is a link to an absolute path"):
        compile_at(engine, "links", head(work, engine), "ci.yml")


def test_parameters_that_name_a_template_are_exported(engine: Engine, exports: list[str]) -> None:
    text = "parameters:\n- name: extra\n  type: object\n  default: []\nsteps:\n- script: echo plain\n"
    work = engine.repo("params", {"ci.yml": text})
    commit = head(work, engine)
    compile_at(engine, "params", commit, "ci.yml", extra=[{"template": "x.yml"}])
    assert exports == [commit]
