"""`mlyard pipelines ...`: offline language commands (validate, expand, explain-trigger, eval)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Validate, expand and run pipelines (Azure Pipelines YAML).", no_args_is_help=True)
