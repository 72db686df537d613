"""Runs one Databricks source notebook as a job task, with a minimal `dbutils`.

    python notebook_runner.py PARAMETERS_JSON EXIT_FILE NOTEBOOK

Started by path (not imported by mlyard, standard library only) inside the job's sandbox. The notebook
runs as `__main__` with its own folder as working directory, and finds a global `dbutils` offering what
a job's notebook needs from Databricks' one:

- `dbutils.widgets.get(name)` (and `getArgument(name)`): the task's `base_parameters`, else the default
  given by `dbutils.widgets.text/dropdown/combobox/multiselect(name, default, ...)`;
- `dbutils.notebook.exit(value)`: ends the notebook at once, successfully, and makes `str(value)` the
  run's output (written to EXIT_FILE, at most MAX_EXIT_BYTES, as Databricks keeps at most 5 MB).

Anything else (`dbutils.fs`, `spark`, `%pip` cells) is not provided: the notebook fails with Python's
error, as it would on a cluster lacking them.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from typing import Any

MAX_EXIT_BYTES = 1024**2


class NotebookExit(BaseException):
    """Raised by `dbutils.notebook.exit`: a BaseException, so `except Exception` in the notebook lets it pass."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


class InputWidgetNotDefined(Exception):
    pass


class Widgets:
    def __init__(self, parameters: dict[str, str]) -> None:
        self._parameters = dict(parameters)
        self._defaults: dict[str, str] = {}

    def _define(self, name: str, default: Any) -> None:
        self._defaults[str(name)] = "" if default is None else str(default)

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:
        self._define(name, defaultValue)

    def dropdown(self, name: str, defaultValue: str, choices: list[str], label: str | None = None) -> None:
        self._define(name, defaultValue)

    def combobox(self, name: str, defaultValue: str, choices: list[str], label: str | None = None) -> None:
        self._define(name, defaultValue)

    def multiselect(self, name: str, defaultValue: str, choices: list[str], label: str | None = None) -> None:
        self._define(name, defaultValue)

    def get(self, name: str) -> str:
        if name in self._parameters:
            return self._parameters[name]
        if name in self._defaults:
            return self._defaults[name]
        raise InputWidgetNotDefined(f"No input widget named {name} is defined")

    def getArgument(self, name: str, defaultValue: str | None = None) -> str | None:
        try:
            return self.get(name)
        except InputWidgetNotDefined:
            return defaultValue

    def remove(self, name: str) -> None:
        self._defaults.pop(name, None)

    def removeAll(self) -> None:
        self._defaults.clear()


class Notebook:
    def exit(self, value: Any) -> None:
        raise NotebookExit(str(value))


class DBUtils:
    def __init__(self, parameters: dict[str, str]) -> None:
        self.widgets = Widgets(parameters)
        self.notebook = Notebook()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: notebook_runner.py PARAMETERS_JSON EXIT_FILE NOTEBOOK", file=sys.stderr)
        return 2
    parameters_file, exit_file, notebook = argv
    with open(parameters_file, encoding="utf-8") as handle:
        parameters = {str(k): str(v) for k, v in dict(json.load(handle)).items()}
    dbutils = DBUtils(parameters)
    sys.argv = [notebook]
    sys.path[0] = os.path.dirname(os.path.abspath(notebook))  # the notebook's folder, as on Databricks
    try:
        runpy.run_path(notebook, init_globals={"dbutils": dbutils, "getArgument": dbutils.widgets.getArgument},
                       run_name="__main__")  # fmt: skip
    except NotebookExit as done:
        data = done.value.encode("utf-8", "replace")[:MAX_EXIT_BYTES]
        with open(exit_file, "wb") as out:
            out.write(data)
        print(f"Notebook exited: {data[:200].decode('utf-8', 'replace')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
