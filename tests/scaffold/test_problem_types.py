"""The template's problem types (binary, multiclass, regression): each renders, its own unit tests pass,
its pipelines are valid, model CI's gate (mlops/gate.py, with the rules of src/<package>/gates.py)
passes and fails on real registered models, and batch inference scores a table with the Production model.

The MLflow parts run in this process against a SQLite store in a temporary folder: each demo project has
its own package name, so their modules can be imported side by side.
"""

from __future__ import annotations

import importlib
import os
import re
import runpy
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlyard.pipelines import compile_pipeline, load_pipeline, trigger_decision
from mlyard.pipelines.schedules import schedule_decision
from tests.conftest import Server, mlflow_globals
from tests.scaffold.conftest import SCHEMA, run_python, schema_validator
from tests.scaffold.test_portable import MLYARD_ONLY
from tests.scaffold.test_projects import FILES, PIPELINES, package_of

VARIANTS = [("multiclass", True), ("multiclass", False), ("regression", True), ("regression", False)]
# Passed and skipped tests of each variant's `pytest tests/unit tests/model` (model tests skip without MODEL_URI).
COUNTS = {
    ("multiclass", True): (32, 4),
    ("multiclass", False): (26, 4),
    ("regression", True): (33, 5),
    ("regression", False): (27, 3),
}
PIP_REQUIREMENTS = ["scikit-learn", "mlflow"]  # explicit: MLflow does not infer them (seconds each)


def variant_id(variant: tuple[str, bool]) -> str:
    return f"{variant[0]}-{'demo' if variant[1] else 'plain'}"


@pytest.fixture(params=VARIANTS, ids=variant_id)
def variant(request: pytest.FixtureRequest, render_variant: Callable[[str, bool], Path]) -> tuple[str, bool, Path]:
    problem_type, demo = request.param
    return problem_type, demo, render_variant(problem_type, demo)


def test_each_variant_has_every_file_and_answers_its_problem_type(variant: tuple[str, bool, Path]) -> None:
    problem_type, demo, project = variant
    expected = sorted(name.format(pkg=package_of(project)) for name in FILES)
    assert sorted(str(path.relative_to(project)) for path in project.rglob("*") if path.is_file()) == expected
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert (answers["problem_type"], answers["demo"]) == (problem_type, demo)


