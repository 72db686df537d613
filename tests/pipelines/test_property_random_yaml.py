"""Property: any YAML document fed to load_pipeline + compile_pipeline returns or raises PipelineError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlyard.pipelines import PipelineError, compile_pipeline, load_pipeline

KEYS = [
    "stages", "stage", "jobs", "job", "deployment", "steps", "script", "bash", "task", "inputs", "template",
    "parameters", "variables", "name", "value", "group", "dependsOn", "condition", "displayName", "pool",
    "environment", "strategy", "runOnce", "deploy", "checkout", "publish", "download", "artifact", "env",
    "extends", "trigger", "pr", "type", "default", "values", "timeoutInMinutes", "workspace", "clean",
    "${{ if true }}", "${{ else }}", "${{ elseif false }}", "${{ each x in parameters.list }}", "${{ x }}",
    "${{ parameters.a }}", "${{ insert }}",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=100),
    st.sampled_from(
        [
            "Bash@3",
            "CmdLine@2",
            "none",
            "self",
            "current",
            "x.yml",
            "../up.yml",
            "/abs.yml",
            "succeeded()",
            "${{ parameters.list }}",
            "${{ x }}",
            "${{ eq(1, }}",
            "$[ variables.a ]",
            "$(a)",
            "stepList",
            "object",
            "boolean",
            "A",
            "B",
            "[]",
            "inline",
            "${{ variables.a }}",
        ]
    ),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS), children, max_size=4)
    ),
    max_leaves=25,
)
DOCUMENTS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5)
TEMPLATES = {
    "steps.yml": "parameters:\n- name: who\n  default: w\nsteps:\n- script: echo ${{ parameters.who }}\n",
    "loop.yml": "steps:\n- template: loop.yml\n",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small repository with the templates the random pipelines may reference."""
    folder = tmp_path_factory.mktemp("repo")
    for name, content in TEMPLATES.items():
        (folder / name).write_text(content, encoding="utf-8")
    return folder


class _NoAliases(yaml.SafeDumper):
    """Hypothesis shares objects between branches: write them out instead of as YAML aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(document: Any) -> str:
    return yaml.dump(document, Dumper=_NoAliases, sort_keys=False)


def _run(text: str, root: Path) -> None:
    try:
        pipeline = load_pipeline(text, name="random.yml")
        compile_pipeline(pipeline, repo_root=root)
    except PipelineError as exc:
        assert exc.diagnostics, "a PipelineError carries at least one diagnostic"
        assert all(d.line >= 1 and d.column >= 1 for d in exc.diagnostics)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=DOCUMENTS)
def test_random_pipeline_documents(document: dict[str, Any], root: Path) -> None:
    _run(dump(document), root)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab: -[]{}\n\t'\"&*!|>#%@`,?$")), max_size=60))
def test_random_text(text: str, root: Path) -> None:
    _run(text, root)


# Pipelines that pass the structural checks more often, to exercise expansion and the graph checks.
NAMES = st.sampled_from(["A", "B", "C", "Build", "${{ parameters.name }}", "${{ x }}", "9bad"])
EXPRESSIONS = st.sampled_from(
    ["true", "false", "eq(parameters.n, 1)", "parameters.list", "x", "variables.v", "eq(1,", "length(parameters.list)"]
)
STEP = st.one_of(
    st.fixed_dictionaries({"script": SCALARS}, optional={"name": NAMES, "condition": SCALARS, "env": VALUES}),
    st.fixed_dictionaries({"task": st.sampled_from(["Bash@3", "CmdLine@2", "Nope@1"]), "inputs": VALUES}),
    st.fixed_dictionaries({"template": st.sampled_from(["steps.yml", "missing.yml", "loop.yml"])},
                          optional={"parameters": VALUES}),
    st.builds(lambda e, n: {f"${{{{ if {e} }}}}": [{"script": "x"}] * n}, EXPRESSIONS, st.integers(0, 2)),
    st.builds(lambda e: {f"${{{{ each x in {e} }}}}": [{"script": "${{ x }}"}]}, EXPRESSIONS),
)  # fmt: skip
JOB = st.fixed_dictionaries(
    {"job": NAMES, "steps": st.lists(STEP, max_size=4)},
    optional={"dependsOn": st.one_of(NAMES, st.lists(NAMES, max_size=2)), "condition": SCALARS},
)
STAGE = st.fixed_dictionaries(
    {"stage": NAMES, "jobs": st.lists(JOB, max_size=3)},
    optional={"dependsOn": st.one_of(NAMES, st.lists(NAMES, max_size=2)), "variables": VALUES},
)
PIPELINES = st.fixed_dictionaries(
    {"stages": st.lists(STAGE, min_size=1, max_size=3)},
    optional={"parameters": st.just([{"name": "n", "type": "number", "default": 1},
                                     {"name": "list", "type": "object", "default": ["a", "b"]},
                                     {"name": "name", "default": "N"}])},
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=PIPELINES)
def test_random_structured_pipelines(document: dict[str, Any], root: Path) -> None:
    text = dump(document)
    try:
        pipeline = load_pipeline(text, name=str(root / "main.yml"))
        compile_pipeline(pipeline, repo_root=root)
    except PipelineError as exc:
        assert exc.diagnostics
