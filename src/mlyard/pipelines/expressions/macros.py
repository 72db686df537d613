"""Macro syntax `$(name)`: replaced with the variable's value just before a task runs.

Names are matched ignoring case and may contain letters, digits, `.`, `_` and `-` (`$(Build.SourceBranch)`).
A macro whose variable does not exist is left as written (`$(var)` stays `$(var)`), and replaced values
are not expanded again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlyard.pipelines.expressions.values import try_to_string

_MACRO = re.compile(r"\$\(([A-Za-z0-9_.\-]+)\)")


def expand_macros(text: str, variables: Mapping[str, Any]) -> str:
    """Replace each `$(name)` whose variable is defined; leave the others as they are."""
    if "$(" not in text:
        return text
    folded = {str(name).lower(): value for name, value in variables.items()}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in variables:
            value = variables[name]
        elif name.lower() in folded:
            value = folded[name.lower()]
        else:
            return match.group(0)
        return value if isinstance(value, str) else (try_to_string(value) or "")

    return _MACRO.sub(replace, text)
