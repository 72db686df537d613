"""The offline `mlyard pipelines` commands: validate, expand, explain-trigger, eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from mlyard.cli.main import app
from tests.pipelines.conftest import DATA

# The console script installed next to the running interpreter (in the venv running the tests).
MLYARD = Path(sys.executable).parent / "mlyard"
VALID = DATA / "valid"
BROKEN = DATA / "broken"
runner = CliRunner()


def mlyard(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console script, as a user runs it (errors go through main's handler)."""
    command = [str(MLYARD)] if MLYARD.exists() else [sys.executable, "-m", "mlyard"]
    env = {"PATH": os.defpath, "COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def test_validate_valid_files() -> None:
    result = runner.invoke(app, ["pipelines", "validate", str(VALID / "ml-ci.yml"), str(VALID / "code-ci.yml")])
    assert result.exit_code == 0, result.output
    assert f"{VALID / 'ml-ci.yml'}: valid" in result.stdout
    assert f"{VALID / 'code-ci.yml'}: valid" in result.stdout


def test_validate_reports_every_error_with_its_position_and_exits_1() -> None:
    broken = BROKEN / "unknown-step.yml"
    result = mlyard("pipelines", "validate", str(VALID / "steps-only.yml"), str(broken))
    assert result.returncode == 1
    assert f"{VALID / 'steps-only.yml'}: valid" in result.stdout
    expected = (BROKEN / "unknown-step.expected").read_text().splitlines()
    for line in expected:
        assert f"{broken}:{line}" in result.stderr
    assert result.stderr.startswith("error: 3 problems in pipeline")


def test_validate_json() -> None:
    broken = BROKEN / "dependencies.yml"
    result = runner.invoke(app, ["pipelines", "validate", "--json", str(broken)])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["valid"] is False
    assert document["files"][0]["errors"][0] == {
        "file": str(broken),
        "line": 8,
        "column": 5,
        "path": "stages[0].jobs[1].dependsOn",
        "message": "job 'Test' depends on unknown job 'Compyle' in stage 'Build'; jobs: Compile, Test",
    }


def test_expand_prints_the_plan_as_yaml_with_parameters() -> None:
    result = runner.invoke(
        app,
        [
            "pipelines",
            "expand",
            str(VALID / "ml-ci.yml"),
            "--param",
            "pythonVersion=3.12",
            "--param",
            "runIntegration=true",
        ],
    )
    assert result.exit_code == 0, result.output
    plan = yaml.safe_load(result.stdout)
    assert plan["parameters"] == {"pythonVersion": "3.12", "runIntegration": True}
    lint = plan["stages"][0]["jobs"][0]
    assert lint["steps"][1]["inputs"]["versionSpec"] == "3.12"
    assert plan["stages"][1]["dependsOn"] == ["Test"]


def test_expand_json_and_a_bad_parameter() -> None:
    result = runner.invoke(app, ["pipelines", "expand", "--json", str(VALID / "steps-only.yml")])
    assert json.loads(result.stdout)["stages"][0]["jobs"][0]["job"] == "Job"
    bad = mlyard("pipelines", "expand", str(VALID / "ml-ci.yml"), "--param", "pythonVersion=2.7")
    assert bad.returncode == 1
    assert "parameter 'pythonVersion': value '2.7' is not allowed; allowed values: 3.10, 3.11, 3.12" in bad.stderr


def test_explain_trigger_text_and_json() -> None:
    file = str(VALID / "ml-ci.yml")
    result = runner.invoke(
        app, ["pipelines", "explain-trigger", file, "--ref", "refs/heads/main", "--changed", "src/a.py"]
    )
    assert result.exit_code == 0
    assert result.stdout.startswith("run: ")
    result = runner.invoke(app, ["pipelines", "explain-trigger", file, "--ref", "refs/heads/dev", "--json"])
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["run"] is False and document["reason"]
    skipped = runner.invoke(
        app, ["pipelines", "explain-trigger", file, "--ref", "refs/heads/main", "--message", "fix [skip ci]"]
    )
    assert skipped.exit_code == 0 and skipped.stdout.startswith("no run: ")


def test_explain_trigger_none() -> None:
    result = runner.invoke(app, ["pipelines", "explain-trigger", str(VALID / "ml-cd.yml"), "--ref", "main", "--json"])
    assert json.loads(result.stdout) == {"run": False, "reason": "trigger: none"}


def test_eval_bare_and_wrapped_expressions() -> None:
    cases = [
        (["eq(variables.a, 'X')", "--var", "a=x"], "true"),
        (["${{ parameters.n }}", "--param", "n=3"], "3"),
        (["$[ variables.n ]", "--var", "n=3"], '"3"'),
        (["parameters.p.a[1]", "--param", 'p={"a": [1, 2]}'], "2"),
        (["format('{0}-{1}', parameters.s, 1)", "--param", "s=not json"], '"not json-1"'),
    ]
    for args, expected in cases:
        result = runner.invoke(app, ["pipelines", "eval", *args])
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == expected, args


def test_eval_invalid_expression_exits_1_with_the_error() -> None:
    result = mlyard("pipelines", "eval", "eq(1")
    assert result.returncode == 1
    assert result.stderr.startswith("error: expected ')' at column 5 in: eq(1")


def test_bad_key_value_option_is_invalid_input() -> None:
    result = mlyard("pipelines", "eval", "1", "--var", "novalue")
    assert result.returncode == 2
    assert "--var expects KEY=VALUE, got 'novalue'" in result.stderr


def test_validate_warns_when_required_parameters_prevent_expansion(tmp_path: Path) -> None:
    file = tmp_path / "req.yml"
    file.write_text("parameters:\n- name: env\nsteps:\n- script: echo ${{ parameters.env }}\n", encoding="utf-8")
    result = runner.invoke(app, ["pipelines", "validate", "--json", str(file)])
    assert result.exit_code == 0
    (report,) = json.loads(result.stdout)["files"]
    assert report["warnings"] == ["templates not expanded: parameters without a default (env); try `expand --param`"]
