"""PublishTestResults@2 with testResultsFormat XUnit (xUnit.net v2), NUnit (2 and 3) and VSTest (TRX).

Sources: "PublishTestResults@2 - Publish Test Results v2 task" (testResultsFormat, alias testRunner;
testResultsFiles default **/TEST-*.xml) and the report formats the samples under
tests/data/agent/testresults/ follow (xunit.net "XML format (v2)", NUnit 2 and 3 result files, TRX).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlyard.agent.junit import JUnitError
from mlyard.agent.testformats import summarize_reports
from mlyard.protocol import SUCCEEDED
from tests.agent.conftest import DATA, Runner, job, script, step

SAMPLES = DATA / "testresults"


def _counts(summary: dict[str, object]) -> tuple[object, ...]:
    return tuple(summary[key] for key in ("total", "passed", "failed", "skipped"))


@pytest.mark.parametrize(
    ("fmt", "name", "counts", "failures", "seconds"),
    [
        ("XUnit", "xunit.xml", (4, 2, 1, 1), [("Calc.Tests.MathTests", "Divides",
                                              "System.DivideByZeroException : Attempted to divide by zero.")], 0.23),
        ("NUnit", "nunit2.xml", (4, 1, 2, 1), [("Calc.MathTests", "Divides", "Expected: 2"),
                                               ("Calc.MathTests", "Crashes", "System.NullReferenceException : Object "
                                                "reference not set to an instance of an object")], 0.3),
        ("nunit", "nunit3.xml", (4, 2, 1, 1), [("Calc.MathTests", "Divides",
                                               "System.DivideByZeroException : Attempted to divide by zero.")], 0.315),
        ("VSTest", "results.trx", (3, 1, 1, 1), [("Calc.Tests.MathTests", "Divides",
                                                 "Assert.AreEqual failed. Expected:<2>. Actual:<0>.")], 1.265),
    ],
)  # fmt: skip
def test_formats(fmt: str, name: str, counts: tuple[int, ...], failures: list[tuple[str, str, str]],
                 seconds: float) -> None:  # fmt: skip
    summary = summarize_reports([SAMPLES / name], "t", fmt).to_dict()
    assert _counts(summary) == counts
    assert [(f["classname"], f["name"], f["message"]) for f in summary["failures"]] == failures
    assert summary["duration_seconds"] == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("fmt", "name", "message"),
    [
        ("NUnit", "xunit.xml", "not an NUnit XML file (root element <assemblies>, expected <test-run> for NUnit 3 "
                               "or <test-results> for NUnit 2)"),
        ("XUnit", "nunit3.xml", "not an xUnit v2 XML file (root element <test-run>, expected <assemblies>)"),
        ("VSTest", "nunit2.xml", "not a VSTest TRX file (root element <test-results>, expected <TestRun> in the "
                                 "TeamTest 2010 namespace)"),
    ],
)  # fmt: skip
def test_wrong_format_is_named(fmt: str, name: str, message: str) -> None:
    with pytest.raises(JUnitError) as caught:
        summarize_reports([SAMPLES / name], "t", fmt)
    assert str(caught.value) == f"{SAMPLES / name}: {message}"


def test_publish_each_format(run: Runner) -> None:
    files = "\n".join(f"cat > results/{path.name} <<'REPORT'\n{path.read_text()}\nREPORT" for path in
                      sorted(SAMPLES.iterdir()))  # fmt: skip
    spec = job(
        script("write", "mkdir -p results\n" + files),
        step("xunit", "PublishTestResults@2", inputs={"testRunner": "XUnit", "testResultsFiles": "**/xunit.xml"}),
        step("nunit", "PublishTestResults@2", inputs={"testResultsFormat": "NUnit", "searchFolder": "results",
                                                      "testResultsFiles": "nunit*.xml"}),
        step("trx", "PublishTestResults@2", inputs={"testResultsFormat": "VSTest",
                                                    "testResultsFiles": "$(System.DefaultWorkingDirectory)/**/*.trx"}),
    )  # fmt: skip
    _, rec = run(spec)
    assert [rec.result(name) for name in ("xunit", "nunit", "trx")] == [SUCCEEDED] * 3
    assert [(t["title"], _counts(t)) for t in rec.tests] == [
        ("XUnit_TestResults_42", (4, 2, 1, 1)), ("NUnit_TestResults_42", (8, 3, 3, 2)),
        ("VSTest_TestResults_42", (3, 1, 1, 1)),
    ]  # fmt: skip
    assert [Path(name).name for name in rec.tests[1]["files"]] == ["nunit2.xml", "nunit3.xml"]
