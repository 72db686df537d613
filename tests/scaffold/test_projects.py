"""The rendered projects: their files, their own unit tests, their pipelines and their code quality."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlyard.pipelines import compile_pipeline, load_pipeline, trigger_decision
from tests.scaffold.conftest import SCHEMA, run_python, schema_validator

FILES = [
    ".copier-answers.yml",
    ".gitignore",
    "README.md",
    "pyproject.toml",
    "mlops/deploy_code.py",
    "mlops/gate.py",
    "mlops/model-gates.yml",
    "mlops/monitor.py",
    "mlops/monitoring.yml",
    "mlops/notify.py",
    "mlops/registry.py",
    "mlops/retrain.py",
    "mlops/tools.py",
    "mlops/pipelines/deploy-code.yml",
    "mlops/pipelines/promote-model.yml",
    "mlops/pipelines/deploy-model.yml",
    "mlops/pipelines/batch-inference.yml",
    "mlops/pipelines/monitor.yml",
    "src/{pkg}/__init__.py",
    "src/{pkg}/baseline.py",
    "src/{pkg}/data.py",
    "src/{pkg}/features.py",
    "src/{pkg}/train.py",
    "src/{pkg}/evaluate.py",
    "src/{pkg}/gates.py",
    "src/{pkg}/batch.py",
    "src/{pkg}/notebooks/train.py",
    "tests/conftest.py",
    "tests/model/test_model.py",
    "tests/unit/test_batch.py",
    "tests/unit/test_data.py",
    "tests/unit/test_evaluate.py",
    "tests/unit/test_features.py",
    "tests/unit/test_gates.py",
    "tests/unit/test_train.py",
]
PIPELINES = ["deploy-code", "promote-model", "deploy-model", "batch-inference", "monitor"]
STAGED = {"src", "tests", "mlops", "pyproject.toml", "README.md"}


@pytest.fixture(params=["demo", "plain"])
def project(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(f"{request.param}_project")


def package_of(project: Path) -> str:
    return yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))["package_name"]


def test_the_project_has_every_file_and_nothing_else(project: Path) -> None:
    expected = sorted(name.format(pkg=package_of(project)) for name in FILES)
    assert sorted(str(path.relative_to(project)) for path in project.rglob("*") if path.is_file()) == expected


def test_the_answers_are_kept_for_copier_update(demo_project: Path, plain_project: Path) -> None:
    demo = yaml.safe_load((demo_project / ".copier-answers.yml").read_text(encoding="utf-8"))
    plain = yaml.safe_load((plain_project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert demo["_src_path"].endswith("project_template")
    assert {key: demo[key] for key in ("repo_name", "model_name", "package_name", "environment", "demo")} == {
        "repo_name": "my-model",
        "model_name": "my-model",
        "package_name": "my_model",
        "environment": "dev",
        "demo": True,
    }
    assert (plain["package_name"], plain["environment"], plain["default_branch"], plain["demo"]) == (
        "p_9_plain",
        "prod",
        "main",
        False,
    )


def test_the_entry_point_is_a_databricks_notebook(project: Path) -> None:
    source = (project / f"src/{package_of(project)}/notebooks/train.py").read_text(encoding="utf-8")
    assert source.splitlines()[0] == "# Databricks notebook source"
    assert source.count("\n# COMMAND ----------\n") >= 4
    compile(source, "train.py", "exec")


def test_the_demo_is_a_scaled_logistic_regression_and_the_plain_project_has_todos(
    demo_project: Path, plain_project: Path
) -> None:
    demo_train = (demo_project / "src/my_model/train.py").read_text(encoding="utf-8")
    assert "LogisticRegression" in demo_train and "StandardScaler" in demo_train and "TODO" not in demo_train
    for module in ("data", "features", "train"):
        assert 'raise NotImplementedError(\n        "TODO: implement' in (
            plain_project / f"src/p_9_plain/{module}.py"
        ).read_text(encoding="utf-8")


def test_the_generated_unit_tests_pass_and_the_model_tests_skip(project: Path) -> None:
    """One run for both suites (each Python start-up with pandas and scikit-learn costs seconds)."""
    proc = run_python(project, "-m", "pytest", "tests/unit", "tests/model", "-q", "-rs", "-p", "no:cacheprovider")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = 33 if project.name == "my-model" else 27
    assert proc.stdout.splitlines()[-1].startswith(f"{passed} passed, 5 skipped in ")
    model = "my-model" if project.name == "my-model" else "9.plain"
    assert f"MODEL_URI is not set (model CI sets it, e.g. models:/{model}@staging)" in proc.stdout


def test_the_generated_code_is_ruff_clean(demo_project: Path, plain_project: Path) -> None:
    rules = 'lint.select=["E","F","W","I","B","UP","SIM","RUF"]'
    for args in (["check", "--config", rules], ["format", "--check"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--no-cache", str(demo_project), str(plain_project)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_the_pipelines_load_and_compile(project: Path, pipeline: str) -> None:
    plan = compile_pipeline(load_pipeline(project / f"mlops/pipelines/{pipeline}.yml"))
    assert plan.stages and all(job.steps for job in plan.jobs)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_the_pipelines_match_the_official_schema(project: Path, pipeline: str) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"the official schema is not at {SCHEMA.resolve()}")
    text = (project / f"mlops/pipelines/{pipeline}.yml").read_text(encoding="utf-8")
    document = yaml.load(text, Loader=yaml.BaseLoader)  # Azure reads every scalar as a string first
    errors = sorted(schema_validator().iter_errors(document), key=lambda error: list(error.absolute_path))
    assert [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors] == []


def test_deploy_code_tests_publishes_and_deploys_to_the_environment(plain_project: Path) -> None:
    plan = compile_pipeline(load_pipeline(plain_project / "mlops/pipelines/deploy-code.yml")).to_dict()
    build, release = plan["stages"]
    assert (build["stage"], release["stage"], release["dependsOn"]) == ("Build", "Release", ["Build"])
    steps = build["jobs"][0]["steps"]
    assert [step.get("task", step["kind"]) for step in steps] == [
        "checkout",
        "UsePythonVersion@0",
        "CmdLine@2",
        "CmdLine@2",
        "PublishTestResults@2",
        "CmdLine@2",
        "PublishPipelineArtifact@1",
    ]
    assert steps[2]["inputs"]["script"] == "python mlops/tools.py test"
    assert steps[3]["env"]["PYTHONPATH"] == "src"
    assert steps[4]["condition"] == "succeededOrFailed()"
    assert steps[6]["inputs"]["artifact"] == "code"
    deploy = release["jobs"][0]
    assert deploy["deployment"] == "DeployCode"
    assert deploy["environment"]["name"] == "prod"
    step = deploy["steps"][-1]
    assert step["inputs"]["script"] == (
        'python "$(Pipeline.Workspace)/code/mlops/deploy_code.py" --source "$(Pipeline.Workspace)/code" '
        '--branch "$(Build.SourceBranch)"'
    )
    assert step["env"] == {"DATABRICKS_HOST": "$(DATABRICKS_HOST)", "DATABRICKS_TOKEN": "$(DATABRICKS_TOKEN)"}


@pytest.mark.parametrize(
    ("pipeline", "ref", "changed", "runs"),
    [
        ("deploy-code", "refs/heads/feature/x", ["src/p_9_plain/train.py"], True),
        ("deploy-code", "refs/heads/main", ["src/p_9_plain/data.py", "README.md"], True),
        ("deploy-code", "refs/heads/main", ["README.md"], False),
        ("deploy-code", "refs/heads/main", ["tests/unit/test_data.py"], True),
        ("deploy-code", "refs/heads/main", ["pyproject.toml"], True),
        ("deploy-code", "refs/heads/main", [".gitignore"], False),
        ("promote-model", "refs/heads/main", ["README.md"], True),
        ("promote-model", "refs/heads/feature/x", ["src/p_9_plain/train.py"], False),
        ("deploy-model", "refs/heads/main", ["src/p_9_plain/train.py"], False),
    ],
)
def test_the_pipeline_triggers(plain_project: Path, pipeline: str, ref: str, changed: list[str], runs: bool) -> None:
    decision = trigger_decision(load_pipeline(plain_project / f"mlops/pipelines/{pipeline}.yml"), ref, changed, "a")
    assert decision.run is runs, decision.reason


def test_deploy_model_takes_the_version_stage_and_resources(demo_project: Path) -> None:
    pipeline = load_pipeline(demo_project / "mlops/pipelines/deploy-model.yml")
    assert {p.name: p.default for p in pipeline.parameters} == {"version": "", "stage": "Production", "cpu": 1,
                                                                "memory": 2}  # fmt: skip
    plan = compile_pipeline(pipeline, {"version": "3", "stage": "Staging", "cpu": "2", "memory": "4"}).to_dict()
    assert plan["stages"][0]["jobs"][0]["steps"][-1]["env"] == {
        "MODEL_VERSION": "3",
        "MODEL_STAGE": "Staging",
        "SERVING_CPU": "2",
        "SERVING_MEMORY": "4",
        "DEPLOY_TARGET_URI": "$(DEPLOY_TARGET_URI)",
        "MLFLOW_TRACKING_URI": "$(MLFLOW_TRACKING_URI)",
        "MLFLOW_TRACKING_TOKEN": "$(MLFLOW_TRACKING_TOKEN)",
        "DATABRICKS_HOST": "$(DATABRICKS_HOST)",
        "DATABRICKS_TOKEN": "$(DATABRICKS_TOKEN)",
    }


def test_the_staging_step_copies_the_code_without_caches(demo_project: Path, tmp_path: Path) -> None:
    """Run the 'Stage the code' script as the agent does (bash -e -o pipefail, cwd = the sources)."""
    plan = compile_pipeline(load_pipeline(demo_project / "mlops/pipelines/deploy-code.yml")).to_dict()
    script = plan["stages"][0]["jobs"][0]["steps"][5]["inputs"]["script"]
    sources = Path(shutil.copytree(demo_project, tmp_path / "s"))
    (sources / "src/my_model/__pycache__").mkdir()
    (sources / "src/my_model/__pycache__/data.cpython-311.pyc").write_bytes(b"")
    staging = tmp_path / "a"
    script = script.replace("$(Build.ArtifactStagingDirectory)", str(staging))
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-c", script],
        cwd=sources,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    staged = sorted(str(path.relative_to(staging / "code")) for path in (staging / "code").rglob("*") if path.is_file())
    assert staged == sorted(name.format(pkg="my_model") for name in FILES if name.split("/")[0] in STAGED)
