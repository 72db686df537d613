"""The variables of a running job: case-insensitive names, secret flags, read-only names.

Non-secret variables become environment variables with Azure's naming (`Build.SourceBranch` ->
`BUILD_SOURCEBRANCH`); every variable, secret or not, expands as a `$(name)` macro.
"""

from __future__ import annotations

from dataclasses import dataclass


def env_name(name: str) -> str:
    """Azure's environment name of a variable: upper case, `.` and spaces become `_`."""
    return name.upper().replace(".", "_").replace(" ", "_")


@dataclass
class _Entry:
    name: str
    value: str
    secret: bool
    readonly: bool


class VariableStore:
    def __init__(
        self, values: dict[str, str], secrets: dict[str, str] | None = None, readonly: list[str] | None = None
    ) -> None:
        self._entries: dict[str, _Entry] = {}
        locked = {name.lower() for name in readonly or ()}
        for name, value in values.items():
            self._entries[name.lower()] = _Entry(name, str(value), False, name.lower() in locked)
        for name, value in (secrets or {}).items():
            self._entries[name.lower()] = _Entry(name, str(value), True, name.lower() in locked)

    def get(self, name: str) -> str | None:
        entry = self._entries.get(name.lower())
        return entry.value if entry else None

    def is_readonly(self, name: str) -> bool:
        entry = self._entries.get(name.lower())
        return bool(entry and entry.readonly)

    def put(self, name: str, value: str, *, secret: bool = False, readonly: bool = False) -> None:
        """Set a variable, ignoring read-only flags (the agent's own predefined variables)."""
        self._entries[name.lower()] = _Entry(name, value, secret, readonly)

    def set(self, name: str, value: str, *, secret: bool = False, readonly: bool = False) -> str | None:
        """Set a variable from a step; returns a warning instead when the variable is read-only."""
        if self.is_readonly(name):
            return f"variable '{name}' is read-only and cannot be set; its value is unchanged"
        self.put(name, value, secret=secret, readonly=readonly)
        return None

    def secret_values(self) -> list[str]:
        return [entry.value for entry in self._entries.values() if entry.secret]

    def all(self) -> dict[str, str]:
        """Every variable (secret ones too): what `$(name)` macros and conditions see."""
        return {entry.name: entry.value for entry in self._entries.values()}

    def environment(self) -> dict[str, str]:
        """The non-secret variables as environment variables."""
        return {env_name(entry.name): entry.value for entry in self._entries.values() if not entry.secret}
