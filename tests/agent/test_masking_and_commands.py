"""Masking and logging commands: table-driven parsing and masking cases (tests/data/agent/*.yaml) and
their effect on a running job. Sources: "Logging commands", "Set variables in scripts",
"Set secret variables", "Define variables"."""

from __future__ import annotations

from typing import Any

import pytest

from mlyard.agent.commands import parse_command
from mlyard.agent.masking import Masker
from mlyard.protocol import FAILED, SUCCEEDED, SUCCEEDED_WITH_ISSUES
from tests import yamldata
from tests.agent.conftest import DATA, Runner, job, script

COMMANDS = yamldata.read(DATA / "logging_commands.yaml")
MASKING = yamldata.read(DATA / "masking.yaml")


@pytest.mark.parametrize("case", COMMANDS, ids=[case["line"][:40] for case in COMMANDS])
def test_parse_command(case: dict[str, Any]) -> None:
    command = parse_command(case["line"])
    if case["command"] is None:
        assert command is None
    else:
        assert command is not None
        got = {"area": command.area, "action": command.action, "properties": command.properties, "data": command.data}
        assert got == case["command"]


@pytest.mark.parametrize("case", MASKING, ids=[case["line"][:40] for case in MASKING])
def test_masking(case: dict[str, Any]) -> None:
    assert Masker(case["secrets"]).mask(case["line"]) == case["masked"]


def test_echoed_secret_is_masked_plain_base64_and_url_encoded(run: Runner) -> None:
    text = "\n".join([
        'echo "plain: $S"',
        'printf %s "$S" | base64',
        'echo "$S" | base64',
        'python -c "import os, urllib.parse; print(urllib.parse.quote(os.environ[\'S\'], safe=\'\'))"',
    ])  # fmt: skip
    _, rec = run(job(script("s", text, env={"S": "$(db.password)"}), secrets={"db.password": "Tr0ub4dor&3 x"}))
    output = rec.logs["s"][-5:-1]
    assert output == ["plain: ***", "***", "***", "***"]
    assert "Tr0ub4dor" not in rec.all_text()


def test_setvariable_reaches_later_steps_as_env_and_macro(run: Runner) -> None:
    spec = job(
        script("set", 'echo "##vso[task.setvariable variable=sauce;]crushed tomatoes"\necho "[$SAUCE]"'),
        script("read", 'echo "[$SAUCE] [$(sauce)]"'),
    )
    _, rec = run(spec)
    assert "[]" in rec.logs["set"]  # not in the environment of the step that set it
    assert "[crushed tomatoes] [crushed tomatoes]" in rec.logs["read"]
    assert "##vso[task.setvariable variable=sauce;]crushed tomatoes" in rec.logs["set"]  # still logged


def test_secret_variable_set_at_run_time_is_masked_and_not_exported(run: Runner) -> None:
    spec = job(
        script("set", 'echo "##vso[task.setvariable variable=secretSauce;issecret=true]garlic-$((40 + 2))"'),
        script("read", 'echo "env=[$SECRETSAUCE] macro=[$(secretSauce)]"\necho garlic-$((40 + 2))'),
    )
    _, rec = run(spec)
    assert "env=[] macro=[***]" in rec.logs["read"]
    assert "garlic-42" not in rec.all_text()


def test_output_variables_are_reported_and_visible_with_the_step_name(run: Runner) -> None:
    spec = job(
        script("SetVars", 'echo "##vso[task.setvariable variable=outputSauce;isOutput=true]canned goods"\n'
                          'echo "##vso[task.setvariable variable=key;isOutput=true;isSecret=true]k-123456"'),
        script("read", 'echo "[$SETVARS_OUTPUTSAUCE] [$(SetVars.outputSauce)] [$OUTPUTSAUCE]"'),
    )  # fmt: skip
    outcome, rec = run(spec)
    assert "[canned goods] [canned goods] []" in rec.logs["read"]
    assert outcome.outputs == {"SetVars.outputSauce": "canned goods"}
    assert outcome.secret_outputs == {"SetVars.key": "k-123456"}


