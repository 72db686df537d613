"""The request cases of data/requests.yaml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests import yamldata

CASES: list[dict[str, Any]] = yamldata.read(Path(__file__).parent / "data" / "requests.yaml")["cases"]
OK_CASES = [case for case in CASES if case["status"] == 200]
ERROR_CASES = [case for case in CASES if case["status"] != 200]


def message_pattern(case: dict[str, Any]) -> re.Pattern[str]:
    """The case's exact message; `{formats}` stands for MLflow's set of format keys, whose order
    depends on the process's hash seed."""
    parts = case["message"].split("{formats}")
    return re.compile(r"\{[^}]*\}".join(re.escape(part) for part in parts) + r"\Z")


def ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["name"] for case in cases]
