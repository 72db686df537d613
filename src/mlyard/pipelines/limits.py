"""Bounds of one compilation: YAML size, expanded size and time (documented in docs/pipelines.md).

Untrusted YAML must not stall the server: a file over ``MAX_YAML_BYTES`` is not parsed, and the
template expansion counts its work (:class:`Budget`), so a ``${{ each }}`` bomb stops with a
diagnostic naming the limit and the file instead of growing without end. Python threads cannot be
killed, so the time limit is enforced by the expansion itself, checked every few nodes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlyard.pipelines.errors import Diagnostic, PipelineError

if TYPE_CHECKING:
    from mlyard.pipelines.source import Mark

MAX_YAML_BYTES = 1024 * 1024  # per YAML file (the pipeline and each template)
MAX_EXPANDED_NODES = 100_000  # mappings, lists and values produced by template expansion
MAX_EXPANDED_TEXT = 32 * 1024 * 1024  # characters of text built by ${{ }} expressions in one expansion
MAX_JOBS = 1_000  # jobs and deployment jobs of one plan
MAX_STEPS = 5_000  # steps of one plan, all jobs together
MAX_COMPILE_SECONDS = 10.0  # wall time of one expansion
CLOCK_EVERY = 256  # nodes between two looks at the clock


class CompileStopped(PipelineError):
    """The compilation was stopped from outside (its run was canceled)."""

    def __init__(self, file: str) -> None:
        super().__init__([Diagnostic(file, 1, 1, "", "compilation stopped: the run was canceled")])


@dataclass(frozen=True)
class Limits:
    yaml_bytes: int = MAX_YAML_BYTES
    nodes: int = MAX_EXPANDED_NODES
    text: int = MAX_EXPANDED_TEXT
    jobs: int = MAX_JOBS
    steps: int = MAX_STEPS
    seconds: float = MAX_COMPILE_SECONDS


DEFAULT_LIMITS = Limits()


def limit_error(file: str, mark: Mark | None, path: str, message: str) -> PipelineError:
    where = (mark.file, mark.line, mark.column) if mark else (file, 1, 1)
    return PipelineError([Diagnostic(*where, path, message)])


@dataclass
class Budget:
    """The work one compilation may still do; `spend` raises :class:`PipelineError` past a limit."""

    file: str
    limits: Limits = DEFAULT_LIMITS
    nodes: int = 0
    text: int = 0
    started: float = field(default_factory=time.monotonic)
    stop: Callable[[], bool] | None = None  # asked with the clock: True ends the compilation (a cancel)

    def spend(self, mark: Mark | None, path: str) -> None:
        self.nodes += 1
        if self.nodes > self.limits.nodes:
            raise self._too_many_nodes(mark, path)
        if not self.nodes % CLOCK_EVERY:
            self.look(mark, path)

    def reuse(self, nodes: int, text: int, mark: Mark | None, path: str) -> None:
        """Count again the work of an expansion that is reused (a template included again with the same
        values): its nodes and text, and a look at the clock."""
        self.nodes += nodes
        if self.nodes > self.limits.nodes:
            raise self._too_many_nodes(mark, path)
        self.text += text
        if self.text > self.limits.text:
            raise self._too_much_text(mark, path)
        self.look(mark, path)

    def look(self, mark: Mark | None, path: str) -> None:
        """Stop when asked to or past the time limit."""
        if self.stop is not None and self.stop():
            raise CompileStopped(self.file)
        if time.monotonic() - self.started > self.limits.seconds:
            raise limit_error(self.file, mark, path,
                              f"compiling the pipeline took longer than {self.limits.seconds:g} s (limit: compile "
                              "time); simplify its templates and expressions")  # fmt: skip

    def _too_many_nodes(self, mark: Mark | None, path: str) -> PipelineError:
        return limit_error(self.file, mark, path,
                           f"the pipeline expands to more than {self.limits.nodes} nodes (limit: expanded nodes); "
                           "reduce the ${{ each }} loops or template references")  # fmt: skip

    def _too_much_text(self, mark: Mark | None, path: str) -> PipelineError:
        return limit_error(self.file, mark, path,
                           f"template expressions built more than {self.limits.text} characters of text "
                           "(limit: expanded text); reduce the copies of large values")  # fmt: skip

    def built(self, value: object, mark: Mark | None, path: str) -> None:
        """Count the text an expression built (copies of a large parameter add up)."""
        if isinstance(value, str):
            self.text += len(value)
            if self.text > self.limits.text:
                raise self._too_much_text(mark, path)


def check_size(text: str, file: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a YAML file over the size limit before parsing it."""
    if len(text) > limits.yaml_bytes or len(text.encode("utf-8", "surrogatepass")) > limits.yaml_bytes:
        raise limit_error(
            file,
            None,
            "",
            f"the file is larger than {limits.yaml_bytes} bytes (limit: YAML file size); split it into templates",
        )
