"""docs/pipelines.md's support table matches the code (as datasette's tests check that its docs list
every plugin hook): the keys the validator accepts (pipelines/schema.py), the keys it reports as "not
supported", and the tasks that validate (pipelines/tasks.py) and run (the agent's task handlers).

When this fails after a change to a registry, update the table: the message says which rows differ.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from mlyard.agent.steps import TASK_HANDLERS
from mlyard.pipelines import schema
from mlyard.pipelines.legacy import LEGACY_KEYS
from mlyard.pipelines.tasks import RUNNABLE_TASKS

DOC = Path(__file__).parents[2] / "docs" / "pipelines.md"
STATUSES = ("supported", "validated only", "not supported")
ACCEPTED = ("supported", "validated only")
_ROW = re.compile(r"^\|\s*([^|]+?)\s*\|\s*`([^`]+)`\s*\|\s*([^|]+?)\s*\|")


def support_table(text: str) -> dict[str, dict[str, str]]:
    """kind -> {name: status}, from the first table after the '## Support table' heading."""
    section = text.split("\n## Support table\n", 1)
    assert len(section) == 2, "docs/pipelines.md has no '## Support table' section"
    table: dict[str, dict[str, str]] = defaultdict(dict)
    started = False
    for line in section[1].splitlines():
        if not line.startswith("|"):
            if started:
                break
            continue
        started = True
        match = _ROW.match(line)
        if match is None:
            continue  # the header and its separator
        kind, name, status = match.groups()
        assert status in STATUSES, f"row {kind} `{name}`: status '{status}' is not one of {STATUSES}"
        assert name not in table[kind], f"row {kind} `{name}` appears twice"
        table[kind][name] = status
    assert table, "the support table is empty"
    return dict(table)


@pytest.fixture(scope="module")
def table() -> dict[str, dict[str, str]]:
    return support_table(DOC.read_text(encoding="utf-8"))


def names(table: dict[str, dict[str, str]], kind: str, statuses: tuple[str, ...]) -> set[str]:
    return {name for name, status in table.get(kind, {}).items() if status in statuses}


def differences(documented: set[str], code: set[str], where: str) -> str:
    missing, extra = sorted(code - documented), sorted(documented - code)
    return f"{where}: not in the doc: {missing}; in the doc but not in the code: {extra}"


REGISTRIES = {
    "pipeline": set(schema.PIPELINE),
    "stage": set(schema.STAGE_KINDS["stage"]),
    "job": set(schema.JOB_KINDS["job"]),
    "deployment": set(schema.JOB_KINDS["deployment"]),
    "step": set(schema.STEP_KINDS),
    "legacy": set(LEGACY_KEYS),  # the pre-2019 syntax, read as the current one (pipelines/legacy.py)
}


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_accepted_keys_are_the_validators(table: dict[str, dict[str, str]], kind: str) -> None:
    documented = names(table, kind, ACCEPTED)
    assert documented == REGISTRIES[kind], differences(documented, REGISTRIES[kind], f"{kind} keys")


def test_not_supported_keys_are_the_validators(table: dict[str, dict[str, str]]) -> None:
    documented = {name for kind in table for name in names(table, kind, ("not supported",))}
    code = set(schema.UNSUPPORTED)
    assert documented == code, differences(documented, code, "UNSUPPORTED in pipelines/schema.py")


def test_a_not_supported_key_is_not_accepted_too(table: dict[str, dict[str, str]]) -> None:
    for kind, accepted in REGISTRIES.items():
        both = sorted(accepted & names(table, kind, ("not supported",)))
        assert not both, f"{kind}: documented as not supported but accepted by the validator: {both}"


def test_tasks_that_run_are_supported_and_the_others_validated_only(table: dict[str, dict[str, str]]) -> None:
    runnable = set(RUNNABLE_TASKS)
    assert {name.lower() for name in runnable} == set(TASK_HANDLERS)  # one vocabulary: validate = run
    documented = names(table, "task", ("supported",))
    assert documented == runnable, differences(documented, runnable, "tasks the agent runs")
    assert names(table, "task", ("validated only",)) == {"*"}, "every other task of the schema: one `*` row"
    assert not names(table, "task", ("not supported",)), "a task is either validated or unknown, not 'not supported'"


def test_the_parser_reads_rows_and_rejects_unknown_statuses() -> None:
    rows = "| Kind | Name | Status |\n|--|--|--|\n| step | `bash` | supported | note |\n"
    text = f"x\n## Support table\n\n{rows}\nafter\n"
    assert support_table(text) == {"step": {"bash": "supported"}}
    with pytest.raises(AssertionError, match="status 'maybe'"):
        support_table(text.replace("| supported |", "| maybe |"))
