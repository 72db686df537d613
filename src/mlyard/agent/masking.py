"""Secret masking: every secret value, and its base64 and URL-encoded forms, becomes `***` in log lines.

Like Azure's agent, whole values are masked, never substrings of them. Values shorter than
:data:`MIN_SECRET_LENGTH` characters are not masked (masking every `1` or `a` would make logs unreadable);
a multi-line secret is also masked line by line, since logs are kept per line.

Not only logs: every text a step can make the server store (issues, build number, tags, output variables,
test results, the job's message) is masked before it is sent (:func:`mask_all`, :func:`mask_outcome`).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import quote, quote_plus

from mlyard.protocol import JobOutcome

MIN_SECRET_LENGTH = 2
MASK = "***"


def secret_forms(value: str) -> set[str]:
    """The forms of one secret that are masked: itself, base64 (padded or not, also of the value followed
    by a newline, as `echo "$S" | base64` prints it) and URL-encoded (`quote`, `quote_plus`)."""
    if len(value) < MIN_SECRET_LENGTH:
        return set()
    forms = {value}
    for raw in (value, value + "\n"):
        encoded = base64.b64encode(raw.encode()).decode()
        forms.update({encoded, encoded.rstrip("=")})
    forms.update({quote(value, safe=""), quote(value), quote_plus(value)})
    for line in value.splitlines():
        if len(line.strip()) >= MIN_SECRET_LENGTH:
            forms.add(line.strip())
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class Masker:
    """Replaces registered secrets in text; longer forms first so no part of a longer one leaks."""

    def __init__(self, secrets: list[str] | None = None) -> None:
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for value in secrets or ():
            self.add(value)

    def add(self, value: str) -> None:
        """Register a secret value (no effect for short values)."""
        new = secret_forms(value) - self._forms
        if not new:
            return
        self._forms |= new
        ordered = sorted(self._forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(form) for form in ordered))

    def mask(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)


def mask_all(value: Any, mask: Callable[[str], str]) -> Any:
    """``value`` with every string in it masked: nested dicts (keys and values), lists and tuples."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {mask_all(key, mask): mask_all(item, mask) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(mask_all(item, mask) for item in value)
    return value


def mask_outcome(outcome: JobOutcome, masker: Masker) -> JobOutcome:
    """The outcome with every secret the job knew at its end masked in what the server stores in plain
    text: output variables (secret ones are stored encrypted), tags, the build number and the message.

    Secrets registered late (`task.setsecret` after `build.addbuildtag`) are masked here too."""
    mask = masker.mask
    tags = list(dict.fromkeys(mask(tag) for tag in outcome.tags))
    return replace(
        outcome,
        outputs={name: mask(value) for name, value in outcome.outputs.items()},
        tags=tags,
        build_number=mask(outcome.build_number) if outcome.build_number else outcome.build_number,
        message=mask(outcome.message),
    )
