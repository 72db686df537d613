"""The workspace adapter depends on the standard library, mlyard.errors and mlyard.names only."""

from __future__ import annotations

import mlyard.workspace  # noqa: F401 (loaded for foreign_imports)
from tests.imports import foreign_imports


def test_the_adapter_imports_only_the_standard_library_errors_and_names() -> None:
    assert foreign_imports("mlyard.workspace") == {}
