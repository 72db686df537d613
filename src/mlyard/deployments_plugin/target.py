"""The target URI: which mlyard server, which token, which environment.

    mlyard                              environment dev, the server of the CLI (MLYARD_URL, else ~/.mlyard/cli.json)
    mlyard:/ENV                         environment ENV, the same server
    mlyard+http://HOST:PORT[/PREFIX]/ENV    environment ENV of the server at http://HOST:PORT[/PREFIX]
    mlyard+https://HOST[/PREFIX]/ENV        the same over TLS

The token is never part of the URI (it would end up in logs): MLYARD_TOKEN, else MLFLOW_TRACKING_TOKEN when
MLFLOW_TRACKING_URI is this server's MLflow (`<server>/mlflow/<env>`), else the CLI config's token for the
CLI's server (`mlyard`, `mlyard:/ENV`, as the mlyard CLI does) or when the config names this server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from mlyard.deployments_plugin.errors import invalid
from mlyard.errors import InvalidInput
from mlyard.names import check_env_name
from mlyard.settings import DEFAULT_HOST, DEFAULT_PORT, CliConfig, resolve_home

NAME = "mlyard"  # the target name, and the scheme of the URIs that use the CLI's server
SCHEMES = (NAME, f"{NAME}+http", f"{NAME}+https")  # each one an entry point of `mlflow.deployments`
DEFAULT_ENV = "dev"
MAX_URI = 2048  # characters of a target URI


@dataclass(frozen=True)
class Target:
    """A parsed target URI: the server's URL, the token sent to it and the environment deployed to."""

    uri: str
    server: str
    token: str
    environment: str

    def describe(self) -> str:
        return f"mlyard target {self.uri} (environment {self.environment} of {self.server})"


def parse_target(uri: str, environ: Mapping[str, str] | None = None) -> Target:
    """The target of `uri`; TargetError (INVALID_PARAMETER_VALUE) saying which form to use."""
    environ = os.environ if environ is None else environ
    if not isinstance(uri, str) or not uri.strip() or len(uri) > MAX_URI:
        raise invalid(f"invalid target URI {str(uri)[:80]!r}: use {NAME}, {NAME}:/ENV or {NAME}+http://HOST:PORT/ENV")
    parts = urlsplit(uri.strip())
    scheme = parts.scheme.lower() if parts.scheme else uri.strip().lower()
    if scheme not in SCHEMES:
        raise invalid(f"invalid target URI {uri!r}: the {NAME} target takes {', '.join(s + ':' for s in SCHEMES)}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise invalid(
            f"invalid target URI {uri!r}: no user, password, query or fragment; put the token in MLYARD_TOKEN"
        )
    home = resolve_home(environ.get("MLYARD_HOME") or None)
    saved = CliConfig.read(home)
    if scheme == NAME:
        if parts.netloc:
            raise invalid(f"invalid target URI {uri!r}: {NAME}:/ENV names no host; use {NAME}+http://HOST:PORT/ENV")
        server = (environ.get("MLYARD_URL") or saved.url or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}").rstrip("/")
        prefix, env = "", parts.path.strip("/") if parts.scheme else ""
    else:
        if not parts.hostname:
            raise invalid(f"invalid target URI {uri!r}: give the server, e.g. {scheme}://127.0.0.1:8080/dev")
        prefix, _, env = parts.path.rstrip("/").rpartition("/")
        server = f"{scheme.removeprefix(NAME + '+')}://{parts.netloc}{prefix}"
    try:
        check_env_name(env or DEFAULT_ENV)
    except InvalidInput as exc:
        raise invalid(f"invalid target URI {uri!r}: {exc}") from None
    token = _token(server, environ, saved, cli_server=scheme == NAME)
    return Target(uri=uri, server=server, token=token, environment=env or DEFAULT_ENV)


def _token(server: str, environ: Mapping[str, str], saved: CliConfig, *, cli_server: bool) -> str:
    """`cli_server`: the target is the CLI's own server (`mlyard`, `mlyard:/ENV`), whose token the CLI
    config holds, as the mlyard CLI uses it (also with MLYARD_URL set)."""
    if environ.get("MLYARD_TOKEN"):
        return environ["MLYARD_TOKEN"]
    tracking = environ.get("MLFLOW_TRACKING_URI", "").rstrip("/")
    if environ.get("MLFLOW_TRACKING_TOKEN") and tracking.startswith(f"{server}/mlflow/"):
        return environ["MLFLOW_TRACKING_TOKEN"]
    return saved.token if cli_server or saved.url == server else ""
