"""Code coverage reports read into a :class:`~mlyard.protocol.CoverageSummary`: Cobertura XML (coverage.py's
`coverage xml`, pytest-cov, coverlet, Istanbul's cobertura reporter) and JaCoCo XML.

Cobertura: the `lines-covered`/`lines-valid`/`branches-covered`/`branches-valid` attributes of the root
`<coverage>` element; older files without them are counted from their `<class>` `<line>` elements
(`hits`, `condition-coverage="50% (1/2)"`). JaCoCo: the LINE and BRANCH `<counter>` elements of the root
`<report>`. Several files are added together (a file covered twice counts twice).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from mlyard.protocol import CoverageSummary

MAX_REPORT_BYTES = 200 * 1024**2
FORMATS = ("Cobertura", "JaCoCo")
_ROOTS = {"coverage": "Cobertura", "report": "JaCoCo"}
_CONDITIONS = re.compile(r"\((\d+)/(\d+)\)")


class CoverageError(ValueError):
    """A file is not a readable coverage report of the expected format."""


@dataclass(frozen=True)
class Counts:
    lines_covered: int = 0
    lines_valid: int = 0
    branches_covered: int = 0
    branches_valid: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.lines_covered + other.lines_covered,
            self.lines_valid + other.lines_valid,
            self.branches_covered + other.branches_covered,
            self.branches_valid + other.branches_valid,
        )


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def _cobertura(root: ElementTree.Element) -> Counts:
    totals = [_int(root.get(name)) for name in ("lines-covered", "lines-valid", "branches-covered", "branches-valid")]
    if totals[1] is not None and totals[0] is not None:
        return Counts(*(value or 0 for value in totals))
    counts = Counts()
    for line in root.iterfind(".//class/lines/line"):
        covered = (_int(line.get("hits")) or 0) > 0
        branch = _CONDITIONS.search(line.get("condition-coverage", "")) if line.get("branch") == "true" else None
        done, total = (int(branch.group(1)), int(branch.group(2))) if branch else (0, 0)
        counts = counts + Counts(int(covered), 1, done, total)
    return counts


def _jacoco(root: ElementTree.Element) -> Counts:
    counters = root.findall("counter") or root.findall("package/counter")
    values = {"LINE": (0, 0), "BRANCH": (0, 0)}
    for counter in counters:
        kind = counter.get("type", "")
        if kind in values:
            covered, missed = _int(counter.get("covered")) or 0, _int(counter.get("missed")) or 0
            values[kind] = (values[kind][0] + covered, values[kind][1] + covered + missed)
    return Counts(values["LINE"][0], values["LINE"][1], values["BRANCH"][0], values["BRANCH"][1])


def read_report(path: Path, expected: str | None = None) -> tuple[str, Counts]:
    """(format, counts) of one report; `expected` ("Cobertura" or "JaCoCo") refuses the other format."""
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise CoverageError(f"{path}: larger than {MAX_REPORT_BYTES} bytes")
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as exc:
        raise CoverageError(f"{path}: not a readable coverage XML file: {exc}") from None
    found = _ROOTS.get(root.tag)
    if found is None or (expected is not None and found != expected):
        wanted = expected or " or ".join(FORMATS)
        tags = {"Cobertura": "<coverage>", "JaCoCo": "<report>"}
        shown = tags.get(expected or "", "<coverage> or <report>")
        raise CoverageError(f"{path}: not a {wanted} XML file (root element <{root.tag}>, expected {shown})")
    return found, (_cobertura(root) if found == "Cobertura" else _jacoco(root))


def summarize_coverage(paths: list[Path], expected: str | None = None) -> CoverageSummary:
    formats: list[str] = []
    total = Counts()
    for path in paths:
        fmt, counts = read_report(path, expected)
        formats.append(fmt)
        total = total + counts
    fmt = formats[0] if len(set(formats)) == 1 else "mixed"
    return CoverageSummary(fmt, total.lines_covered, total.lines_valid, total.branches_covered, total.branches_valid,
                           files=[str(path) for path in paths])  # fmt: skip
