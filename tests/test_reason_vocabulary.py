"""One vocabulary of run reasons: mlyard.protocol.Reason (Azure's Build.Reason values), imported by the
server instead of copies of its strings (issue 11 adds Schedule)."""

from __future__ import annotations

import re
from pathlib import Path

from mlyard.protocol import Reason

SRC = Path(__file__).resolve().parents[1] / "src" / "mlyard"
NAMES = "|".join(re.escape(reason.value) for reason in Reason)
LITERAL = re.compile(rf"""["']({NAMES})["']""")


def test_reasons_are_azures_build_reason_values() -> None:
    assert [reason.value for reason in Reason] == ["Manual", "IndividualCI", "BatchedCI", "Schedule"]


def test_no_module_copies_the_reason_strings() -> None:
    copies = {
        path.relative_to(SRC).as_posix(): sorted(set(LITERAL.findall(path.read_text(encoding="utf-8"))))
        for path in sorted(SRC.rglob("*.py"))
        if path.name != "protocol.py"
    }
    # pipelines/schedules.py names its own class "Schedule" in __all__.
    copies = {name: found for name, found in copies.items() if found and name != "pipelines/schedules.py"}
    assert copies == {}, f"import mlyard.protocol.Reason instead of copying reason names: {copies}"