def test_each_variants_unit_tests_pass_and_its_model_tests_skip(render_variant: Callable[[str, bool], Path]) -> None:
    """The four variants' tests in one Python (start-up with pandas and scikit-learn costs seconds each):
    distinct package names, `--import-mode=importlib` for test files of the same name. The binary
    projects run theirs from their own root, as code CI does (test_projects.py)."""
    projects = [render_variant(problem_type, demo) for problem_type, demo in VARIANTS]
    paths = [str(project / suite) for project in projects for suite in ("tests/unit", "tests/model")]
    proc = run_python(
        projects[0].parent.parent,
        *("-m", "pytest", "--import-mode=importlib", "-q", "-rs", "-p", "no:cacheprovider", *paths),
        env={"PYTHONPATH": os.pathsep.join(str(project / "src") for project in projects)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed, skipped = (sum(counts) for counts in zip(*COUNTS.values(), strict=True))
    assert proc.stdout.splitlines()[-1].startswith(f"{passed} passed, {skipped} skipped in ")
    assert "MODEL_URI is not set (model CI sets it, e.g. models:/regression-plain@staging)" in proc.stdout


def test_the_variants_are_ruff_clean(render_variant: Callable[[str, bool], Path]) -> None:
    projects = [str(render_variant(problem_type, demo)) for problem_type, demo in VARIANTS]
    rules = 'lint.select=["E","F","W","I","B","UP","SIM","RUF"]'
    for args in (["check", "--config", rules], ["format", "--check"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "--no-cache", *projects],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_each_variants_pipelines_compile_and_match_the_official_schema(variant: tuple[str, bool, Path]) -> None:
    _, _, project = variant
    for pipeline in PIPELINES:
        path = project / f"mlops/pipelines/{pipeline}.yml"
        plan = compile_pipeline(load_pipeline(path))
        assert plan.stages and all(job.steps for job in plan.jobs)
        if SCHEMA.is_file():
            document = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
            errors = sorted(schema_validator().iter_errors(document), key=lambda error: list(error.absolute_path))
            assert [f"{pipeline}: {list(e.absolute_path)}: {e.message[:200]}" for e in errors] == []


def test_the_metrics_and_gates_follow_the_problem_type(render_variant: Callable[[str, bool], Path]) -> None:
    gates = {
        (problem_type, demo): yaml.safe_load(
            (render_variant(problem_type, demo) / "mlops/model-gates.yml").read_text(encoding="utf-8")
        )["metrics"]
        for problem_type in ("binary", "multiclass", "regression")
        for demo in (True, False)
    }
    assert gates[("binary", True)] == {"accuracy": {"min": 0.9}, "f1": {"min": 0.9}, "roc_auc": {"min": 0.95}}
    assert gates[("multiclass", True)] == {"accuracy": {"min": 0.9}, "f1_macro": {"min": 0.9}}
    assert gates[("regression", True)] == {"rmse": {"max": 60.0}, "mae": {"max": 50.0}, "r2": {"min": 0.4}}
    assert gates[("regression", False)] == {"r2": {"min": 0.5}}  # errors are in the target's unit: the team's call
    regression = (render_variant("regression", True) / "src/regression_demo/data.py").read_text(encoding="utf-8")
    assert "stratify" not in regression and "load_diabetes(as_frame=True, scaled=False)" in regression
    assert "load_wine(as_frame=True)" in (render_variant("multiclass", True) / "src/multiclass_demo/data.py").read_text(
        encoding="utf-8"
    )


# The rule of tests/scaffold/test_portable.py: no `mlyard` command in a generated file (it must run on Azure too).
MLYARD_COMMAND = re.compile(r"(?<![\w./+-])mlyard[ \t]+(?:[a-z][\w-]*)|\bMlyard\.[A-Za-z]|\bMLYARD_\w+")


def test_no_file_of_any_variant_names_an_mlyard_command_or_variable(variant: tuple[str, bool, Path]) -> None:
    """Every generated file of each problem type, with and without demo (test_portable.py checks more rules
    on fewer variants)."""
    _, _, project = variant
    for path in sorted(project.rglob("*")):
        if path.is_file() and ".git" not in path.relative_to(project).parts:
            text = path.read_text(encoding="utf-8")
            for rule in (MLYARD_COMMAND, MLYARD_ONLY):
                assert not rule.search(text), f"{path.relative_to(project)}: {rule.search(text)}"


# --- the batch-inference pipeline ----------------------------------------------------------------------------


def test_batch_inference_runs_by_hand_or_nightly_on_the_default_branch(plain_project: Path) -> None:
    from datetime import UTC, datetime

    pipeline = load_pipeline(plain_project / "mlops/pipelines/batch-inference.yml")
    assert not trigger_decision(pipeline, "refs/heads/main", ["src/p_9_plain/train.py"], "a").run
    (schedule,) = pipeline.schedules
    assert (schedule.cron.text, schedule.display_name) == ("0 2 * * *", "Nightly batch inference")
    assert schedule.always is False
    at = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    nightly = schedule_decision(schedule, "refs/heads/main", after=at)
    assert nightly.run and nightly.next_fires == (datetime(2026, 11, 30, 2, 0, tzinfo=UTC),)
    assert not schedule_decision(schedule, "refs/heads/feature/x", after=at).run
    assert {p.name: p.default for p in pipeline.parameters} == {
        "input": "",
        "output": "/ml_apps/9.plain/predictions/latest.csv",
    }


def test_batch_inference_uses_the_environments_variable_group_and_portable_steps(plain_project: Path) -> None:
    text = (plain_project / "mlops/pipelines/batch-inference.yml").read_text(encoding="utf-8")
    assert "mlyard " not in text and "Mlyard." not in text and "AzureCLI" not in text
    document = yaml.safe_load(text)
    assert document["variables"][0] == {"group": "prod"}
    plan = compile_pipeline(load_pipeline(plain_project / "mlops/pipelines/batch-inference.yml"),
                            {"input": "/data/in.parquet"}).to_dict()  # fmt: skip
    steps = plan["stages"][0]["jobs"][0]["steps"]
    kinds = [step.get("task", step["kind"]) for step in steps]
    assert kinds == ["checkout", "UsePythonVersion@0", "CmdLine@2", "CmdLine@2"]
    assert steps[2]["inputs"]["script"] == "python mlops/tools.py mlops"
    score = steps[3]
    assert score["inputs"]["script"] == (
        'python -m p_9_plain.batch --model "$(model_name)" --input "$BATCH_INPUT" --output "$BATCH_OUTPUT"'
    )
    assert score["env"] == {
        "PYTHONPATH": "src",
        "PYTHONDONTWRITEBYTECODE": "1",
        "BATCH_INPUT": "/data/in.parquet",
        "BATCH_OUTPUT": "/ml_apps/9.plain/predictions/latest.csv",
        "MLFLOW_TRACKING_URI": "$(MLFLOW_TRACKING_URI)",
        "MLFLOW_TRACKING_TOKEN": "$(MLFLOW_TRACKING_TOKEN)",
        "DATABRICKS_HOST": "$(DATABRICKS_HOST)",
        "DATABRICKS_TOKEN": "$(DATABRICKS_TOKEN)",
    }


# --- model CI's gate and batch inference against a real MLflow store -----------------------------------------


class Project:
    """A rendered demo project imported in this process: its modules and its gate's `main(argv)`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.package = package_of(root)

    def module(self, name: str) -> Any:
        return importlib.import_module(f"{self.package}.{name}")

    def gate(self, *args: str) -> int:
        main = runpy.run_path(str(self.root / "mlops/gate.py"), run_name="gate")["main"]
        return int(main(list(args)))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store (SQLite) for the module: creating its schema takes seconds. Each test registers
    a model of its own name, and each demo project logs its gate runs to its own experiment."""
    from mlyard.registry import init_store

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    init_store(uri, folder / "artifacts")
    return uri


@pytest.fixture
def demo(request: pytest.FixtureRequest, render_variant: Callable[[str, bool], Path], store: str,
         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Project]:  # fmt: skip
    """The demo project of the parametrized problem type, importable, with MLflow on the module's store."""
    project = Project(render_variant(request.param, True))
    # The rendered projects are shared with other modules (test_projects checks their exact file list):
    # importing them here must leave no __pycache__ behind.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(project.root / "src"))
    monkeypatch.chdir(tmp_path)
    uri = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    import mlflow.tracking.fluent

    # mlflow.set_experiment (in the gate) sets MLFLOW_EXPERIMENT_ID and a global: undone after the test.
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None)
    with mlflow_globals(uri):
        yield project
    for name in [name for name in sys.modules if name.split(".")[0] == project.package]:
        del sys.modules[name]


def register(project: Project, model: Any, name: str) -> str:
    """Log `model` (fitted on the project's features) and register it as a new version of `name`."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    split = project.module("data").load_split()
    features = project.module("features").build_features(split.x_train)
    experiment = mlflow.set_experiment("training")
    with mlflow.start_run(experiment_id=experiment.experiment_id):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(features, model.predict(features)),
            pip_requirements=PIP_REQUIREMENTS,
            registered_model_name=name,
        )
    return str(info.registered_model_version)


def fitted_baseline(project: Project) -> Any:
    """A model that ignores its input (the most frequent class, or the mean): it misses every gate."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    split = project.module("data").load_split()
    regression = project.module("evaluate").PROBLEM_TYPE == "regression"
    baseline = DummyRegressor() if regression else DummyClassifier(strategy="prior")
    return baseline.fit(project.module("features").build_features(split.x_train), split.y_train)


GATE_FAILURES = {
    "binary": ["accuracy = 0.6316 is below its gate min 0.9", "f1 = 0.7742 is below its gate min 0.9",
               "roc_auc = 0.5000 is below its gate min 0.95"],
    "multiclass": ["accuracy = 0.3889 is below its gate min 0.9", "f1_macro = 0.1867 is below its gate min 0.9"],
    "regression": ["rmse = 73.2225 is above its gate max 60", "mae = 64.0065 is above its gate max 50",
                   "r2 = -0.0120 is below its gate min 0.4"],
}  # fmt: skip


@pytest.mark.parametrize("demo", ["binary", "multiclass", "regression"], indirect=True)
def test_the_gate_passes_a_good_model_and_fails_a_worse_one_per_metric(
    demo: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    problem_type = demo.module("evaluate").PROBLEM_TYPE
    m = f"gated-{problem_type}"
    good = register(demo, demo.module("train").train(demo.module("data").load_split()).model, m)
    bad = register(demo, fitted_baseline(demo), m)

    assert demo.gate("--model", m, "--candidate", good) == 0
    out = capsys.readouterr().out
    assert f"{m} version {good} (no version in Production: gates only)" in out
    assert out.rstrip().endswith("all gates passed")

    MlflowClient().set_registered_model_alias(m, "production", good)
    assert demo.gate("--model", m, "--candidate", bad) == 1
    out = capsys.readouterr().out
    assert f"{m} version {bad} against Production version {good}" in out
    errors = [line.removeprefix("##vso[task.logissue type=error]model gate failed: ")
              for line in out.splitlines() if line.startswith("##vso[task.logissue type=error]")]  # fmt: skip
    thresholds = [error for error in errors if " its gate " in error]
    assert thresholds == GATE_FAILURES[problem_type]
    worse = [error for error in errors if f"Production version {good}'s" in error]
    assert len(worse) == len(thresholds)
    for error in worse:  # the errors of a regression are lower-is-better, every other metric higher
        direction = "lower" if error.startswith(("rmse ", "mae ")) else "higher"
        assert error.endswith(f"({direction} is better)"), error

    # Gates that the baseline meets: it is still refused for being worse than Production.
    loose = tmp_path / "loose.yml"
    metric = {"regression": "r2:\n    min: -1"}.get(problem_type, "accuracy:\n    min: 0.1")
    loose.write_text(f"metrics:\n  {metric}\n", encoding="utf-8")
    assert demo.gate("--model", m, "--candidate", bad, "--gates", str(loose)) == 1
    out = capsys.readouterr().out
    (error,) = [line for line in out.splitlines() if line.startswith("##vso")]
    assert f"is worse than Production version {good}'s" in error
    runs = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name(f"/ml_apps/{demo.root.name}").experiment_id],
        order_by=["attributes.start_time ASC"],
    )
    assert [run.data.tags["model_ci.result"] for run in runs] == ["passed", "failed", "failed"]


@pytest.mark.parametrize("demo", ["regression"], indirect=True)
def test_the_gate_rules_agree_with_mlflows_metric_thresholds(demo: Project) -> None:
    """gates.check is MLflow's `MetricThreshold(threshold=x, min_relative_change=0.0, greater_is_better=...)`
    (validated by `mlflow.validate_evaluation_results`) as a plain function: same verdicts on a grid.
    Not on it: a champion's value of exactly 0, where MLflow requires the challenger to be strictly better
    (it cannot compute a relative change) while gates.check lets an equal value pass, as for any other."""
    import mlflow
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation import EvaluationResult
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    gates = demo.module("gates")
    values = [0.1, 0.4, 0.5, 0.6, 1.0]
    compared = 0
    for metric, bound in (("r2", "minimum"), ("rmse", "maximum")):  # a score, and an error (lower is better)
        for limit in (0.5,):
            gate = gates.Gate(metric, **{bound: limit})
            for value in values:
                for champion in [None, *values]:
                    ours = gates.check(gate, {metric: value}, None if champion is None else {metric: champion})
                    threshold = MetricThreshold(threshold=limit, greater_is_better=not gate.lower_is_better,
                                                min_relative_change=None if champion is None else 0.0)  # fmt: skip
                    baseline = None if champion is None else EvaluationResult({metric: champion}, {})
                    try:
                        mlflow.validate_evaluation_results({metric: threshold}, EvaluationResult({metric: value}, {}),
                                                           baseline)  # fmt: skip
                        theirs = True
                    except ModelValidationFailedException:
                        theirs = False
                    assert (not ours) is theirs, (metric, value, champion, ours)
                    compared += 1
    assert compared == 2 * len(values) * (len(values) + 1)


@pytest.mark.parametrize("demo", ["regression"], indirect=True)
def test_the_gate_cannot_run_for_a_version_that_does_not_exist(
    demo: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.gate("--model", "nothing", "--candidate", "7") == 2
    out = capsys.readouterr().out
    assert out.startswith("##vso[task.logissue type=error]model gate cannot run: nothing version 7: ")


class FolderWorkspace:
    """databricks-sdk's workspace methods that batch inference uses, on a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def download(self, path: str, *, format: Any = None) -> Any:
        return (self.root / path.lstrip("/")).open("rb")

    def upload(self, path: str, content: bytes, *, format: Any = None, overwrite: bool = False) -> None:
        (self.root / path.lstrip("/")).write_bytes(content)

    def mkdirs(self, path: str) -> None:
        (self.root / path.lstrip("/")).mkdir(parents=True, exist_ok=True)


@pytest.mark.parametrize("demo", ["multiclass"], indirect=True)
def test_batch_inference_scores_a_table_with_the_production_model(demo: Project, tmp_path: Path) -> None:
    import mlflow.pyfunc
    import pandas as pd
    from mlflow import MlflowClient

    model = demo.module("train").train(demo.module("data").load_split()).model
    version = register(demo, model, "batch-scored")
    MlflowClient().set_registered_model_alias("batch-scored", "production", version)
    batch = demo.module("batch")
    table = demo.module("data").load_data().sample(25, random_state=1).drop(columns=["target"])
    workspace = FolderWorkspace(tmp_path / "ws")
    workspace.mkdirs("/data")
    workspace.upload("/data/input.parquet", batch.table_bytes(table, "/data/input.parquet"))

    production = mlflow.pyfunc.load_model("models:/batch-scored@production")
    result = batch.run(workspace, production, input_path="/data/input.parquet",
                       output_path="/ml_apps/x/predictions/latest.csv", model_version=version)  # fmt: skip
    assert (result.rows, result.output) == (25, "/ml_apps/x/predictions/latest.csv")
    scored = pd.read_csv(tmp_path / "ws/ml_apps/x/predictions/latest.csv")
    assert list(scored.columns) == [*table.columns, "prediction", "model_version"]
    assert scored["prediction"].tolist() == model.predict(table).tolist()
    assert set(scored["model_version"]) == {int(version)}


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.parametrize("demo", ["regression"], indirect=True)
def test_batch_inference_reads_and_writes_the_workspace_with_databricks_sdk(
    demo: Project, store: str, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`python -m <package>.batch` as the pipeline step runs it: MLflow from MLFLOW_TRACKING_URI, the
    workspace of mlyard's `/databricks/dev` through databricks-sdk, a Parquet table in, CSV out."""
    import pandas as pd
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.workspace import ImportFormat
    from mlflow import MlflowClient

    model = demo.module("train").train(demo.module("data").load_split()).model
    version = register(demo, model, "batch-e2e")
    MlflowClient().set_registered_model_alias("batch-e2e", "production", version)
    table = demo.module("data").load_data().head(30).drop(columns=["target"])
    ws = WorkspaceClient(host=f"{server.url}/databricks/dev", token=server.token, auth_type="pat")
    ws.workspace.mkdirs("/ml_apps/batch-e2e/data")
    ws.workspace.upload("/ml_apps/batch-e2e/data/input.parquet", table.to_parquet(index=False),
                        format=ImportFormat.AUTO, overwrite=True)  # fmt: skip

    args = ["--model", "batch-e2e", "--input", "/ml_apps/batch-e2e/data/input.parquet"]
    output = ["--output", "/ml_apps/batch-e2e/predictions/latest.csv"]
    env = {"MLFLOW_TRACKING_URI": store, "DATABRICKS_HOST": f"{server.url}/databricks/dev",
           "DATABRICKS_TOKEN": server.token}  # fmt: skip
    proc = run_python(demo.root, "-m", f"{demo.package}.batch", *args, *output, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == (
        f"scored 30 rows with models:/batch-e2e@production (version {version}) -> "
        "/ml_apps/batch-e2e/predictions/latest.csv"
    )
    scored = pd.read_csv(ws.workspace.download("/ml_apps/batch-e2e/predictions/latest.csv"))
    assert scored["prediction"].to_numpy() == pytest.approx(model.predict(table))
    assert set(scored["model_version"]) == {int(version)}

    # What it says when it cannot (in this process: each Python start-up with MLflow costs seconds).
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    batch = demo.module("batch")
    capsys.readouterr()
    assert batch.main(["--model", "nothing", *output]) == 1
    assert capsys.readouterr().err.startswith("batch inference failed: cannot load models:/nothing@production: ")
    assert batch.main([*args[:2], "--input", "/ml_apps/none.csv", *output]) == 1
    assert capsys.readouterr().err.startswith(
        "batch inference failed: /ml_apps/none.csv: cannot read the input table from the workspace: "
    )
    monkeypatch.delenv("DATABRICKS_HOST")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    assert batch.main([*args[:2], *output]) == 1
    assert capsys.readouterr().err.startswith(
        "batch inference failed: cannot reach the workspace (set DATABRICKS_HOST and DATABRICKS_TOKEN): "
    )


@pytest.mark.parametrize("demo", ["binary"], indirect=True)
def test_mlflow_checks_the_model_requirements_without_scanning_every_installed_package(
    demo: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Logging or loading a model, MLflow checks its requirements against the installed packages after mapping
    every installed distribution's modules (0.3-0.9 s of CPU in each training and model CI process). Inside the
    template's `train.known_requirements()` (around log_model and load_model) it is given the modules of
    MODEL_REQUIREMENTS instead: the same verdicts without the scan, and MLflow's own map unset afterwards."""
    from mlflow.utils import requirements_utils

    scans: list[int] = []

    def packages_distributions() -> dict[str, list[str]]:
        scans.append(1)
        return {}

    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    monkeypatch.setattr(requirements_utils.importlib_metadata, "packages_distributions", packages_distributions)
    train = demo.module("train")
    pinned = train.model_requirements()
    assert len(pinned) == len(train.MODEL_REQUIREMENTS) == len(train.REQUIREMENT_MODULES)
    with train.known_requirements():
        assert [requirements_utils._check_requirement_satisfied(r) for r in pinned] == [None] * len(pinned)
        mismatch = requirements_utils._check_requirement_satisfied("scikit-learn==0.0.1")  # still found
        assert mismatch is not None and mismatch.installed_version == version("scikit-learn")
    assert scans == [] and requirements_utils._MODULES_TO_PACKAGES is None
    requirements_utils._check_requirement_satisfied("numpy==0.0.1")  # outside the block: MLflow's own map, as before
    assert scans == [1]
