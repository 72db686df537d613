"""The test result formats of PublishTestResults@2 (testResultsFormat): JUnit, XUnit (xUnit.net v2 XML),
NUnit (NUnit 2 `<test-results>` and NUnit 3 `<test-run>`) and VSTest (Visual Studio TRX), read into one
:class:`TestSummary` of passed, failed and skipped tests.

Outcomes: a test that failed, errored, timed out or was aborted is failed; one not run (skipped,
ignored, inconclusive, not executed) is skipped; any other (passed, warning) passed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path

from mlyard.agent.junit import JUnitError, TestSummary, parse_report, read_junit, seconds

FORMATS = ("JUnit", "NUnit", "VSTest", "XUnit")
TRX_NAMESPACE = "{http://microsoft.com/schemas/VisualStudio/TeamTest/2010}"
_TRX_FAILED = {"failed", "error", "timeout", "aborted"}
_TRX_PASSED = {"passed", "passedbutrunaborted", "warning", "completed"}


def _text(element: ElementTree.Element | None, path: str) -> str:
    found = element.find(path) if element is not None else None
    return (found.text or "") if found is not None else ""


def _split_name(full: str) -> tuple[str, str]:
    """("Namespace.Class", "Method") of "Namespace.Class.Method" (arguments in brackets kept)."""
    head = full.split("(", 1)[0]
    if "." not in head:
        return "", full
    classname = head.rsplit(".", 1)[0]
    return classname, full[len(classname) + 1 :]


def read_xunit(path: Path, summary: TestSummary) -> None:
    """xUnit.net v2: `<assemblies><assembly><collection><test result="Pass|Fail|Skip">`."""
    root = parse_report(path, "xUnit")
    if root.tag not in ("assemblies", "assembly"):
        raise JUnitError(f"{path}: not an xUnit v2 XML file (root element <{root.tag}>, expected <assemblies>)")
    for test in root.iter("test"):
        result = test.get("result", "").lower()
        classname = test.get("type", "")
        name = test.get("method") or test.get("name") or ""
        time = seconds(test.get("time"))
        if result == "fail":
            message = _text(test, "failure/message") or test.get("name", "")
            summary.record("failed", name=name, classname=classname, seconds=time, message=message)
        else:
            outcome = "passed" if result == "pass" else "skipped"
            summary.record(outcome, name=name, classname=classname, seconds=time)
    summary.files.append(str(path))


def _nunit2_case(case: ElementTree.Element, summary: TestSummary) -> None:
    result = case.get("result", "").lower()
    classname, name = _split_name(case.get("name", ""))
    time = seconds(case.get("time"))
    if result in ("failure", "error", "cancelled") or (not result and case.get("success", "").lower() == "false"):
        summary.record("failed", name=name, classname=classname, seconds=time,
                       message=_text(case, "failure/message") or result)  # fmt: skip
    elif result == "success" or (not result and case.get("success", "").lower() == "true"):
        summary.record("passed", name=name, classname=classname, seconds=time)
    else:  # ignored, skipped, inconclusive, notrunnable, or executed="False"
        summary.record("skipped", name=name, classname=classname, seconds=time)


def _nunit3_case(case: ElementTree.Element, summary: TestSummary) -> None:
    result = case.get("result", "").lower()
    classname = case.get("classname") or _split_name(case.get("fullname") or "")[0]
    name = case.get("methodname") or case.get("name") or ""
    time = seconds(case.get("duration"))
    if result == "failed":
        message = _text(case, "failure/message") or case.get("label", "") or "failed"
        summary.record("failed", name=name, classname=classname, seconds=time, message=message)
    else:
        summary.record("passed" if result in ("passed", "warning") else "skipped", name=name, classname=classname,
                       seconds=time)  # fmt: skip


def read_nunit(path: Path, summary: TestSummary) -> None:
    """NUnit 2 (`<test-results>`) or NUnit 3 (`<test-run>`); `<test-case>` elements are the tests."""
    root = parse_report(path, "NUnit")
    if root.tag == "test-results":
        reader = _nunit2_case
    elif root.tag == "test-run":
        reader = _nunit3_case
    else:
        raise JUnitError(f"{path}: not an NUnit XML file (root element <{root.tag}>, expected <test-run> for "
                         "NUnit 3 or <test-results> for NUnit 2)")  # fmt: skip
    for case in root.iter("test-case"):
        reader(case, summary)
    summary.files.append(str(path))


_DURATION = re.compile(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)")


def _trx_seconds(value: str | None) -> float:
    """"00:00:01.2345678" (or "1.00:00:00" with days) in seconds."""
    match = _DURATION.fullmatch((value or "").strip())
    if not match:
        return 0.0
    days, hours, minutes, secs = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(secs)


def read_trx(path: Path, summary: TestSummary) -> None:
    """Visual Studio TRX: `<TestRun><Results><UnitTestResult outcome=...>`; class names come from
    `<TestDefinitions><UnitTest id=...><TestMethod className=...>`."""
    root = parse_report(path, "VSTest (TRX)")
    if root.tag != f"{TRX_NAMESPACE}TestRun":
        raise JUnitError(f"{path}: not a VSTest TRX file (root element <{root.tag}>, expected <TestRun> in the "
                         "TeamTest 2010 namespace)")  # fmt: skip
    ns = TRX_NAMESPACE
    classes = {
        test.get("id", ""): (method.get("className", "").split(",")[0].strip() if method is not None else "")
        for test in root.iter(f"{ns}UnitTest")
        for method in [test.find(f"{ns}TestMethod")]
    }
    results = root.find(f"{ns}Results")
    for result in results.findall(f"{ns}UnitTestResult") if results is not None else []:
        outcome = result.get("outcome", "").lower()
        classname = classes.get(result.get("testId", ""), "")
        name = result.get("testName", "")
        if classname and name.startswith(classname + "."):
            name = name[len(classname) + 1 :]
        time = _trx_seconds(result.get("duration"))
        if outcome in _TRX_FAILED:
            message = _text(result, f"{ns}Output/{ns}ErrorInfo/{ns}Message") or outcome
            summary.record("failed", name=name, classname=classname, seconds=time, message=message)
        else:
            summary.record("passed" if outcome in _TRX_PASSED else "skipped", name=name, classname=classname,
                           seconds=time)  # fmt: skip
    summary.files.append(str(path))


READERS: dict[str, Callable[[Path, TestSummary], None]] = {
    "junit": read_junit, "xunit": read_xunit, "nunit": read_nunit, "vstest": read_trx,
}  # fmt: skip


def summarize_reports(paths: list[Path], title: str, fmt: str) -> TestSummary:
    """The summary of test result files of one format (a name of FORMATS, any case)."""
    reader = READERS.get(fmt.lower())
    if reader is None:
        raise JUnitError(f"testResultsFormat '{fmt}' is not supported by the mlyard agent; use "
                         f"{', '.join(FORMATS)}")  # fmt: skip
    summary = TestSummary(title=title)
    for path in paths:
        reader(path, summary)
    return summary
