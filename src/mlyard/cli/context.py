"""How CLI commands find their home, their server and their token."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlyard.client import Client
    from mlyard.settings import CliConfig


def config() -> CliConfig:
    """The CLI config: MLYARD_URL / MLYARD_TOKEN, else cli.json in the home; an error that says how to get
    one when there is neither (rather than the server's "authentication required")."""
    from mlyard.errors import AuthenticationError
    from mlyard.settings import CLI_CONFIG_FILE, CliConfig, resolve_home

    home = resolve_home()
    found = CliConfig.load(home)
    if not found.token:
        raise AuthenticationError(
            f"no CLI config ({home / CLI_CONFIG_FILE} has no token and MLYARD_TOKEN is not set); "
            "run `mlyard init` or set MLYARD_URL and MLYARD_TOKEN"
        )
    return found


def client(timeout: float = 60.0) -> Client:
    """An API client from MLYARD_URL / MLYARD_TOKEN, else the CLI config in the home."""
    from mlyard.client import Client

    found = config()
    return Client(found.url, found.token, timeout=timeout)
