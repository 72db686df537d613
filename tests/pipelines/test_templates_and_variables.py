"""Table-driven template, variable and parameter cases (tests/data/pipelines/cases/*.yml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlyard.pipelines import PipelineError, compile_pipeline, load_pipeline
from tests.pipelines.conftest import load_cases, lookup, summary, write_tree

CASES = load_cases("templates.yml", "variables.yml")


def test_there_are_enough_cases_and_each_cites_its_page() -> None:
    assert len(CASES) >= 25
    assert all(case.get("source") for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_case(case: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tree(tmp_path, case["files"])
    monkeypatch.chdir(tmp_path)
    arguments = (case.get("parameters"), case.get("variables"), case.get("context"))
    if "error" in case:
        with pytest.raises(PipelineError) as caught:
            compile_pipeline(load_pipeline(Path("main.yml")), *arguments, repo_root=tmp_path)
        assert [str(d) for d in caught.value.diagnostics] == case["error"]
        return
    plan = compile_pipeline(load_pipeline(Path("main.yml")), *arguments, repo_root=tmp_path)
    if "scripts" in case:
        assert summary(plan) == case["scripts"]
    document = plan.to_dict()
    for path, expected in (case.get("expect") or {}).items():
        assert lookup(document, path) == expected, path
