"""How CLI commands find their home, their server and their token."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlyard.client import Client


def client() -> Client:
    """An API client from MLYARD_URL / MLYARD_TOKEN, else the CLI config in the home."""
    from mlyard.client import Client
    from mlyard.settings import CliConfig, resolve_home

    config = CliConfig.load(resolve_home())
    return Client(config.url, config.token)
