"""Errors of the pipeline language. Every problem carries file, line, column and a key path."""

from __future__ import annotations

from dataclasses import dataclass

from mlyard.errors import UserError


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in a pipeline file, printed as `file:line:col: key.path: message`."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PipelineError(UserError):
    """All the problems found in a pipeline (reported together, never just the first)."""

    exit_code = 1
    http_status = 422

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        lines = [str(d) for d in self.diagnostics]
        count = len(lines)
        where = f" {self.diagnostics[0].file}" if count else ""
        head = lines[0] if count == 1 else f"{count} problems in pipeline{where}"
        super().__init__(head, errors=lines)


class ExpressionError(UserError, ValueError):
    """An expression that cannot be parsed or evaluated. `column` is 1-based within the expression text."""

    exit_code = 1
    http_status = 422

    def __init__(self, message: str, *, expression: str = "", column: int | None = None) -> None:
        self.expression = expression
        self.column = column
        super().__init__(message)
