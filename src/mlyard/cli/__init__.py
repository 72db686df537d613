"""The `mlyard` command line: thin Typer commands over the REST client and the offline libraries."""

import os
import sys


def starts_the_server(argv: list[str]) -> bool:
    """Whether `argv` is the command line `mlyard [--home HOME] server [OPTIONS]` (the console script or
    `python -m mlyard`), not asking for help or the version."""
    program = argv[0] if argv else ""
    if os.path.basename(program) != "mlyard" and not program.endswith(os.path.join("mlyard", "__main__.py")):
        return False
    rest = argv[1:]
    while rest and (rest[0] == "--home" or rest[0].startswith("--home=")):  # the root's option (each pass drops one)
        rest = rest[2:] if rest[0] == "--home" else rest[1:]
    return bool(rest) and rest[0] == "server" and "--help" not in rest and "--version" not in argv


def server_home(argv: list[str]) -> str | None:
    """The home `mlyard [--home HOME] server [--home HOME] ...` names (the command's own option wins, as in
    `server`); None: MLYARD_HOME or the default."""
    found = None
    for index, word in enumerate(argv[1:], 1):  # bounded by the command line
        if word == "--":
            break
        if word == "--home" and index + 1 < len(argv):
            found = argv[index + 1]
        elif word.startswith("--home="):
            found = word.removeprefix("--home=")
    return found


# `mlyard server` starts the zygote of its MLflow servers before the CLI's own imports (docs/registry.md).
if starts_the_server(sys.argv):
    from mlyard.registry.tracking_server import start_early
    from mlyard.settings import resolve_home

    start_early(resolve_home(server_home(sys.argv)))
