"""Secrets are masked wherever a step can write text the server stores, not only in logs: the build
number, build tags, output variables, test results (names, messages, title), the job's message, and
artifact names (refused). The agent masks them; the server masks them again (tests/ci/test_secret_texts.py)."""

from __future__ import annotations

from pathlib import Path

from mlyard.agent.masking import Masker, mask_all, mask_outcome
from mlyard.protocol import JobOutcome
from tests.agent.conftest import Runner, job, script, step

SECRET = "s3cr3t-Value-8841"

LOGGING_COMMANDS = """echo "##vso[build.updatebuildnumber]1.0-$DB"
echo "##vso[build.addbuildtag]tag-$DB"
echo "##vso[build.addbuildtag]plain-tag"
echo "##vso[task.setvariable variable=leak;isOutput=true]v=$DB"
echo "##vso[task.setvariable variable=fine;isOutput=true]visible"
echo "##vso[task.setvariable variable=hidden;isOutput=true;isSecret=true]$DB"
"""

JUNIT = f"""<testsuite name="suite"><testcase classname="tests.{SECRET}" name="test_{SECRET}">
<failure message="expected {SECRET}">trace</failure></testcase></testsuite>
"""


def test_build_number_tags_and_outputs_are_masked_with_a_warning(run: Runner) -> None:
    spec = job(script("set", LOGGING_COMMANDS, env={"DB": "$(db.password)"}), secrets={"db.password": SECRET})
    outcome, rec = run(spec)
    assert outcome.result == "succeeded"  # warnings do not change the result (as in Azure)
    assert outcome.build_number == "1.0-***"
    assert outcome.tags == ["tag-***", "plain-tag"]
    assert outcome.outputs == {"set.leak": "v=***", "set.fine": "visible"}
    assert outcome.secret_outputs == {"set.hidden": SECRET}  # stored encrypted by the server
    warnings = [message for kind, message in rec.issues("set") if kind == "warning"]
    assert warnings == [
        "the build number contains a secret value: it is stored masked (***); "
        "pass secrets to later steps and jobs as secret variables",
        "the build tag contains a secret value: it is stored masked (***); "
        "pass secrets to later steps and jobs as secret variables",
        "output variable 'set.leak' contains a secret value: it is stored masked (***); "
        "pass secrets to later steps and jobs as secret variables",
    ]
    assert SECRET not in repr(outcome.to_dict() | {"secret_outputs": {}}) and SECRET not in rec.all_text()


def test_a_secret_registered_later_is_masked_in_what_was_set_before(run: Runner) -> None:
    text = 'echo "##vso[build.addbuildtag]late-$((6 * 7))-tag"\necho "##vso[task.setsecret]late-42-tag"'
    outcome, _ = run(job(script("s", text)))
    assert outcome.tags == ["***"]


def test_test_results_are_masked_before_they_are_published(run: Runner, tmp_path: Path) -> None:
    write = script("write", f"cat > TEST-secret.xml <<'XML'\n{JUNIT}XML\n")
    publish = step("publish", "PublishTestResults@2", inputs={"testResultsFiles": "TEST-*.xml",
                                                                "testRunTitle": "run $(db.password)"})  # fmt: skip
    _, rec = run(job(write, publish, secrets={"db.password": SECRET}))
    assert rec.result("publish") == "succeeded"
    (summary,) = rec.tests
    assert summary["title"] == "run ***"
    assert summary["failures"] == [{"name": "test_***", "classname": "tests.***", "message": "expected ***"}]
    assert SECRET not in repr(summary)


def test_an_artifact_name_holding_a_secret_is_refused(run: Runner) -> None:
    publish = step("pub", "PublishPipelineArtifact@1", inputs={"targetPath": ".", "artifact": "model-$(db.password)"})
    outcome, rec = run(job(script("mk", "echo x > f"), publish, secrets={"db.password": SECRET}))
    assert rec.result("pub") == "failed"
    assert rec.issues("pub") == [
        ("error", "the artifact name contains a secret value; name the artifact without secrets")
    ]
    assert rec.uploads == [] and SECRET not in outcome.message


def test_mask_all_and_mask_outcome() -> None:
    masker = Masker([SECRET])
    assert mask_all({SECRET: [SECRET, 1, (f"a{SECRET}",)]}, masker.mask) == {"***": ["***", 1, ("a***",)]}
    outcome = JobOutcome("failed", outputs={"s.v": SECRET}, secret_outputs={"s.w": SECRET}, tags=[SECRET, "***"],
                         build_number=SECRET, message=f"step failed: {SECRET}")  # fmt: skip
    masked = mask_outcome(outcome, masker)
    assert masked == JobOutcome("failed", outputs={"s.v": "***"}, secret_outputs={"s.w": SECRET}, tags=["***"],
                                build_number="***", message="step failed: ***")  # fmt: skip
