"""Real-world corpus: top-level pipelines of public repositories validate and expand (issue 11).

tests/data/realworld/manifest.yml lists each pipeline with its expected outcome; the ones mlyard cannot
handle yet are strict xfails whose reason names what they need, so a fix that makes one pass is noticed
(flip its `today:` to `passes`). tests/data/realworld/shapes.yml pins the plan shape of a dozen of them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlyard.pipelines import Job, PipelineError, Plan, compile_pipeline, load_pipeline
from tests import yamldata

REPO = Path(__file__).parents[2]
CORPUS = REPO / "tests/data/realworld"
SCHEMA = REPO / "../shared/azure-pipelines/service-schema.json"
MAX_CORPUS_BYTES = 3 * 1024 * 1024
MAX_MANIFEST_ENTRIES = 500


@dataclass(frozen=True)
class Entry:
    """One top-level pipeline of the corpus (see the header of manifest.yml)."""

    repo: str
    file: str
    schema: str
    expect: str
    today: str
    needs: tuple[str, ...] = ()
    error: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    repositories: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.repo}/{self.file}"

    @property
    def path(self) -> Path:
        return CORPUS / self.repo / self.file

    @property
    def reason(self) -> str:
        return "needs " + "; ".join(self.needs) if self.needs else "fails today"


def read_manifest() -> tuple[Entry, ...]:
    document = yamldata.read(CORPUS / "manifest.yml")
    assert isinstance(document, list) and 0 < len(document) <= MAX_MANIFEST_ENTRIES
    entries = []
    for item in document:
        assert item["schema"] in ("valid", "invalid") and item["expect"] in ("compiles", "error"), item
        assert item["today"] in ("passes", "fails"), item
        assert item["expect"] == "compiles" or item.get("error"), f"{item['file']}: expect error needs `error:`"
        entries.append(
            Entry(
                repo=item["repo"],
                file=item["file"],
                schema=item["schema"],
                expect=item["expect"],
                today=item["today"],
                needs=tuple(item.get("needs") or ()),
                error=item.get("error"),
                parameters=dict(item.get("parameters") or {}),
                repositories=dict(item.get("repositories") or {}),
            )
        )
    return tuple(entries)


ENTRIES = read_manifest()
SHAPES: dict[str, list[dict[str, Any]]] = yamldata.read(CORPUS / "shapes.yml")
BY_KEY = {entry.key: entry for entry in ENTRIES}


def params(entries: tuple[Entry, ...] | list[Entry]) -> list[Any]:
    """Entries as pytest params: the ones that fail today are strict xfails giving what they need."""
    return [
        pytest.param(
            entry,
            id=entry.key,
            marks=[pytest.mark.xfail(strict=True, reason=entry.reason)] if entry.today == "fails" else [],
        )
        for entry in entries
    ]


def compile_entry(entry: Entry) -> Plan:
    options: dict[str, Any] = {}
    if entry.repositories:
        # Other repositories of `template: x@alias` are other corpus folders; the keyword is the one the
        # resources work is expected to add (until then these entries fail with a TypeError: xfail).
        options["repositories"] = {alias: CORPUS / folder for alias, folder in entry.repositories.items()}
    pipeline = load_pipeline(entry.path)
    return compile_pipeline(pipeline, parameters=entry.parameters or None, repo_root=CORPUS / entry.repo, **options)


def test_the_corpus_is_big_and_varied_enough_small_and_sourced() -> None:
    repos = {entry.repo for entry in ENTRIES}
    assert len(ENTRIES) >= 40 and len(repos) >= 8
    assert len(BY_KEY) == len(ENTRIES), "a pipeline is listed twice"
    missing = [entry.key for entry in ENTRIES if not entry.path.is_file()]
    assert missing == []
    sources = (CORPUS / "SOURCES").read_text(encoding="utf-8")
    folders = sorted(path.name for path in CORPUS.iterdir() if path.is_dir())
    assert [folder for folder in folders if f"folder: {folder}\n" not in sources] == []
    assert [entry.key for entry in ENTRIES if f"  - {entry.file}\n" not in sources] == []
    size = sum(path.stat().st_size for path in CORPUS.rglob("*") if path.is_file())
    assert size < MAX_CORPUS_BYTES
    assert [key for key in SHAPES if key not in BY_KEY] == []


@cache
def validator() -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


@pytest.mark.long  # about 0.2 s a file: the schema's step and task alternatives are many
@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: entry.key)
def test_the_official_schema_verdict_is_the_recorded_one(entry: Entry) -> None:
    if not SCHEMA.is_file():
        pytest.skip(f"the official schema is not at {SCHEMA.resolve()} (../shared/azure-pipelines next to the repo)")
    document = yaml.load(entry.path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    valid = next(iter(validator().iter_errors(document)), None) is None
    assert ("valid" if valid else "invalid") == entry.schema


@pytest.mark.parametrize("entry", params([e for e in ENTRIES if e.expect == "compiles"]))
def test_a_valid_real_pipeline_validates_and_expands(entry: Entry) -> None:
    plan = compile_entry(entry)
    assert plan.stages and all(job.steps for stage in plan.stages for job in stage.jobs)


@pytest.mark.parametrize("entry", params([e for e in ENTRIES if e.expect == "error"]))
def test_a_pipeline_that_cannot_expand_gets_a_clear_error(entry: Entry) -> None:
    with pytest.raises(PipelineError) as caught:
        compile_entry(entry)
    text = "\n".join([str(caught.value), *caught.value.errors])
    assert entry.error is not None and entry.error in text
    # says where (file:line:col): the pipeline, or the template of it holding the failing reference
    assert re.search(r"^[^:\n]+\.ya?ml:\d+:\d+: ", text, re.MULTILINE), text


def shape_of(plan: Plan) -> list[dict[str, Any]]:
    def job_shape(job: Job) -> dict[str, Any]:
        return {"job": job.name, "steps": [step.display_name for step in job.steps]}

    return [{"stage": stage.name, "jobs": [job_shape(job) for job in stage.jobs]} for stage in plan.stages]


def without_unpinned_names(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`actual` with the step names that `expected` leaves open (null) set to None, when the lengths match."""
    result = []
    for want, got in zip(expected, actual, strict=False):
        jobs = []
        for want_job, got_job in zip(want["jobs"], got["jobs"], strict=False):
            steps = got_job["steps"]
            if len(steps) == len(want_job["steps"]):
                pairs = zip(want_job["steps"], steps, strict=True)
                steps = [None if pinned is None else name for pinned, name in pairs]
            jobs.append({**got_job, "steps": steps})
        result.append({**got, "jobs": jobs + got["jobs"][len(jobs) :]})
    return result + actual[len(result) :]


@pytest.mark.parametrize("entry", params([BY_KEY[key] for key in SHAPES]))
def test_the_plan_has_the_pinned_shape(entry: Entry) -> None:
    expected = SHAPES[entry.key]
    assert without_unpinned_names(expected, shape_of(compile_entry(entry))) == expected
