"""A Databricks-compatible API per environment at `/databricks/<env>` (docs/databricks.md).

`DATABRICKS_HOST=<server>/databricks/<env>` and an mlyard token as `DATABRICKS_TOKEN` make Databricks'
clients (databricks-sdk, the CLI) talk to the environment's workspace: Workspace API 2.0 and the one-time
runs of Jobs API 2.1/2.2. It is its own ASGI app (mounted by `create_app`) so that every error, even a
malformed request or an unknown route, has Databricks' shape `{"error_code": ..., "message": ...}`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.parser
import email.policy
import logging
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlyard.api.databricks_schemas import (
    DeleteRequest,
    ExportResponse,
    ImportRequest,
    ListResponse,
    ListRunsResponse,
    MkdirsRequest,
    NotebookOutput,
    ObjectModel,
    RunIdRequest,
    RunModel,
    RunOutputModel,
    RunStateModel,
    RunStatus,
    RunTask,
    SubmitRequest,
    SubmitResponse,
    SubmitTask,
    TerminationDetails,
    WellKnown,
)
from mlyard.api.deps import authenticated
from mlyard.errors import (
    AuthenticationError,
    Conflict,
    InvalidInput,
    MlyardError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    TooManyAttempts,
)
from mlyard.services import databricks
from mlyard.services.auth import Principal
from mlyard.services.platform import Platform
from mlyard.workspace.objects import DirectoryNotEmpty, ObjectInfo, TooLarge

log = logging.getLogger("mlyard.databricks")
MAX_FORM_PARTS = 16
RunId = Annotated[int, Query(ge=0, le=2**63 - 1)]


# -- dependencies -----------------------------------------------------------------------------------


async def _platform(request: Request) -> Platform:  # a coroutine: no thread hand-off (mlyard.api.deps)
    platform: Platform = request.app.state.platform
    return platform


async def _principal(request: Request, platform: Platform = Depends(_platform)) -> Principal:
    addr = request.client.host if request.client else ""
    principal = await authenticated(platform, request.headers.get("authorization"), addr)
    principal.require_environment(request.path_params.get("env", ""))  # an environment's token: its own only
    return principal


async def _reader(principal: Principal = Depends(_principal)) -> Principal:
    principal.require("repo:read")
    return principal


async def _writer(principal: Principal = Depends(_principal)) -> Principal:
    principal.require("workspace:write")
    return principal


router = APIRouter(prefix="/{env}")
Reader = Annotated[Principal, Depends(_reader)]
Writer = Annotated[Principal, Depends(_writer)]
PlatformDep = Annotated[Platform, Depends(_platform)]


# -- workspace --------------------------------------------------------------------------------------


def _object(info: ObjectInfo) -> ObjectModel:
    return ObjectModel(path=info.path, object_type=info.object_type, object_id=info.object_id,
                       created_at=info.created_at, modified_at=info.modified_at, language=info.language,
                       size=info.size)  # fmt: skip


@router.get("/.well-known/databricks-config", response_model_exclude_none=True)
def well_known(env: str) -> WellKnown:
    """The clients' first, unauthenticated probe: the same answer for any name, so it tells nothing."""
    return WellKnown()


@router.get("/api/2.0/workspace/get-status", response_model_exclude_none=True)
def get_status(env: str, path: str, _: Reader, platform: PlatformDep) -> ObjectModel:
    return _object(databricks.objects(platform, env).get_status(path))


@router.get("/api/2.0/workspace/list", response_model_exclude_none=True)
def list_objects(env: str, path: str, _: Reader, platform: PlatformDep) -> ListResponse:
    return ListResponse(objects=[_object(i) for i in databricks.objects(platform, env).list(path)])


@router.post("/api/2.0/workspace/mkdirs")
def mkdirs(env: str, body: MkdirsRequest, _: Writer, platform: PlatformDep) -> dict[str, Any]:
    databricks.objects(platform, env).mkdirs(body.path)
    return {}


