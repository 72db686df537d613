"""CI trigger semantics (mlyard.pipelines.triggers), table-driven from tests/data/pipelines/triggers/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlyard.pipelines.triggers import (
    SKIP_MARKERS,
    Decision,
    Filter,
    Trigger,
    TriggerSyntaxError,
    parse_trigger,
    trigger_decision,
)
from tests import yamldata

DATA = Path(__file__).parents[1] / "data" / "pipelines" / "triggers"
SOURCES = {
    "Build Azure Repos Git or TFS Git repositories",
    "trigger definition",
    "Specify events that trigger pipelines",
}


def _cases(*files: Path) -> list[Any]:
    params = []
    for file in files:
        for case in yamldata.read(file)["cases"]:
            params.append(pytest.param(case, id=f"{file.stem}:{case['name']}"))
    return params


DECISIONS = _cases(*sorted((DATA / "decisions").glob("*.yaml")))
MODELS = _cases(DATA / "parse_models.yaml")
ERRORS = _cases(DATA / "parse_errors.yaml")


def _parse_snippet(snippet: str) -> Trigger:
    document = yaml.safe_load(snippet) or {}
    return parse_trigger(document.get("trigger"), present="trigger" in document)


def test_case_files_are_well_formed() -> None:
    names = [param.id for param in DECISIONS + MODELS + ERRORS]
    assert len(names) == len(set(names))
    assert len(DECISIONS) >= 40
    for param in DECISIONS + MODELS + ERRORS:
        assert param.values[0]["source"] in SOURCES, param.id


@pytest.mark.parametrize("case", DECISIONS)
def test_decision(case: dict[str, Any]) -> None:
    trigger = _parse_snippet(case["yaml"])
    decision = trigger_decision(trigger, case["ref"], case.get("changed_paths"), case.get("message", ""))
    assert decision.run is case["run"], decision.reason
    assert case["reason"] in decision.reason


def _filter(data: dict[str, list[str]]) -> Filter:
    return Filter(include=tuple(data.get("include", ())), exclude=tuple(data.get("exclude", ())))


@pytest.mark.parametrize("case", MODELS)
def test_parse_model(case: dict[str, Any]) -> None:
    expect = case["expect"]
    assert _parse_snippet(case["yaml"]) == Trigger(
        enabled=expect["enabled"],
        branches=_filter(expect["branches"]),
        paths=_filter(expect["paths"]),
        tags=_filter(expect["tags"]),
        batch=expect["batch"],
        explicit=expect["explicit"],
    )


@pytest.mark.parametrize("case", ERRORS)
def test_parse_error(case: dict[str, Any]) -> None:
    with pytest.raises(TriggerSyntaxError) as raised:
        _parse_snippet(case["yaml"])
    found = [{"key_path": list(p.key_path), "message": p.message} for p in raised.value.problems]
    assert found == case["problems"]
    assert raised.value.key_path == tuple(case["problems"][0]["key_path"])
    assert raised.value.message == case["problems"][0]["message"]


def test_syntax_error_is_not_a_user_error_and_prints_its_path() -> None:
    from mlyard.errors import MlyardError

    error = TriggerSyntaxError(("branches", "include", 2), "expected a string, got a mapping")
    assert not isinstance(error, MlyardError)
    assert str(error) == "trigger.branches.include.2: expected a string, got a mapping"


def test_skip_markers_are_the_documented_list() -> None:
    assert SKIP_MARKERS == (
        "[skip ci]",
        "[ci skip]",
        "skip-checks: true",
        "skip-checks:true",
        "[skip azurepipelines]",
        "[azurepipelines skip]",
        "[skip azpipelines]",
        "[azpipelines skip]",
        "[skip azp]",
        "[azp skip]",
        "***NO_CI***",
    )


@pytest.mark.parametrize("marker", SKIP_MARKERS)
def test_every_marker_skips_an_explicit_trigger(marker: str) -> None:
    trigger = parse_trigger({"branches": {"include": ["main"]}, "paths": {"include": ["src"]}}, present=True)
    decision = trigger_decision(trigger, "refs/heads/main", ["src/a.py"], f"Change\n\n{marker}\n")
    assert decision == Decision(False, f"commit message contains '{marker}': CI skipped for this push")


def test_changed_paths_may_be_any_sequence_or_a_single_string() -> None:
    trigger = parse_trigger({"paths": {"include": ["src"]}}, present=True)
    assert trigger_decision(trigger, "main", ("docs/a.md", "/src/a.py")).run
    assert trigger_decision(trigger, "main", "src/a.py").run
    assert not trigger_decision(trigger, "main", "docs/src.md").run


def test_other_refs_need_a_full_ref_pattern() -> None:
    trigger = parse_trigger(["main", "refs/pull/*/merge"], present=True)
    assert trigger_decision(trigger, "refs/pull/7/merge", None) == Decision(
        True, "ref 'refs/pull/7/merge' matches include 'refs/pull/*/merge'"
    )
    assert not trigger_decision(parse_trigger(None, present=False), "refs/notes/commits", None).run
