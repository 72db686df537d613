"""mlyard's stage vocabulary and the checks of stage names and version numbers (no MLflow: the server and the
CLI use them without importing MLflow)."""

from __future__ import annotations

from mlyard.errors import InvalidInput

STAGES = ("Staging", "Production", "Archived", "None")
ALIASES = {"Staging": "staging", "Production": "production"}
HISTORY_TAG = "mlyard.history"


def check_stage(stage: str) -> str:
    """The canonical spelling of `stage` (case-insensitive), else InvalidInput listing the choices."""
    for choice in STAGES:
        if isinstance(stage, str) and stage.strip().lower() == choice.lower():
            return choice
    raise InvalidInput(f"invalid stage {stage!r}: choose one of {', '.join(STAGES)}")


def check_version(version: int | str) -> int:
    """A version number as an int; InvalidInput unless it is a positive whole number."""
    text = str(version).strip() if isinstance(version, int | str) and not isinstance(version, bool) else ""
    if not text.isdigit() or int(text) < 1:
        raise InvalidInput(f"invalid model version {version!r}: versions are whole numbers from 1")
    return int(text)