@router.post("/api/2.0/workspace/delete")
def delete(env: str, body: DeleteRequest, _: Writer, platform: PlatformDep) -> dict[str, Any]:
    databricks.objects(platform, env).delete(body.path, recursive=body.recursive)
    return {}


@router.post("/api/2.0/workspace/import")
async def import_object(env: str, request: Request, principal: Writer, platform: PlatformDep) -> dict[str, Any]:
    """JSON with base64 `content`, or a multipart form with the raw `content` (databricks-sdk's upload). A
    zipped folder imported at `/ml_apps/<app>/<branch>` is deployed like `mlyard workspace deploy`."""
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            fields = _form(content_type, body)
            data = fields.pop("content", b"")
            text = {k: v.decode("utf-8", "replace") for k, v in fields.items()}
            parsed = ImportRequest.model_validate({**text, "overwrite": text.get("overwrite", "false") == "true"})
        else:
            parsed = ImportRequest.model_validate_json(body or b"{}")
            data = base64.b64decode(parsed.content, validate=True)
    except ValidationError as exc:
        raise InvalidInput("invalid request: " + "; ".join(_problems(exc.errors()))) from None
    except (binascii.Error, ValueError):
        raise InvalidInput("content is not valid base64") from None
    tree = databricks.objects(platform, env)
    deploy = {"deployed_by": principal.username, "environment": env}  # a folder at /ml_apps/<app>/<branch>
    await asyncio.to_thread(tree.import_object, parsed.path, data, fmt=parsed.format or "SOURCE",
                            language=parsed.language, overwrite=parsed.overwrite, manifest=deploy)  # fmt: skip
    return {}


def _form(content_type: str, body: bytes) -> dict[str, bytes]:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise InvalidInput("invalid multipart form: no parts found")
    fields: dict[str, bytes] = {}
    for index, part in enumerate(message.iter_parts()):
        if index >= MAX_FORM_PARTS:
            raise InvalidInput(f"invalid multipart form: more than {MAX_FORM_PARTS} parts")
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str):
            fields[name] = payload if isinstance(payload, bytes) else b""
    return fields


@router.get("/api/2.0/workspace/export", response_model=None)
def export(
    env: str, path: str, _: Reader, platform: PlatformDep, format: str = "SOURCE", direct_download: bool = False
) -> Response | ExportResponse:
    exported = databricks.objects(platform, env).export(path, format)
    if direct_download:
        return Response(exported.content, media_type="application/octet-stream")
    return ExportResponse(content=base64.b64encode(exported.content).decode(), file_type=exported.file_type)


# -- jobs runs --------------------------------------------------------------------------------------

JOBS = "/api/{version}/jobs/runs"
Version = Literal["2.0", "2.1", "2.2"]


def _task_spec(task: SubmitTask) -> databricks.TaskSpec:
    key = task.task_key
    if task.depends_on:
        raise InvalidInput(f"task {key!r}: depends_on is not supported: submit one task per run")
    given = [t for t in (task.notebook_task, task.spark_python_task, task.python_wheel_task) if t is not None]
    if len(given) != 1:
        raise InvalidInput(f"task {key!r} needs exactly one of notebook_task, spark_python_task or python_wheel_task")
    if task.python_wheel_task is None and task.libraries:
        raise InvalidInput(f"task {key!r}: libraries are not installed here; only a python_wheel_task uses one, its "
                           "`whl`")  # fmt: skip
    if task.notebook_task is not None:
        nb = task.notebook_task
        return databricks.check_task(key, "notebook_task", nb.notebook_path, nb.base_parameters)
    if task.spark_python_task is not None:
        py = task.spark_python_task
        return databricks.check_task(key, "spark_python_task", py.python_file, py.parameters)
    wheel = task.python_wheel_task
    assert wheel is not None
    wheels = [library.whl for library in task.libraries if library.whl]
    if len(wheels) != 1 or len(task.libraries) != 1:
        raise InvalidInput(f"task {key!r}: a python_wheel_task needs exactly one library, a `whl` in the workspace "
                           "(pypi, jar and requirements libraries are not installed here)")  # fmt: skip
    args = wheel.parameters or [f"--{name}={value}" for name, value in wheel.named_parameters.items()]
    return databricks.check_task(key, "python_wheel_task", str(wheels[0]), args,
                                 wheel_entry=(wheel.package_name, wheel.entry_point))  # fmt: skip


