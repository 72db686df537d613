"""The project template's model CD pipeline (`mlops/pipelines/deploy-model.yml`), in both variants."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlyard.pipelines import compile_pipeline, load_pipeline
from mlyard.scaffold import TEMPLATE_DIR, default_answers, render_project
from tests.scaffold.conftest import SCHEMA, schema_validator

VARIANTS = {
    "demo": ("my-model", {"demo": True}),
    "plain": ("9.plain", {"environment": "prod", "default_branch": "main"}),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def pipeline_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    name, answers = VARIANTS[request.param]
    project = render_project(TEMPLATE_DIR, tmp_path_factory.mktemp("render") / name, default_answers(name, **answers))
    return project / "mlops/pipelines/deploy-model.yml"


def test_deploy_model_compiles_to_one_deployment_job(pipeline_file: Path) -> None:
    pipeline = load_pipeline(pipeline_file)
    assert {p.name: p.default for p in pipeline.parameters} == {"version": "", "stage": "Production", "cpu": 1,
                                                                "memory": 2}  # fmt: skip
    plan = compile_pipeline(pipeline, {"version": "3", "stage": "Staging", "cpu": "2", "memory": "4"}).to_dict()
    (job,) = plan["stages"][0]["jobs"]
    env = "prod" if "9.plain" in str(pipeline_file) else "dev"
    assert job["deployment"] == "DeployModel" and job["environment"]["name"] == env
    assert {"group": env} in yaml.safe_load(pipeline_file.read_text(encoding="utf-8"))["variables"]
    step = job["steps"][-1]
    assert step["task"] == "CmdLine@2"
    assert {k: step["env"][k] for k in ("MODEL_VERSION", "MODEL_STAGE", "SERVING_CPU", "SERVING_MEMORY")} == {
        "MODEL_VERSION": "3", "MODEL_STAGE": "Staging", "SERVING_CPU": "2", "SERVING_MEMORY": "4",
    }  # fmt: skip
    script = step["inputs"]["script"]
    # Model CD in one Python process (mlops/registry.py deploy: MLflow's deployments API on the group's target,
    # create the first time, update after, then tag the version; tests/scaffold/test_model_cd_step.py).
    assert script.split() == [
        "python", "mlops/registry.py", "--model", '"$(model_name)"', "deploy", "--target", '"$DEPLOY_TARGET_URI"',
        "\\", "--version", '"$MODEL_VERSION"', "--stage", '"$MODEL_STAGE"', "--cpu", '"$SERVING_CPU"', "--memory",
        '"$SERVING_MEMORY"', "\\", "--run-url",
        '"$(System.CollectionUri)$(System.TeamProject)/_build/results?buildId=$(Build.BuildId)"',
    ]  # fmt: skip
    assert "mlyard" not in script


def test_deploy_model_matches_the_official_schema(pipeline_file: Path) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"the official schema is not at {SCHEMA.resolve()}")
    document = yaml.load(pipeline_file.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    errors = sorted(schema_validator().iter_errors(document), key=lambda error: list(error.absolute_path))
    assert [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors] == []
