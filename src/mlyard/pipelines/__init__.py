"""The pipeline language: Azure Pipelines YAML -> typed model -> compiled plan. Pure: no I/O but reading files.

``load_pipeline`` reads and checks a file, ``compile_pipeline`` (alias ``compile``) expands templates and
compile-time expressions into a :class:`Plan`, ``trigger_decision`` says whether a push runs it, and
``evaluate`` evaluates one expression.
"""

from __future__ import annotations

from mlyard.pipelines.compile import compile, compile_pipeline
from mlyard.pipelines.errors import Diagnostic, ExpressionError, PipelineError
from mlyard.pipelines.expressions import ExpressionContext, evaluate, evaluate_condition
from mlyard.pipelines.model import Environment, Job, Parameter, Pipeline, Pool, Stage, Step, Variable, VariableGroup
from mlyard.pipelines.parameters import resolve_parameters
from mlyard.pipelines.parser import load_pipeline, trigger_decision
from mlyard.pipelines.plan import Plan
from mlyard.pipelines.triggers import Decision

__all__ = [
    "Decision",
    "Diagnostic",
    "Environment",
    "ExpressionContext",
    "ExpressionError",
    "Job",
    "Parameter",
    "Pipeline",
    "PipelineError",
    "Plan",
    "Pool",
    "Stage",
    "Step",
    "Variable",
    "VariableGroup",
    "compile",
    "compile_pipeline",
    "evaluate",
    "evaluate_condition",
    "load_pipeline",
    "resolve_parameters",
    "trigger_decision",
]
