"""Job status check functions: always, canceled, succeeded, failed, succeededOrFailed.

At step level (`context.job_status` is set) they look at the job's status so far, like
`in(variables['Agent.JobStatus'], 'Succeeded', 'SucceededWithIssues')`. At job or stage level they look
at `context.dependency_results`: all of them with no arguments, or only the named ones.
`succeeded`, `failed` and `succeededOrFailed` are False once the run is canceled.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mlyard.pipelines.expressions.ast import Node
from mlyard.pipelines.expressions.context import Evaluation
from mlyard.pipelines.expressions.values import EvaluationFailure, fold, to_text

SUCCEEDED = frozenset({"SUCCEEDED", "SUCCEEDEDWITHISSUES"})
FINISHED = SUCCEEDED | {"FAILED"}


def always(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    return True


def canceled(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    return bool(ev.context.canceled)


def succeeded(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    if ev.context.canceled:
        return False
    return all(fold(result) in SUCCEEDED for result in _results(ev, args, "succeeded"))


def failed(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    if ev.context.canceled:
        return False
    return any(fold(result) == "FAILED" for result in _results(ev, args, "failed"))


def succeeded_or_failed(ev: Evaluation, args: tuple[Node, ...]) -> Any:
    if ev.context.canceled:
        return False
    return all(fold(result) in FINISHED for result in _results(ev, args, "succeededOrFailed"))


def _results(ev: Evaluation, args: tuple[Node, ...], function: str) -> Iterable[str]:
    context = ev.context
    if not args and context.job_status is not None:
        return [context.job_status]
    results = {fold(name): (name, result) for name, result in context.dependency_results.items()}
    if not args:
        return [result for _, result in results.values()]
    picked: list[str] = []
    for node in args:
        name = to_text(ev.value(node))
        if fold(name) not in results:
            known = ", ".join(sorted(original for original, _ in results.values())) or "none"
            raise EvaluationFailure(f"'{name}' is not a dependency here (dependencies: {known})")
        picked.append(results[fold(name)][1])
    return picked
