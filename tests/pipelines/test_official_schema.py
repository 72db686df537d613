"""The sample pipelines are valid for Microsoft's official JSON schema (azure-pipelines-vscode)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlyard.pipelines import load_pipeline

REPO = Path(__file__).parents[2]
SCHEMA = REPO / "../shared/azure-pipelines/service-schema.json"
SAMPLES = sorted((REPO / "tests/data/pipelines/valid").glob("*.yml"))


@cache
def validator() -> Any:
    """The schema is 1.6 MB: load it and build its validator once per session."""
    import jsonschema

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.name)
def test_sample_matches_the_official_schema(sample: Path) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"the official schema is not at {SCHEMA.resolve()} (../shared/azure-pipelines next to the repo)")
    # The schema describes YAML scalars as strings (Azure reads every scalar as a string first).
    document = yaml.load(sample.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    errors = sorted(validator().iter_errors(document), key=lambda error: list(error.absolute_path))
    assert [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors] == []


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.name)
def test_sample_loads_and_compiles(sample: Path) -> None:
    from mlyard.pipelines import compile_pipeline

    plan = compile_pipeline(load_pipeline(sample))
    assert plan.stages and all(job.steps for job in plan.jobs)
