"""Broken pipelines (tests/data/pipelines/broken/*.yml): every problem, at the right line and column.

Each `NAME.yml` has a `NAME.expected` sidecar with one `line:col: key.path: message` per diagnostic, in
order. Loading and compiling (as `mlyard pipelines validate` does) must report exactly those.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlyard.pipelines import PipelineError, compile_pipeline, load_pipeline
from tests.pipelines.conftest import DATA

BROKEN = sorted((DATA / "broken").glob("*.yml"))


def test_the_corpus_is_not_empty() -> None:
    assert len(BROKEN) >= 15


@pytest.mark.parametrize("file", BROKEN, ids=lambda path: path.stem)
def test_broken_file_reports_every_problem_at_its_line(file: Path) -> None:
    expected = file.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
    with pytest.raises(PipelineError) as caught:
        compile_pipeline(load_pipeline(file))
    diagnostics = caught.value.diagnostics
    assert {d.file for d in diagnostics} == {str(file)}
    assert [str(d).removeprefix(f"{file}:") for d in diagnostics] == expected
    assert caught.value.errors == [str(d) for d in diagnostics]
