"""Generate src/mlyard/pipelines/data/tasks.json from Microsoft's Azure Pipelines JSON schema.

The schema (`service-schema.json` of microsoft/azure-pipelines-vscode, MIT licence) lists every built-in
task as `Name@Major` with its inputs, input aliases, enum values and required inputs. mlyard validates
`- task:` steps against this data (mlyard.pipelines.tasks) and never reads the schema at run time.

    python scripts/task_data.py [--schema PATH] [--check]

``--schema`` defaults to ../shared/azure-pipelines/service-schema.json next to the repository;
``--check`` exits 1 when the committed file differs from what the schema gives (nothing is written).
The schema's LICENSE is copied next to the data (src/mlyard/pipelines/data/LICENSE-azure-pipelines-schema).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCHEMA = REPO.parent / "shared" / "azure-pipelines" / "service-schema.json"
DATA = REPO / "src" / "mlyard" / "pipelines" / "data"
TARGET = DATA / "tasks.json"
LICENSE_NAME = "LICENSE-azure-pipelines-schema"
MAX_DESCRIPTION = 160


def task_entries(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`Name@Major` -> {description, inputs, aliases, choices, required}; duplicate entries are merged."""
    tasks: dict[str, dict[str, Any]] = {}
    for entry in schema["definitions"]["task"]["anyOf"]:
        reference = entry["properties"]["task"]
        name = reference["pattern"].removeprefix("^").removesuffix("$")
        inputs = entry["properties"].get("inputs", {})
        found = tasks.setdefault(name, {"description": _description(reference.get("description", ""))})
        names: list[str] = found.setdefault("inputs", [])
        aliases: dict[str, str] = found.setdefault("aliases", {})
        choices: dict[str, list[str]] = found.setdefault("choices", {})
        for input_name, spec in inputs.get("properties", {}).items():
            if input_name not in names:
                names.append(input_name)
            for alias in spec.get("aliases", ()):
                aliases.setdefault(alias, input_name)
            if "enum" in spec:
                known = choices.setdefault(input_name, [])
                known.extend(value for value in spec["enum"] if value not in known)
        required = list(inputs.get("required", ()))
        # Two entries of one task (the schema has a few): an input is required only when both say so.
        found["required"] = [n for n in found.get("required", required) if n in required]
    return {name: {key: value for key, value in entry.items() if value} for name, entry in sorted(tasks.items())}


def _description(text: str) -> str:
    """The summary of a task's description ("Friendly name\\n\\nWhat it does"), one short line."""
    summary = " ".join(text.split("\n\n", 1)[-1].split())
    return summary if len(summary) <= MAX_DESCRIPTION else summary[: MAX_DESCRIPTION - 3].rstrip() + "..."


def render(schema: dict[str, Any]) -> str:
    """The data file: one task per line, so that a schema update reads as a small diff."""
    tasks = task_entries(schema)
    source = f"{schema.get('$id', 'service-schema.json')} {schema.get('$comment', '')}".strip()
    lines = [json.dumps(name) + ": " + json.dumps(entry, separators=(",", ":")) for name, entry in tasks.items()]
    head = {
        "source": source,
        "licence": f"MIT, Copyright (c) Microsoft Corporation; see {LICENSE_NAME}",
        "generator": "scripts/task_data.py",
    }
    body = ",\n".join(lines)
    header = "".join(f"{json.dumps(key)}: {json.dumps(value)},\n" for key, value in head.items())
    return "{\n" + header + f'"tasks": {{\n{body}\n}}}}\n'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", type=Path, default=DEFAULT_SCHEMA)
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed data is out of date")
    options = parser.parse_args(argv)
    schema = json.loads(options.schema.read_text(encoding="utf-8"))
    text = render(schema)
    if options.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.is_file() else ""
        if current != text:
            print(f"{TARGET} is out of date: run python scripts/task_data.py", file=sys.stderr)
            return 1
        print(f"{TARGET} is up to date ({len(task_entries(schema))} tasks)")
        return 0
    DATA.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    licence = options.schema.with_name("LICENSE")
    if licence.is_file():
        shutil.copyfile(licence, DATA / LICENSE_NAME)
    print(f"wrote {TARGET} ({len(text) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
