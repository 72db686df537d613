"""Where mlyard keeps its data and how the server is configured.

The data directory ("home") defaults to ``~/.mlyard`` and is overridden by ``MLYARD_HOME`` or
``--home``. ``mlyard init`` writes ``settings.json`` (server settings) and ``cli.json`` (server URL
and token for the CLI, mode 0600) inside it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from mlyard.errors import InvalidInput

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_BRANCH = "master"
DEFAULT_ENVIRONMENTS = ("dev", "test", "prod")
SETTINGS_FILE = "settings.json"
CLI_CONFIG_FILE = "cli.json"


def is_initialised(home: Path) -> bool:
    """Whether `mlyard init` made `home` (its settings file is there)."""
    return (home / SETTINGS_FILE).exists()


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: the explicit argument, else ``MLYARD_HOME``, else ``~/.mlyard``."""
    if home:
        return Path(home).expanduser().resolve()
    env = os.environ.get("MLYARD_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return (Path.home() / ".mlyard").resolve()


@dataclass(frozen=True)
class Settings:
    """Server settings, stored in ``<home>/settings.json``."""

    home: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    database_url: str = ""
    default_branch: str = DEFAULT_BRANCH
    public_url: str = ""
    # How long a claimed job stays an agent's without a heartbeat (agents beat every third of it).
    job_lease_seconds: int = 30
    # Request body limits (docs/server.md): API requests and web forms, one artifact upload, one git push.
    max_request_bytes: int = 1024**2
    max_artifact_bytes: int = 1024**3
    max_push_bytes: int = 1024**3
    # Failed authentications per client address and minute before it gets 429 (0: no limit).
    auth_failures_per_minute: int = 20
    # Run local agents' steps and `jobs run` entry points without the bubblewrap sandbox (single-user
    # machines where bubblewrap cannot run): they then have the server's OS rights (docs/agent.md).
    unsandboxed_steps: bool = False
    # First port of the environments' serving port ranges (dev BASE..BASE+99, test +100, prod +200, others
    # +300 on), written into each environment when it is created: a second home on the same machine takes
    # another base, so that no deployment's URI ever reaches the other home's scoring server.
    serving_port_base: int = 9100

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'mlyard.db'}"

    @property
    def url(self) -> str:
        """The URL clients use to reach the server (git remotes, run links)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @property
    def repos_dir(self) -> Path:
        return self.home / "repos"

    @property
    def spool_dir(self) -> Path:
        """Push records written by the post-receive hook, ingested (exactly once) by the server."""
        return self.home / "spool"

    @property
    def envs_dir(self) -> Path:
        return self.home / "envs"

    @property
    def secret_key_file(self) -> Path:
        return self.home / "secret.key"

    def with_overrides(self, **changes: Any) -> Settings:
        given: dict[str, Any] = {k: v for k, v in changes.items() if v not in (None, "")}
        return replace(self, **given)

    def save(self) -> None:
        data = asdict(self)
        data.pop("home")
        path = self.home / SETTINGS_FILE
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, home: Path) -> Settings:
        path = home / SETTINGS_FILE
        if not path.exists():
            return cls(home=home)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{path}: cannot read settings ({exc}); fix or remove the file") from exc
        keys = ("host", "port", "database_url", "default_branch", "public_url", "job_lease_seconds",
                "max_request_bytes", "max_artifact_bytes", "max_push_bytes", "auth_failures_per_minute",
                "unsandboxed_steps", "serving_port_base")
        known = {k: data[k] for k in keys if k in data}
        return cls(home=home, **known)


@dataclass(frozen=True)
class CliConfig:
    """What the CLI needs to reach the server: ``MLYARD_URL`` / ``MLYARD_TOKEN`` override the file."""

    url: str
    token: str
    username: str = ""

    @classmethod
    def load(cls, home: Path) -> CliConfig:
        saved = cls.read(home)
        url = os.environ.get("MLYARD_URL") or saved.url or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
        token = os.environ.get("MLYARD_TOKEN") or saved.token
        return cls(url=url.rstrip("/"), token=token, username=saved.username)

    @classmethod
    def read(cls, home: Path) -> CliConfig:
        """The file alone, without the environment's overrides (empty fields when there is no file)."""
        path = home / CLI_CONFIG_FILE
        if not path.exists():
            return cls(url="", token="")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            url, token, username = data.get("url", ""), data.get("token", ""), data.get("username", "")
        except (OSError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"{path}: cannot read CLI config ({exc}); run `mlyard init` again") from exc
        return cls(url=str(url or "").rstrip("/"), token=str(token or ""), username=str(username or ""))

    def save(self, home: Path) -> Path:
        path = home / CLI_CONFIG_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"url": self.url, "token": self.token, "username": self.username}, fh, indent=2)
            fh.write("\n")
        os.chmod(path, 0o600)
        return path
