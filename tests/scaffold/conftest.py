"""Fixtures of the project template tests: projects rendered once per module from the shipped template."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from mlyard.scaffold import TEMPLATE_DIR, default_answers, render_project
from tests import yamldata

REPO = Path(__file__).parents[2]
SCHEMA = REPO / "../shared/azure-pipelines/service-schema.json"
CASES = yamldata.read(Path(__file__).parent / "data/answers.yml")


def run_python(project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> Any:
    """Run this interpreter in `project` with PYTHONPATH=src, as the pipelines and jobs do."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MODEL_URI", "PYTEST_"))}
    full_env.update({"PYTHONPATH": "src", "PYTHONDONTWRITEBYTECODE": "1", **(env or {})})
    return subprocess.run(
        [sys.executable, *args],
        cwd=project,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@cache
def schema_validator() -> Any:
    """Microsoft's schema is 1.6 MB: load it and build its validator once."""
    import jsonschema

    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo variant with the default answers."""
    return render_project(
        TEMPLATE_DIR, tmp_path_factory.mktemp("render") / "my-model", default_answers("my-model", demo=True)
    )


@pytest.fixture(scope="session")
def plain_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The variant without demo, for another environment and default branch."""
    answers = default_answers("9.plain", environment="prod", default_branch="main")
    return render_project(TEMPLATE_DIR, tmp_path_factory.mktemp("render") / "9.plain", answers)


@pytest.fixture(scope="session")
def render_variant(
    tmp_path_factory: pytest.TempPathFactory, demo_project: Path, plain_project: Path
) -> Callable[[str, bool], Path]:
    """The project of a problem type with or without demo, rendered once; binary is `demo_project` and
    `plain_project`. The others are named `<problem type>-demo` / `<problem type>-plain` (package
    `<problem type>_demo`...), so their modules can be imported side by side."""
    made = {("binary", True): demo_project, ("binary", False): plain_project}

    def render(problem_type: str, demo: bool) -> Path:
        if (problem_type, demo) not in made:
            name = f"{problem_type}-{'demo' if demo else 'plain'}"
            answers = default_answers(name, demo=demo, problem_type=problem_type)
            made[(problem_type, demo)] = render_project(TEMPLATE_DIR, tmp_path_factory.mktemp("render") / name, answers)
        return made[(problem_type, demo)]

    return render
