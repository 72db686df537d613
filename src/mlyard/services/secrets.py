"""Secrets at rest: Fernet (AES-128-CBC + HMAC) with the key in `<home>/secret.key` (mode 0600)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from mlyard.errors import OperationFailed
from mlyard.services.platform import Platform


@lru_cache(maxsize=8)
def _fernet(key_file: Path) -> Fernet:
    try:
        return Fernet(key_file.read_bytes().strip())
    except (OSError, ValueError) as exc:
        raise OperationFailed(f"cannot read the secret key {key_file}: {exc}") from exc


def encrypt(platform: Platform, value: str) -> str:
    return _fernet(platform.settings.secret_key_file).encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(platform: Platform, token: str) -> str:
    try:
        return _fernet(platform.settings.secret_key_file).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise OperationFailed("a stored secret cannot be decrypted: was secret.key replaced?") from exc


def encrypt_map(platform: Platform, values: dict[str, str]) -> str:
    return encrypt(platform, json.dumps(values)) if values else ""


def decrypt_map(platform: Platform, token: str) -> dict[str, str]:
    return json.loads(decrypt(platform, token)) if token else {}
