"""`mlyard projects update`: bring the platform's current template into a project, on a branch for review."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mlyard.cli import output
from mlyard.cli.context import client

projects_app = typer.Typer(help="ML projects made by `mlyard create`: update them to the current template.",
                           no_args_is_help=True)  # fmt: skip


@projects_app.callback()
def projects() -> None:
    """ML projects made by `mlyard create`: update them to the platform's current template."""


@projects_app.command("update")
def projects_update(
    repo: Annotated[str, typer.Argument(help="The project's repository.")],
    branch: Annotated[
        str | None, typer.Option("--branch", help="Branch to push (default: mlyard/template-update-<template sha>).")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Run `copier update` with the platform's template on a new branch of REPO and push it for review.

    The push starts the pipelines whose trigger matches (as any push does). Conflicts are left as
    markers in the files, listed, and pushed for the team to resolve on the branch.
    """
    from mlyard.project_update import update_project

    with client() as api:
        result = update_project(api, username=api.me().username, repo_name=repo, branch=branch,
                                say=lambda line: print(line, file=sys.stderr, flush=True))  # fmt: skip
    if json:
        output.print_json(result.to_dict())
        return
    con = output.console()
    if result.up_to_date:
        con.print(f"{repo} is up to date with the template ({result.to_commit[:7]})")
        return
    con.print(f"pushed branch [bold]{result.branch}[/] to {repo}: template {result.from_commit[:7]} -> "
              f"{result.to_commit[:7]}, {len(result.changed_files)} file(s) changed")  # fmt: skip
    if result.conflicts:
        con.print(f"[yellow]conflicts in {len(result.conflicts)} file(s)[/]: resolve them on {result.branch}, "
                  "then merge it")  # fmt: skip
        for path in result.conflicts:
            con.print(f"  {path}", markup=False)
    else:
        con.print(f"review and merge {result.branch} into {result.base_branch}")
