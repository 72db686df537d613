"""One project, two homes (issue 12, point 5): the generated project uses only portable steps.

For every set of answers in ANSWERS (add a case to cover another variant): every pipeline file is valid
against Microsoft's schema, references the environment's variable group, uses only `script` steps and
tasks that behave the same on mlyard and on Azure DevOps, maps secrets only through `env:`, and no
generated file holds a `mlyard` command, an `Mlyard.` variable or an `MLYARD_` setting.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from mlyard.pipelines import compile_pipeline, load_pipeline, trigger_decision
from mlyard.scaffold import TEMPLATE_DIR, default_answers, render_project
from tests.scaffold.conftest import SCHEMA, run_python, schema_validator

ANSWERS: list[dict[str, object]] = [
    {"repo_name": "my-model", "demo": True},
    {"repo_name": "9.plain", "environment": "prod", "default_branch": "main"},
]
# Tasks whose behaviour is the same in both homes; everything else must be a script.
PORTABLE_TASKS = {"PublishTestResults@2", "UsePythonVersion@0", "PublishPipelineArtifact@1",
                  "DownloadPipelineArtifact@2", "CmdLine@2", "Bash@3"}  # fmt: skip
PORTABLE_KINDS = {"checkout", "download", "publish", "script", "bash"}
SECRETS = ("DATABRICKS_TOKEN", "MLFLOW_TRACKING_TOKEN", "NOTIFY_WEBHOOK_URL")
MLYARD_COMMAND = re.compile(r"(?<![\w./+-])mlyard[ \t]+(?:[a-z][\w-]*)")
MLYARD_ONLY = re.compile(r"\bMlyard\.[A-Za-z]|\bMLYARD_\w+|\$\(\s*[Mm]lyard")


def case_id(answers: dict[str, object]) -> str:
    return "-".join(f"{k}={v}" for k, v in answers.items())


@pytest.fixture(scope="module", params=ANSWERS, ids=case_id)
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    answers = dict(request.param)
    name = str(answers.pop("repo_name"))
    return render_project(TEMPLATE_DIR, tmp_path_factory.mktemp("portable") / name, default_answers(name, **answers))


def environment_of(project: Path) -> str:
    return str(yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))["environment"])


def pipelines(project: Path) -> list[Path]:
    found = sorted((project / "mlops/pipelines").glob("*.yml"))
    assert found, "no pipeline rendered"
    return found


def compiled_steps(path: Path) -> list[dict]:
    plan = compile_pipeline(load_pipeline(path)).to_dict()
    return [step for stage in plan["stages"] for job in stage["jobs"] for step in job["steps"]]


def test_every_pipeline_matches_the_official_schema(project: Path) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"the official schema is not at {SCHEMA.resolve()}")
    for path in pipelines(project):
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
        errors = schema_validator().iter_errors(document)
        assert [f"{path.name}: {list(e.absolute_path)}: {e.message[:200]}" for e in errors] == []


def test_every_pipeline_uses_the_environment_group_and_portable_steps_only(project: Path) -> None:
    env = environment_of(project)
    for path in pipelines(project):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert {"group": env} in document["variables"], f"{path.name} does not use the variable group {env}"
        for step in compiled_steps(path):
            kind, task = step["kind"], step.get("task")
            assert kind in PORTABLE_KINDS or task in PORTABLE_TASKS, f"{path.name}: {step.get('displayName')}: {task}"
            assert "azureSubscription" not in step.get("inputs", {})
            text = yaml.safe_dump({k: v for k, v in step.items() if k != "env"})
            for name in SECRETS:  # a secret reaches a process only through env:
                assert f"$({name})" not in text, f"{path.name}: {step.get('displayName')} uses {name} outside env:"


def test_no_generated_file_needs_mlyard(project: Path) -> None:
    for path in sorted(project.rglob("*")):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            where = path.relative_to(project)
            assert not MLYARD_COMMAND.search(text), f"{where}: {MLYARD_COMMAND.search(text)}"
            assert not MLYARD_ONLY.search(text), f"{where}: {MLYARD_ONLY.search(text)}"


def test_code_ci_cd_triggers_on_code_tests_tools_and_requirements(project: Path) -> None:
    pipeline = load_pipeline(project / "mlops/pipelines/deploy-code.yml")
    pkg = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))["package_name"]
    for changed, runs in [([f"src/{pkg}/train.py"], True), (["tests/unit/test_data.py"], True),
                          (["mlops/model-gates.yml"], True), (["pyproject.toml"], True),
                          (["README.md"], False), ([".gitignore"], False)]:  # fmt: skip
        assert trigger_decision(pipeline, "refs/heads/feature/x", changed, "a").run is runs, changed


def test_the_tools_step_installs_nothing_where_the_tools_are(project: Path) -> None:
    """The agent's Python (this one: mlyard's `ml` extra) satisfies every group: no network is needed."""
    proc = run_python(project, "mlops/tools.py", "--check", "test", "mlops")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("all ") and "nothing to install" in proc.stdout


def test_the_tools_step_names_what_is_missing(project: Path, tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["pyyaml>=1", "no-such-package-xyz>=1",'
                         ' "pytest<1", "other; python_version < \'3\'"]\n[project.optional-dependencies]\n'
                         'mlops = []\n', encoding="utf-8")  # fmt: skip
    proc = run_python(project, "mlops/tools.py", "--check", "--pyproject", str(pyproject), "mlops")
    assert (proc.returncode, proc.stdout.strip()) == (1, "missing: no-such-package-xyz>=1, pytest<1")
    unknown = run_python(project, "mlops/tools.py", "--check", "--pyproject", str(pyproject), "gpu")
    assert unknown.returncode == 1 and "no optional-dependency group 'gpu' (groups: mlops)" in unknown.stderr


def test_a_read_only_python_gets_an_overlay_environment_that_sees_its_packages(project: Path, tmp_path: Path) -> None:
    """Where site-packages is read-only (mlyard's sandbox: the system is mounted read-only), missing tools
    go into a virtual environment whose Python still imports everything the agent's Python has, pip too."""
    code = ("import sys; sys.path.insert(0, 'mlops'); import tools; from pathlib import Path; "
            f"print(tools._overlay_venv(Path({str(tmp_path / 'venv')!r})))")  # fmt: skip
    made = run_python(project, "-c", code)
    assert made.returncode == 0, made.stderr
    python = Path(made.stdout.strip()) / "python"
    proc = subprocess.run([str(python), "-c", "import sys, yaml, pip; print(sys.prefix)"], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == tmp_path / "venv"  # pip installs there, not into the agent's Python


def test_the_registry_steps_on_a_plain_mlflow_registry(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """mlops/registry.py against MLflow's own registry (no mlyard in front, as on Databricks): aliases are
    moved and the legacy stage mirrored by the module itself; a version only in a legacy stage is found."""
    import importlib.util

    from mlflow import MlflowClient
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    spec = importlib.util.spec_from_file_location("project_registry", project / "mlops/registry.py")
    assert spec is not None and spec.loader is not None
    registry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(registry)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    # As in a step's own process: only the environment decides (another test of this worker may have set
    # MLflow's process-wide URIs, or left MLFLOW_REGISTRY_URI behind).
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)
    client = MlflowClient()
    client.create_registered_model("m")
    for _ in range(3):
        client.create_model_version("m", source=str(tmp_path / "model"))

    def main(*args: str) -> tuple[int, str]:
        code = registry.main(["--model", "m", *args])
        return code, capsys.readouterr().out.strip()

    assert main("find", "--alias", "staging") == (registry.NO_VERSION, "")
    assert main("set-alias", "--version", "1", "--alias", "production")[0] == 0
    assert main("set-alias", "--version", "2", "--alias", "production")[0] == 0
    assert main("find", "--alias", "production") == (0, "2")
    stages = {str(v.version): v.current_stage for v in client.search_model_versions("name='m'")}
    assert stages == {"1": "Archived", "2": "Production", "3": "None"}
    with pytest.warns(FutureWarning, match="deprecated"):
        client.transition_model_version_stage("m", "3", "Staging")  # a team that still uses stages only
    assert main("find", "--alias", "staging") == (0, "3")
    assert main("tag", "--version", "3", "--tag", "test_status=passed", "--tag", "run_url=http://x/?a=b")[0] == 0
    assert client.get_model_version("m", "3").tags == {"test_status": "passed", "run_url": "http://x/?a=b"}