def test_readonly_variables_cannot_be_overwritten(run: Runner) -> None:
    spec = job(
        script("a", 'echo "##vso[task.setvariable variable=Locked]changed"\n'
                    'echo "##vso[task.setvariable variable=mine;isReadOnly=true]first"'),
        script("b", 'echo "##vso[task.setvariable variable=mine]second"'),
        script("c", 'echo "[$LOCKED] [$MINE]"'),
        variables={"Locked": "original"}, readonly=["Locked"],
    )  # fmt: skip
    outcome, rec = run(spec)
    assert rec.issues("a") == [("warning", "variable 'Locked' is read-only and cannot be set; its value is unchanged")]
    assert rec.issues("b") == [("warning", "variable 'mine' is read-only and cannot be set; its value is unchanged")]
    assert "[original] [first]" in rec.logs["c"]
    assert outcome.result == SUCCEEDED


def test_logissue_complete_tags_and_build_number(run: Runner) -> None:
    spec = job(
        script("issues", 'echo "##vso[task.logissue type=warning;sourcepath=src/app.py;linenumber=3]careful"\n'
                         'echo "##vso[task.logissue type=error]bad thing"'),
        script("partial", 'echo "##vso[task.complete result=SucceededWithIssues;]DONE"'),
        script("tags", 'echo "##vso[build.addbuildtag]nightly"\necho "##vso[build.addbuildtag]nightly"\n'
                       'echo "##vso[build.addbuildtag]bad:tag"\necho "##vso[build.updatebuildnumber]1.2.3"'),
        script("number", 'echo "[$BUILD_BUILDNUMBER]"'),
        script("fail", 'echo "##vso[task.complete result=Failed;]nope"'),
    )  # fmt: skip
    outcome, rec = run(spec)
    assert rec.issues("issues") == [("warning", "src/app.py:3: careful"), ("error", "bad thing")]
    assert rec.result("issues") == SUCCEEDED
    assert rec.result("partial") == SUCCEEDED_WITH_ISSUES
    assert outcome.tags == ["nightly"]
    assert rec.issues("tags") == [
        ("warning", "build tag 'bad:tag' contains ':', which tags cannot contain; it was not added")
    ]
    assert outcome.build_number == "1.2.3"
    assert "[1.2.3]" in rec.logs["number"]
    assert rec.result("fail") == FAILED
    assert outcome.result == FAILED


def test_complete_succeeded_does_not_hide_a_failing_exit_code(run: Runner) -> None:
    _, rec = run(job(script("s", 'echo "##vso[task.complete result=Succeeded;]"\nexit 2')))
    assert rec.result("s") == FAILED


def test_prependpath_applies_to_later_steps(run: Runner) -> None:
    spec = job(
        script("tool", "mkdir -p bin && printf '#!/bin/sh\\necho from-tool\\n' > bin/mytool && chmod +x bin/mytool\n"
                       'echo "##vso[task.prependpath]$PWD/bin"'),
        script("use", "mytool"),
    )  # fmt: skip
    _, rec = run(spec)
    assert "from-tool" in rec.logs["use"]


def test_unknown_command_is_a_warning(run: Runner) -> None:
    outcome, rec = run(job(script("s", 'echo "##vso[task.uploadsummary]x.md"')))
    ((kind, message),) = rec.issues("s")
    assert kind == "warning" and message.startswith("logging command 'task.uploadsummary' is not supported")
    assert outcome.result == SUCCEEDED


def test_setsecret_masks_a_derived_value_from_then_on(run: Runner) -> None:
    spec = job(script("s", 'echo "##vso[task.setsecret]derived-value-$((3 * 3))"\necho derived-value-$((3 * 3))'))
    _, rec = run(spec)
    assert rec.logs["s"][-3:-1] == ["##vso[task.setsecret]***", "***"]
