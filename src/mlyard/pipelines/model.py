"""The typed pipeline model: frozen dataclasses with normalised shapes.

A :class:`Pipeline` is a loaded file (its parameters, trigger and the tree still holding template
expressions). Compiling it yields a :class:`~mlyard.pipelines.plan.Plan` made of :class:`Stage`,
:class:`Job` and :class:`Step` objects, fully expanded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from mlyard.pipelines.errors import Diagnostic
from mlyard.pipelines.resources import Resources
from mlyard.pipelines.source import Mark, SourceDocument

PARAMETER_TYPES = (
    "string", "number", "boolean", "object", "step", "stepList", "job", "jobList",
    "deployment", "deploymentList", "stage", "stageList",
)  # fmt: skip
StepKind = Literal["script", "bash", "pwsh", "powershell", "checkout", "publish", "download", "task"]
JobKind = Literal["job", "deployment"]


@dataclass(frozen=True)
class Parameter:
    """A declared parameter (``has_default`` False when it has no default) and where it is declared."""

    name: str
    type: str = "string"
    display_name: str | None = None
    default: Any = None
    has_default: bool = False
    values: tuple[Any, ...] | None = None
    mark: Mark | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Variable:
    """One variable entry; values are strings, as in Azure Pipelines."""

    name: str
    value: str
    readonly: bool = False


@dataclass(frozen=True)
class VariableGroup:
    """A reference to a variable group (a library of variables kept by the server)."""

    group: str


VariableEntry = Variable | VariableGroup


@dataclass(frozen=True)
class Pool:
    """The agent pool a job asks for (recorded; the local runner ignores ``vm_image``)."""

    name: str | None = None
    vm_image: str | None = None
    demands: tuple[str, ...] = ()


@dataclass(frozen=True)
class Environment:
    """The environment a deployment job targets."""

    name: str
    resource_name: str | None = None
    resource_type: str | None = None


@dataclass(frozen=True)
class Step:
    """One step. ``task`` is the task the step runs (``script`` is CmdLine@2, ``bash`` Bash@3,
    ``pwsh``/``powershell`` PowerShell@2, ``publish`` PublishPipelineArtifact@1, ``download``
    DownloadPipelineArtifact@2; None for checkout) and ``inputs`` its normalised inputs. ``unsupported``
    says why mlyard cannot run a step that is valid Azure Pipelines (a task it does not run): a run fails
    at this step with that message."""

    name: str
    kind: StepKind
    display_name: str
    task: str | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    condition: str = "succeeded()"
    continue_on_error: bool = False
    timeout_in_minutes: int = 0
    enabled: bool = True
    retry_count_on_task_failure: int = 0
    unsupported: str | None = None

    @property
    def script(self) -> str | None:
        """The inline script of a script or bash step (or an inline task), else None."""
        value = self.inputs.get("script", self.inputs.get("inlineScript"))
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Leg:
    """Where a job made by ``strategy: matrix`` or ``strategy: parallel`` sits among its copies.

    ``phase`` is the job's name as written (``dependsOn`` on it waits for every leg), ``name`` the matrix
    configuration's name or the slice number; ``position`` (from 1) and ``total`` are
    ``System.JobPositionInPhase`` and ``System.TotalJobsInPhase``; ``max_parallel`` bounds how many legs
    of the phase run at once (0: no bound).
    """

    phase: str
    name: str
    position: int
    total: int
    max_parallel: int = 0


@dataclass(frozen=True)
class Job:
    """A job or a deployment job (``environment`` and the runOnce ``deploy`` steps); ``leg`` is set for
    the copies a job strategy makes."""

    name: str
    kind: JobKind
    display_name: str
    depends_on: tuple[str, ...] = ()
    condition: str = "succeeded()"
    timeout_in_minutes: int = 60
    cancel_timeout_in_minutes: int = 5
    continue_on_error: bool = False
    pool: Pool | None = None
    workspace_clean: str | None = None
    environment: Environment | None = None
    strategy: str | None = None
    variables: tuple[VariableEntry, ...] = ()
    steps: tuple[Step, ...] = ()
    leg: Leg | None = None
    container: str | None = None  # the image of a container job (runs need a container engine)


@dataclass(frozen=True)
class Stage:
    """A stage: its jobs run in parallel unless a job says ``dependsOn``."""

    name: str
    display_name: str
    depends_on: tuple[str, ...] = ()
    condition: str = "succeeded()"
    variables: tuple[VariableEntry, ...] = ()
    jobs: tuple[Job, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    """A loaded pipeline file: declared parameters, trigger, and the tree to compile. ``unsupported``: the
    notices of the file as written (valid Azure Pipelines mlyard cannot run; compiling gives the final ones)."""

    name: str | None
    file: str
    source: SourceDocument
    parameters: tuple[Parameter, ...] = ()
    trigger: Any = None
    warnings: tuple[str, ...] = ()
    unsupported: tuple[Diagnostic, ...] = ()
    schedules: tuple[Any, ...] = ()  # mlyard.pipelines.schedules.Schedule items
    resources: Resources = field(default_factory=Resources)

    @property
    def tree(self) -> Mapping[str, Any]:
        """The file's mapping as written (template expressions not evaluated)."""
        return self.source.tree
