"""An app in place of MLflow's server app that needs an optional package when it is imported (tests of
`tracking_server.prepare_app`)."""

from __future__ import annotations

import mlyard_test_optional  # noqa: F401 (made by the test)

from tests.registry.fake_server_app import app  # noqa: F401
