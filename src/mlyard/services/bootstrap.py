"""`mlyard init`: a data directory, the state database, an admin with a first token, environments.

Idempotent: on an initialised home it changes nothing and says so. A failed first init removes
what it made, so the next attempt starts clean.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from mlyard.db.engine import transaction, upgrade
from mlyard.db.tables import User
from mlyard.names import check_branch_name, check_username
from mlyard.services import infrastructure
from mlyard.services import settings as platform_settings
from mlyard.services.auth import SCOPES, create_token
from mlyard.services.environments import add_environment
from mlyard.services.platform import open_platform
from mlyard.settings import CLI_CONFIG_FILE, DEFAULT_ENVIRONMENTS, CliConfig, Settings, is_initialised

SUBDIRS = ("repos", "spool", "runs", "agents", "envs", "logs")


@dataclass(frozen=True)
class InitResult:
    home: Path
    url: str
    username: str
    token: str
    created: bool
    cli_config: Path

    def as_dict(self) -> dict[str, object]:
        return {
            "home": str(self.home),
            "url": self.url,
            "username": self.username,
            "token": self.token,
            "created": self.created,
            "cli_config": str(self.cli_config),
        }


def init_home(
    settings: Settings, *, username: str = "admin", environments: tuple[str, ...] = DEFAULT_ENVIRONMENTS
) -> InitResult:
    """Initialise `settings.home`, or report the existing initialisation unchanged."""
    home = settings.home
    if is_initialised(home):
        existing = Settings.load(home)
        cli = CliConfig.load(home)
        return InitResult(home, existing.url, cli.username, cli.token, False, home / CLI_CONFIG_FILE)
    check_username(username)
    check_branch_name(settings.default_branch)
    fresh = not home.exists() or not any(home.iterdir())
    try:
        return _create(settings, username, environments)
    except BaseException:
        if fresh:
            shutil.rmtree(home, ignore_errors=True)
        raise


def _create(settings: Settings, username: str, environments: tuple[str, ...]) -> InitResult:
    home = settings.home
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    for sub in SUBDIRS:
        (home / sub).mkdir(exist_ok=True)
    key_file = settings.secret_key_file
    if not key_file.exists():
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
    upgrade(settings.db_url)
    platform = open_platform(settings)
    try:
        with transaction(platform.sessions) as session:
            platform_settings.put(session, "default_branch", settings.default_branch)
            session.add(User(username=username, is_admin=True))
            for name in environments:
                add_environment(session, settings, name, actor=username)
        token = create_token(platform, username=username, name="init", scopes=list(SCOPES), actor=username)
        infrastructure.sync(platform, infrastructure.admin_principal(platform))
    finally:
        platform.close()
    cli_path = CliConfig(url=settings.url, token=str(token.token), username=username).save(home)
    settings.save()  # last: its presence marks the home as initialised
    return InitResult(home, settings.url, username, str(token.token), True, cli_path)
