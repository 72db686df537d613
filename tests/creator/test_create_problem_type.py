"""`mlyard create --problem-type`: the creator pipeline passes the template's `problem_type` answer on,
and registers the four pipelines of a project, batch inference included."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import Git, Server

pytestmark = pytest.mark.slow


def test_create_a_regression_project_with_its_four_pipelines(server: Server, git: Git) -> None:
    out = server.cli("create", "reg-model", "--env", "dev", "--problem-type", "regression", "--follow", "--json")
    result = json.loads(out.stdout[out.stdout.index("{\n"):])
    assert (result["repo"]["name"], result["problem_type"]) == ("reg-model", "regression")
    assert result["pipelines"] == [f"reg-model-{kind}" for kind in
                                   ("deploy-code", "promote-model", "deploy-model", "batch-inference",
                                                                    "monitor")]  # fmt: skip
    shown = json.loads(server.cli("pipelines", "show", "reg-model-batch-inference", "--json").stdout)
    assert (shown["folder"], shown["yaml_path"]) == ("reg-model", "mlops/pipelines/batch-inference.yml")

    git("clone", "-q", server.remote("reg-model"), "clone")
    answers = yaml.safe_load((git.cwd / "clone/.copier-answers.yml").read_text(encoding="utf-8"))
    assert (answers["problem_type"], answers["demo"]) == ("regression", False)
    gates = yaml.safe_load((git.cwd / "clone/mlops/model-gates.yml").read_text(encoding="utf-8"))
    assert gates["metrics"] == {"r2": {"min": 0.5}}


def test_an_unknown_problem_type_is_refused_before_anything_is_queued(server: Server) -> None:
    before = server.cli("runs", "list", "--pipeline", "ml-project-creator-pipeline", "--json").stdout
    out = server.cli("create", "rank-model", "--problem-type", "ranking", check=False)
    assert out.returncode != 0
    assert "invalid problem type 'ranking': use one of binary, multiclass, regression" in out.stderr
    assert server.cli("runs", "list", "--pipeline", "ml-project-creator-pipeline", "--json").stdout == before
