"""The Production chain that rollback reads from the history (pure: entries in, versions out)."""

from __future__ import annotations

import pytest

from mlyard.registry.promotion import production_chain


def entry(version: int, to: str, *, source: str = "None", action: str = "promote", previous: int | None = None):
    return {"version": version, "from": source, "to": to, "action": action, "previous_production": previous}


CASES = [
    ("promotions stack up", [entry(1, "Production"), entry(2, "Production"), entry(3, "Production")], [1, 2, 3]),
    ("re-promoting the Production version adds nothing", [entry(1, "Production"), entry(1, "Production")], [1]),
    (
        "a rollback pops the version it replaces",
        [entry(1, "Production"), entry(2, "Production"), entry(1, "Production", action="rollback", previous=2)],
        [1],
    ),
    (
        "a demoted Production version leaves the chain",
        [entry(1, "Production"), entry(2, "Production"), entry(2, "Archived", source="Production")],
        [1],
    ),
    ("staging changes are ignored", [entry(1, "Production"), entry(2, "Staging"), entry(2, "None")], [1]),
    (
        "promoting an older version again goes on top",
        [entry(1, "Production"), entry(2, "Production"), entry(1, "Production")],
        [1, 2, 1],
    ),
]


@pytest.mark.parametrize(("case", "history", "chain"), CASES, ids=[case[0] for case in CASES])
def test_production_chain(case: str, history: list[dict], chain: list[int]) -> None:
    assert production_chain(history) == chain
