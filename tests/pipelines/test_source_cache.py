"""Parsed YAML documents are cached by content (issue 15): the same text under the same name is parsed once,
and what the cache shares is never changed by loading, expanding or compiling (templates with parameters,
``each``, ``if``, ``extends``); the cache is bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlyard.pipelines import compile_pipeline, load_pipeline, source
from mlyard.pipelines.source import YList, YMap, load_source

STEP_TEMPLATE = """\
parameters:
- name: tasks
  type: object
  default: [a, b]
- name: verbose
  type: boolean
  default: false
steps:
- ${{ each task in parameters.tasks }}:
  - script: make ${{ task }}
    env:
      ${{ if parameters.verbose }}:
        VERBOSE: "1"
"""

BASE = """\
parameters:
- name: stages
  type: stageList
  default: []
variables:
- name: fromBase
  value: base
stages: ${{ parameters.stages }}
"""

PIPELINE = """\
variables:
  configuration: release
extends:
  template: base.yml
  parameters:
    stages:
    - stage: Build
      jobs:
      - job: One
        steps:
        - template: steps.yml
          parameters:
            tasks: [x, y, z]
            verbose: true
        - template: steps.yml
"""


def snapshot(node: Any) -> Any:
    """The tree with every mark, as plain data (so that any change to it shows)."""
    if isinstance(node, YMap):
        return ("map", node.mark, dict(node.key_marks), [(k, snapshot(v)) for k, v in node.items()])
    if isinstance(node, YList):
        return ("list", node.mark, list(node.item_marks), [snapshot(v) for v in node])
    if isinstance(node, dict):
        return ("dict", [(k, snapshot(v)) for k, v in node.items()])
    if isinstance(node, list):
        return ("plain-list", [snapshot(v) for v in node])
    return node


def test_a_document_is_parsed_once_and_never_changed_by_compiling(tmp_path: Path) -> None:
    (tmp_path / "steps.yml").write_text(STEP_TEMPLATE)
    (tmp_path / "base.yml").write_text(BASE)
    path = tmp_path / "azure-pipelines.yml"
    path.write_text(PIPELINE)
    first = compile_pipeline(load_pipeline(path), repo_root=tmp_path)
    documents = {name: load_source((tmp_path / name).read_text(), name) for name in ("steps.yml", "base.yml")}
    documents["pipeline"] = load_source(PIPELINE, str(path))
    before = {name: snapshot(document.tree) for name, document in documents.items()}
    again = compile_pipeline(load_pipeline(path), repo_root=tmp_path)
    assert again == first
    assert [step.inputs.get("script") for job in again.jobs for step in job.steps] == [
        "make x", "make y", "make z", "make a", "make b"
    ]
    for name, document in documents.items():
        assert load_source(document_text(tmp_path, name), document.file) is document  # from the cache
        assert snapshot(document.tree) == before[name], name


def document_text(root: Path, name: str) -> str:
    return PIPELINE if name == "pipeline" else (root / name).read_text()


def test_the_same_text_under_another_name_is_parsed_again() -> None:
    one = load_source("steps:\n- script: x\n", "a.yml")
    other = load_source("steps:\n- script: x\n", "b.yml")
    assert one is not other and other.tree["steps"].item_marks[0].file == "b.yml"  # type: ignore[index]


def test_the_cache_is_bounded() -> None:
    for index in range(source.CACHE_ENTRIES * 2):
        load_source(f"steps:\n- script: echo {index}\n", "bounded.yml")
    assert len(source._cache) <= source.CACHE_ENTRIES
    assert source._cache_text <= source.CACHE_TEXT
