"""Wildcard patterns of trigger filters (mlyard.pipelines.patterns); table in data/pipelines/triggers/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlyard.pipelines.patterns import any_path_regex, path_filter, path_pattern, ref_pattern
from tests import yamldata

TABLE = yamldata.read(Path(__file__).parents[1] / "data/pipelines/triggers/patterns.yaml")


@pytest.mark.parametrize("case", TABLE["refs"], ids=lambda c: f"{c['pattern']}~{c['ref']}")
def test_ref_pattern(case: dict[str, Any]) -> None:
    assert ref_pattern(case["pattern"], tag=case.get("tag", False)).matches(case["ref"]) is case["match"]


@pytest.mark.parametrize("case", TABLE["paths"], ids=lambda c: f"{c['pattern']}~{c['path']}")
def test_path_pattern(case: dict[str, Any]) -> None:
    pattern = path_pattern(case["pattern"])
    assert pattern.matches(case["path"]) is case["match"]
    assert pattern.depth == case["depth"]
    combined = any_path_regex([case["pattern"]])
    assert combined is not None
    assert (combined.match(case["path"]) is not None) is case["match"]


def test_combined_regex_names_the_first_matching_pattern() -> None:
    combined = any_path_regex(["src/app/tests", "src/app", "src"])
    assert combined is not None
    found = combined.match("src/app/main.py")
    assert found is not None and found.lastindex == 2


def test_path_filter_sorts_deepest_first_but_reports_lists_as_written() -> None:
    compiled = path_filter(("src", "src/app/**/x"), ("src/app",))
    assert [p.text for p in compiled.includes] == ["src/app/**/x", "src"]
    assert compiled.evaluate(["lib/a.py"]) == (
        False,
        "no changed path matches the path includes ['src', 'src/app/**/x']",
    )


def test_many_stars_on_a_long_ref_finish() -> None:
    # Atomic groups keep ref matching linear: this would backtrack for ages as a naive '.*' regex.
    pattern = ref_pattern("a*" * 30 + "b")
    assert not pattern.matches("refs/heads/" + "a" * 2000)


def test_many_stars_in_a_path_segment_finish() -> None:
    compiled = path_filter(("*a" * 30 + "b",), ())
    assert compiled.evaluate(["a" * 3000]) == (False, f"no changed path matches the path includes ['{'*a' * 30}b']")
