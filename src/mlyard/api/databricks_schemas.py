"""Wire models of the Databricks-compatible API (api/routes/databricks.py): Databricks' field names.

Requests ignore fields they do not know (cluster, library and notification settings have no meaning on
one machine); responses leave out what is None.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class DatabricksRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # cluster, notification, ... settings have no meaning here


class ObjectModel(BaseModel):
    path: str
    object_type: str
    object_id: int
    created_at: int
    modified_at: int
    language: str | None = None
    size: int | None = None


class ListResponse(BaseModel):
    objects: list[ObjectModel] = Field(default_factory=list)


class ExportResponse(BaseModel):
    content: str
    file_type: str


class MkdirsRequest(DatabricksRequest):
    path: str


class DeleteRequest(DatabricksRequest):
    path: str
    recursive: bool = False


class ImportRequest(DatabricksRequest):
    path: str
    content: str = ""
    format: str | None = None
    language: str | None = None
    overwrite: bool = False


class NotebookTask(DatabricksRequest):
    notebook_path: str
    base_parameters: dict[str, str] = Field(default_factory=dict)
    source: Literal["WORKSPACE"] | None = None


class SparkPythonTask(DatabricksRequest):
    python_file: str
    parameters: list[str] = Field(default_factory=list)
    source: Literal["WORKSPACE"] | None = None


class PythonWheelTask(DatabricksRequest):
    package_name: str = Field(max_length=200)
    entry_point: str = Field(max_length=200)
    parameters: list[str] = Field(default_factory=list)
    named_parameters: dict[str, str] = Field(default_factory=dict)


class Library(DatabricksRequest):
    whl: str | None = None
    pypi: dict[str, Any] | None = None
    jar: str | None = None
    requirements: str | None = None


class SubmitTask(DatabricksRequest):
    task_key: str = Field("main", max_length=100)
    notebook_task: NotebookTask | None = None
    spark_python_task: SparkPythonTask | None = None
    python_wheel_task: PythonWheelTask | None = None
    libraries: list[Library] = Field(default_factory=list, max_length=100)
    depends_on: list[dict[str, Any]] = Field(default_factory=list)


class SubmitRequest(DatabricksRequest):
    run_name: str = Field("Untitled", max_length=4096)
    tasks: list[SubmitTask] = Field(default_factory=list, max_length=100)
    notebook_task: NotebookTask | None = None  # Jobs API 2.0's single task form
    spark_python_task: SparkPythonTask | None = None
    python_wheel_task: PythonWheelTask | None = None
    libraries: list[Library] = Field(default_factory=list, max_length=100)


class SubmitResponse(BaseModel):
    run_id: int


class RunIdRequest(DatabricksRequest):
    run_id: int = Field(ge=0, le=2**63 - 1)


class RunStateModel(BaseModel):
    life_cycle_state: str
    result_state: str | None = None
    state_message: str
    user_cancelled_or_timedout: bool


class TerminationDetails(BaseModel):
    code: str
    type: str
    message: str


class RunStatus(BaseModel):
    state: str
    termination_details: TerminationDetails | None = None


class RunTask(BaseModel):
    run_id: int
    task_key: str
    notebook_task: dict[str, Any] | None = None
    spark_python_task: dict[str, Any] | None = None
    python_wheel_task: dict[str, Any] | None = None
    libraries: list[dict[str, str]] | None = None
    state: RunStateModel
    status: RunStatus
    start_time: int
    end_time: int
    run_duration: int
    attempt_number: int = 0


class RunModel(BaseModel):
    run_id: int
    number_in_job: int
    run_name: str
    run_type: str = "SUBMIT_RUN"
    creator_user_name: str
    state: RunStateModel
    status: RunStatus
    tasks: list[RunTask]
    start_time: int
    end_time: int
    run_duration: int
    setup_duration: int = 0
    execution_duration: int
    cleanup_duration: int = 0
    run_page_url: str


class ListRunsResponse(BaseModel):
    runs: list[RunModel]
    has_more: bool
    next_page_token: str | None = None


class NotebookOutput(BaseModel):
    result: str | None = None
    truncated: bool = False


class RunOutputModel(BaseModel):
    metadata: RunModel
    notebook_output: NotebookOutput | None = None
    logs: str | None = None
    logs_truncated: bool | None = None
    error: str | None = None
    error_trace: str | None = None


class WellKnown(BaseModel):
    oidc_endpoint: str = ""  # no OAuth here: clients use the token (DATABRICKS_TOKEN)
