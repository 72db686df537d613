"""JUnit XML test reports (the format of pytest --junitxml and most test runners) read into a summary.

Roots may be `<testsuites>` or `<testsuite>`, suites may nest. A test case with `<failure>` or `<error>`
failed, one with `<skipped>` was skipped, any other passed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_REPORT_BYTES = 100 * 1024**2  # one test results file
MAX_FAILURES = 200  # failures kept (with their messages) per summary; all are counted
MAX_MESSAGE_CHARS = 500


class JUnitError(ValueError):
    """A file is not a readable test report (JUnit or another format: see mlyard.agent.testformats)."""


@dataclass
class TestSummary:
    title: str
    total: int = 0
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    duration_seconds: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def record(self, outcome: str, *, name: str, classname: str, seconds: float = 0.0, message: str = "") -> None:
        """Count one test: outcome "passed", "failed" or "skipped"."""
        self.total += 1
        self.duration_seconds += seconds
        if outcome == "failed":
            self.failed += 1
            if len(self.failures) < MAX_FAILURES:
                first = message.strip().splitlines()[0] if message.strip() else ""
                self.failures.append({"name": name, "classname": classname, "message": first[:MAX_MESSAGE_CHARS]})
        elif outcome == "skipped":
            self.skipped += 1
        else:
            self.passed += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title, "total": self.total, "passed": self.passed, "failed": self.failed,
            "skipped": self.skipped, "duration_seconds": round(self.duration_seconds, 3),
            "failures": list(self.failures), "files": list(self.files),
        }  # fmt: skip


def seconds(value: str | None) -> float:
    try:
        return float((value or "0").replace(",", ""))
    except ValueError:
        return 0.0


def _add_case(case: ElementTree.Element, summary: TestSummary) -> None:
    problem = case.find("failure")
    if problem is None:
        problem = case.find("error")
    name, classname, time = case.get("name", ""), case.get("classname", ""), seconds(case.get("time"))
    if problem is not None:
        message = problem.get("message") or problem.text or ""
        summary.record("failed", name=name, classname=classname, seconds=time, message=message)
    else:
        outcome = "skipped" if case.find("skipped") is not None else "passed"
        summary.record(outcome, name=name, classname=classname, seconds=time)


def parse_report(path: Path, kind: str) -> ElementTree.Element:
    """The root element of a test report file (at most MAX_REPORT_BYTES)."""
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise JUnitError(f"{path}: larger than {MAX_REPORT_BYTES} bytes; split the test results")
        return ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as exc:
        raise JUnitError(f"{path}: not a readable {kind} XML file: {exc}") from None


def read_junit(path: Path, summary: TestSummary) -> None:
    """Add the test cases of one JUnit file to `summary`."""
    root = parse_report(path, "JUnit")
    if root.tag not in ("testsuites", "testsuite"):
        raise JUnitError(
            f"{path}: not a JUnit XML file (root element <{root.tag}>, expected <testsuites> or <testsuite>)"
        )
    for case in root.iter("testcase"):
        _add_case(case, summary)
    summary.files.append(str(path))


def summarize(paths: list[Path], title: str) -> TestSummary:
    summary = TestSummary(title=title)
    for path in paths:
        read_junit(path, summary)
    return summary