@router.post(f"{JOBS}/submit")
async def submit(
    env: str, version: Version, body: SubmitRequest, principal: Reader, platform: PlatformDep
) -> SubmitResponse:
    tasks = list(body.tasks)
    if not tasks and (body.notebook_task or body.spark_python_task or body.python_wheel_task):
        tasks = [SubmitTask(task_key="main", notebook_task=body.notebook_task, spark_python_task=body.spark_python_task,
                            python_wheel_task=body.python_wheel_task, libraries=body.libraries)]  # fmt: skip
    if len(tasks) != 1:
        raise InvalidInput(f"a run submitted to mlyard has exactly one task; this one has {len(tasks)}")
    spec = _task_spec(tasks[0])
    run_id = await asyncio.to_thread(databricks.submit, platform, principal, env, run_name=body.run_name, task=spec)
    return SubmitResponse(run_id=run_id)


def _state(state: databricks.RunState) -> tuple[RunStateModel, RunStatus]:
    model = RunStateModel(life_cycle_state=state.life_cycle_state, result_state=state.result_state,
                          state_message=state.state_message,
                          user_cancelled_or_timedout=state.user_cancelled_or_timedout)  # fmt: skip
    v2 = "TERMINATED" if state.life_cycle_state == "INTERNAL_ERROR" else state.life_cycle_state
    details = None
    if state.termination_code and state.termination_type:
        details = TerminationDetails(code=state.termination_code, type=state.termination_type,
                                     message=state.state_message)  # fmt: skip
    return model, RunStatus(state=v2, termination_details=details)


def _run(platform: Platform, run: databricks.RunRecord) -> RunModel:
    state, status = _state(run.state)
    task = RunTask(run_id=run.run_id, task_key=run.task_key, notebook_task=run.task.get("notebook_task"),
                   spark_python_task=run.task.get("spark_python_task"),
                   python_wheel_task=run.task.get("python_wheel_task"), libraries=run.task.get("libraries"),
                   state=state, status=status,
                   start_time=run.start_time, end_time=run.end_time, run_duration=run.run_duration)  # fmt: skip
    return RunModel(run_id=run.run_id, number_in_job=run.run_id, run_name=run.run_name,
                    creator_user_name=run.creator_user_name, state=state, status=status, tasks=[task],
                    start_time=run.start_time, end_time=run.end_time, run_duration=run.run_duration,
                    execution_duration=run.run_duration,
                    run_page_url=f"{platform.settings.url}/api/v1/jobs/{run.run_id}/logs")  # fmt: skip


@router.get(f"{JOBS}/get", response_model_exclude_none=True)
def get_run(env: str, version: Version, run_id: RunId, _: Reader, platform: PlatformDep) -> RunModel:
    return _run(platform, databricks.get_run(platform, env, run_id))


@router.get(f"{JOBS}/get-output", response_model_exclude_none=True)
def get_output(env: str, version: Version, run_id: RunId, _: Reader, platform: PlatformDep) -> RunOutputModel:
    output = databricks.run_output(platform, env, run_id)
    notebook = None
    if "notebook_task" in output.run.task and output.run.state.life_cycle_state == "TERMINATED":
        notebook = NotebookOutput(result=output.notebook_result, truncated=output.notebook_truncated)
    return RunOutputModel(metadata=_run(platform, output.run), notebook_output=notebook, logs=output.logs,
                          logs_truncated=output.logs_truncated if output.logs is not None else None,
                          error=output.error, error_trace=output.error_trace)  # fmt: skip


