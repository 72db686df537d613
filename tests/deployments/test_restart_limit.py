"""The restart limit of the deployment supervisor: MLYARD_DEPLOYMENT_RESTART_LIMIT of the server, default 3.
(The supervisor itself is tested end to end in test_deployments.py, on a server with the limit 1.)"""

from __future__ import annotations

import pytest

from mlyard.services.deployments import RESTART_LIMIT, RESTART_LIMIT_ENV, restart_limit


@pytest.mark.parametrize(("value", "limit"), [(None, 3), ("", 3), ("1", 1), (" 5 ", 5), ("0", 0), ("-2", 0), ("x", 3)])
def test_restart_limit_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str | None, limit: int) -> None:
    if value is None:
        monkeypatch.delenv(RESTART_LIMIT_ENV, raising=False)
    else:
        monkeypatch.setenv(RESTART_LIMIT_ENV, value)
    assert RESTART_LIMIT == 3
    assert restart_limit() == limit
