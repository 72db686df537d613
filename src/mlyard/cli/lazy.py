"""Command groups loaded on demand: `mlyard repos list` builds only the `repos` group.

Typer turns every command of every sub-app into click objects at each start; with a hundred
commands that is most of the CLI's start-up. The root group knows each sub-app by name, module
and one-line help, and imports and converts a sub-app only when it is invoked.
"""

from __future__ import annotations

import importlib
from typing import Any

import click
import typer
from typer.core import TyperCommand, TyperGroup

# name -> (module, attribute, help). `environments` comes from mlyard.cli.resources, which also adds
# its `set` command; `pipelines` from mlyard.cli.pipeline_admin, which extends the offline commands.
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "repos": ("mlyard.cli.repos", "repos_app", "Hosted git repositories."),
    "environments": ("mlyard.cli.resources", "environments_app", "Environments (dev, test, prod, ...)."),
    "users": ("mlyard.cli.identity", "users_app", "Manage users (admin)."),
    "tokens": ("mlyard.cli.identity", "tokens_app", "Manage personal access tokens."),
    "audit": ("mlyard.cli.identity", "audit_app", "Read the audit log (admin)."),
    "pipelines": (
        "mlyard.cli.pipeline_admin",
        "pipelines_app",
        "Validate, expand and run pipelines (Azure Pipelines YAML).",
    ),
    "runs": ("mlyard.cli.runs", "runs_app", "Pipeline runs: list, show, logs, cancel, permit, approve."),
    "connections": ("mlyard.cli.resources", "connections_app", "Service connections (protected resources)."),
    "variable-groups": ("mlyard.cli.resources", "groups_app", "Variable groups (protected resources)."),
    "infra": ("mlyard.cli.infra", "infra_app", "The platform's infrastructure: environments, template, creator."),
    "models": ("mlyard.cli.models", "models_app", "Registered models of an environment."),
    "jobs": ("mlyard.cli.jobs", "jobs_app", "Jobs on code deployed in an environment's workspace."),
    "deployments": ("mlyard.cli.deployments", "deployments_app", "Model deployments (serving endpoints)."),
    "workspace": ("mlyard.cli.workspace", "workspace_app", "Environment workspaces: deploy, ls, show."),
    "export": ("mlyard.cli.export", "export_app", "Export a project to Azure DevOps + Databricks (az commands)."),
    "projects": ("mlyard.cli.projects", "projects_app", "ML projects: update them to the platform's template."),
}


def load(name: str) -> click.Command:
    module, attribute, _help = SUBCOMMANDS[name]
    sub: Any = getattr(importlib.import_module(module), attribute)
    command = typer.main.get_command(sub)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SUBCOMMANDS:
            return load(cmd_name)
        command = super().get_command(ctx, cmd_name)
        if isinstance(command, TyperCommand):
            # The root group formats its own help without rich (no sub-app import for `mlyard --help`), but
            # typer escapes "[default: ...]" for rich whenever rich is installed: a root command's help would
            # show a literal "\[default: ...]". Rendered by rich, like every sub-app command, it shows "[".
            command.rich_markup_mode = "rich"
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][2]) for name in SUBCOMMANDS]
        for name in super().list_commands(ctx):
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=formatter.width - 20)))
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))