@router.get(f"{JOBS}/list", response_model_exclude_none=True)
def list_runs(
    env: str,
    version: Version,
    _: Reader,
    platform: PlatformDep,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
    limit: Annotated[int, Query(ge=0, le=databricks.MAX_LIST_LIMIT)] = 20,
    page_token: str | None = None,
    active_only: bool = False,
    completed_only: bool = False,
) -> ListRunsResponse:
    if page_token:
        if not page_token.isdigit() or int(page_token) > 10_000:
            raise InvalidInput(f"invalid page_token {page_token[:40]!r}: use the next_page_token of a previous page")
        offset = int(page_token)
    runs, more = databricks.list_runs(platform, env, offset=offset, limit=limit or 20, active_only=active_only,
                                      completed_only=completed_only)  # fmt: skip
    token = str(offset + len(runs)) if more else None
    return ListRunsResponse(runs=[_run(platform, r) for r in runs], has_more=more, next_page_token=token)


@router.post(f"{JOBS}/cancel")
def cancel_run(
    env: str, version: Version, body: RunIdRequest, principal: Reader, platform: PlatformDep
) -> dict[str, Any]:
    databricks.cancel_run(platform, principal, env, body.run_id)
    return {}


# -- errors in Databricks' shape --------------------------------------------------------------------


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status_code=status, headers=headers)


_CODES: list[tuple[type[MlyardError], int, str]] = [
    (NotFound, 404, "RESOURCE_DOES_NOT_EXIST"),
    (Conflict, 409, "RESOURCE_ALREADY_EXISTS"),
    (DirectoryNotEmpty, 400, "DIRECTORY_NOT_EMPTY"),
    (TooLarge, 400, "MAX_NOTEBOOK_SIZE_EXCEEDED"),
    (AuthenticationError, 401, "UNAUTHENTICATED"),
    (PermissionDenied, 403, "PERMISSION_DENIED"),
    (TooManyAttempts, 429, "REQUEST_LIMIT_EXCEEDED"),
    (PayloadTooLarge, 413, "MAX_NOTEBOOK_SIZE_EXCEEDED"),
    (InvalidInput, 400, "INVALID_PARAMETER_VALUE"),
]


def error_code(exc: MlyardError) -> tuple[int, str]:
    """Databricks' HTTP status and error_code for one of mlyard's errors."""
    for kind, status, code in _CODES:
        if isinstance(exc, kind):
            return status, code
    if exc.http_status < 500:
        return exc.http_status, "INVALID_PARAMETER_VALUE" if exc.http_status == 400 else "BAD_REQUEST"
    return 500, "INTERNAL_ERROR"


def _problems(errors: Sequence[Any]) -> list[str]:
    problems = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
        problems.append(f"{where}: {err.get('msg', 'invalid value')}" if where else str(err.get("msg")))
    return problems


def create_app(platform: Platform) -> FastAPI:
    """The ASGI app mounted at `/databricks` (its routes start with `/<env>`)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state.platform = platform
    app.include_router(router)

    @app.exception_handler(MlyardError)
    async def _mlyard(_request: Request, exc: MlyardError) -> JSONResponse:
        status, code = error_code(exc)
        if status >= 500:
            log.error("databricks API error: %s", exc.message)
        headers = {"WWW-Authenticate": 'Bearer realm="mlyard"'} if status == 401 else None
        if isinstance(exc, TooManyAttempts):
            headers = {"Retry-After": str(exc.retry_after)}
        return error_response(status, code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "INVALID_PARAMETER_VALUE", "invalid request: " + "; ".join(_problems(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code in (404, 405):
            return error_response(404, "ENDPOINT_NOT_FOUND",
                                  f"No API found for '{request.method} {request.url.path}' (docs/databricks.md "
                                  "lists the endpoints mlyard serves)")  # fmt: skip
        return error_response(exc.status_code, "BAD_REQUEST", str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in the Databricks API")
        return error_response(500, "INTERNAL_ERROR", f"internal error ({type(exc).__name__}); see the server log")

    return app
