"""The tests' own YAML data files (cases, tables) read with libyaml's parser when PyYAML has it.

Many of them are read while pytest collects, in each xdist worker: PyYAML's pure-Python parser took about a
second of CPU a worker for them. The C parser builds the same documents (same safe constructor and resolver).
The product's own YAML reading is not this (its pipelines loader keeps positions for its error messages).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(text: str) -> Any:
    """`yaml.safe_load(text)`, parsed by libyaml when available."""
    return yaml.load(text, Loader=SAFE_LOADER)


def read(path: Path) -> Any:
    return load(path.read_text(encoding="utf-8"))
