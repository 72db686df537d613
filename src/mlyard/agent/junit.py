"""JUnit XML test reports (the format of pytest --junitxml and most test runners) read into a summary.

Roots may be `<testsuites>` or `<testsuite>`, suites may nest. A test case with `<failure>` or `<error>`
failed, one with `<skipped>` was skipped, any other passed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class JUnitError(ValueError):
    """A file is not a readable JUnit report."""


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title, "total": self.total, "passed": self.passed, "failed": self.failed,
            "skipped": self.skipped, "duration_seconds": round(self.duration_seconds, 3),
            "failures": list(self.failures), "files": list(self.files),
        }  # fmt: skip


def _seconds(value: str | None) -> float:
    try:
        return float((value or "0").replace(",", ""))
    except ValueError:
        return 0.0


def _add_case(case: ElementTree.Element, summary: TestSummary) -> None:
    summary.total += 1
    summary.duration_seconds += _seconds(case.get("time"))
    problem = case.find("failure")
    if problem is None:
        problem = case.find("error")
    if problem is not None:
        summary.failed += 1
        message = problem.get("message") or (problem.text or "").strip().splitlines()[:1]
        summary.failures.append({
            "name": case.get("name", ""),
            "classname": case.get("classname", ""),
            "message": message if isinstance(message, str) else "".join(message),
        })  # fmt: skip
    elif case.find("skipped") is not None:
        summary.skipped += 1
    else:
        summary.passed += 1


def read_junit(path: Path, summary: TestSummary) -> None:
    """Add the test cases of one JUnit file to `summary`."""
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as exc:
        raise JUnitError(f"{path}: not a readable JUnit XML file: {exc}") from None
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
