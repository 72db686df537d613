"""databricks-sdk's WorkspaceClient (a client nobody here wrote) against `<server>/databricks/<env>`.

`DATABRICKS_HOST=<server>/databricks/dev` and an mlyard token: import a folder, list, get-status, export,
delete; submit a notebook run and read its output; errors in Databricks' shape (the SDK's own classes).
"""

from __future__ import annotations

import base64
import io
import json
import time
import zipfile
from collections.abc import Iterator

import httpx
import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import (
    BadRequest,
    InvalidParameterValue,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    Unauthenticated,
)
from databricks.sdk.service import compute, jobs
from databricks.sdk.service.workspace import ExportFormat, ImportFormat, Language, ObjectType

from tests.conftest import TLS, Server

pytestmark = pytest.mark.slow

HEADER = "# Databricks notebook source\n"
NOTEBOOK = HEADER + """import os
print("hello from", os.path.basename(os.getcwd()))
# COMMAND ----------
dbutils.widgets.text("who", "nobody")
who = dbutils.widgets.get("who")
print("greeting", who)
try:
    dbutils.notebook.exit(f"done:{who}")
except Exception:
    print("exit must not be caught by `except Exception`")
print("never printed")
"""
FAILING = HEADER + "raise ValueError('bad input')\n"
SLOW = "import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n"


def client(server: Server, token: str | None = None) -> WorkspaceClient:
    return WorkspaceClient(host=f"{server.url}/databricks/dev", token=token or server.token, auth_type="pat")


@pytest.fixture(scope="module")
def ws(server: Server) -> Iterator[WorkspaceClient]:
    yield client(server)


def folder_zip(files: dict[str, str], top: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, text in files.items():
            bundle.writestr(f"{top}/{name}" if top else name, text)
    return buffer.getvalue()


def wait(ws: WorkspaceClient, run_id: int, timeout: float = 120) -> jobs.Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = ws.jobs.get_run(run_id)
        assert run.state is not None
        if run.state.life_cycle_state in (jobs.RunLifeCycleState.TERMINATED, jobs.RunLifeCycleState.INTERNAL_ERROR):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish")


def test_import_a_folder_list_status_export_delete(server: Server, ws: WorkspaceClient) -> None:
    ws.workspace.mkdirs("/ml_apps/dbx/feature")
    archive = folder_zip({"src/pkg/notebooks/train.py": NOTEBOOK, "src/pkg/util.py": "X = 1\n",
                          "README.md": "# readme\n"}, top="x")  # fmt: skip
    ws.workspace.import_("/ml_apps/dbx/feature/x", content=base64.b64encode(archive).decode(),
                         format=ImportFormat.SOURCE)  # fmt: skip

    # a folder at /ml_apps/<app>/<branch> is a deploy of the branch, as `mlyard workspace deploy` makes it
    shown = json.loads(server.cli("workspace", "show", "--env", "dev", "--app", "dbx", "--branch", "feature/x",
                                  "--json").stdout)  # fmt: skip
    assert shown["deployed_by"] == "admin" and shown["environment"] == "dev" and len(shown["files"]) == 3
    listed = {o.path: o for o in ws.workspace.list("/ml_apps/dbx/feature/x/src/pkg")}
    assert set(listed) == {"/ml_apps/dbx/feature/x/src/pkg/notebooks", "/ml_apps/dbx/feature/x/src/pkg/util.py"}
    assert listed["/ml_apps/dbx/feature/x/src/pkg/notebooks"].object_type == ObjectType.DIRECTORY
    assert listed["/ml_apps/dbx/feature/x/src/pkg/util.py"].object_type == ObjectType.FILE
    notebook = ws.workspace.get_status("/ml_apps/dbx/feature/x/src/pkg/notebooks/train")
    assert notebook.object_type == ObjectType.NOTEBOOK and notebook.language == Language.PYTHON
    assert {o.path for o in ws.workspace.list("/ml_apps/dbx/feature/x", recursive=True)} >= {
        "/ml_apps/dbx/feature/x/README.md", "/ml_apps/dbx/feature/x/src/pkg/notebooks/train"}
    assert ws.workspace.get_status("/Workspace/ml_apps/dbx/feature/x/README.md").size == len("# readme\n")

    exported = ws.workspace.export("/ml_apps/dbx/feature/x/src/pkg/notebooks/train", format=ExportFormat.SOURCE)
    assert base64.b64decode(exported.content or "").decode() == NOTEBOOK
    with ws.workspace.download("/ml_apps/dbx/feature/x/src/pkg/util.py", format=ExportFormat.AUTO) as handle:
        assert handle.read() == b"X = 1\n"
    whole = ws.workspace.export("/ml_apps/dbx/feature/x", format=ExportFormat.AUTO)
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode(whole.content or ""))).namelist()
    assert sorted(names) == ["x/.mlyard-deploy.json", "x/README.md", "x/src/pkg/notebooks/train.py",
                             "x/src/pkg/util.py"]  # fmt: skip
    only_notebooks = ws.workspace.export("/ml_apps/dbx/feature/x", format=ExportFormat.SOURCE)
    assert zipfile.ZipFile(io.BytesIO(base64.b64decode(only_notebooks.content or ""))).namelist() == [
        "x/src/pkg/notebooks/train.py"]

    ws.workspace.delete("/ml_apps/dbx/feature/x/src/pkg/notebooks/train")
    with pytest.raises(ResourceDoesNotExist, match=r"Path \(/ml_apps/dbx/feature/x/src/pkg/notebooks/train\)"):
        ws.workspace.get_status("/ml_apps/dbx/feature/x/src/pkg/notebooks/train")
    with pytest.raises(BadRequest, match="is not empty") as refused:
        ws.workspace.delete("/ml_apps/dbx/feature/x")
    assert refused.value.error_code == "DIRECTORY_NOT_EMPTY"
    ws.workspace.delete("/ml_apps/dbx/feature/x", recursive=True)
    assert [o.path for o in ws.workspace.list("/ml_apps/dbx")] == []  # as `mlyard workspace remove`: no empty folders
    gone = server.cli("workspace", "show", "--env", "dev", "--app", "dbx", "--branch", "feature/x", check=False)
    assert gone.returncode == 3


def test_upload_auto_source_raw_and_overwrite(ws: WorkspaceClient) -> None:
    ws.workspace.mkdirs("/Repos/ana")
    ws.workspace.upload("/Repos/ana/explore.py", (HEADER + "print(1)\n").encode(), format=ImportFormat.AUTO)
    assert ws.workspace.get_status("/Repos/ana/explore").object_type == ObjectType.NOTEBOOK  # extension dropped
    ws.workspace.upload("/Repos/ana/plain.py", b"print(2)\n", format=ImportFormat.AUTO)
    assert ws.workspace.get_status("/Repos/ana/plain.py").object_type == ObjectType.FILE  # no header: a file
    ws.workspace.upload("/Repos/ana/query", b"select 1", format=ImportFormat.SOURCE, language=Language.SQL)
    query = ws.workspace.get_status("/Repos/ana/query")
    assert query.object_type == ObjectType.NOTEBOOK and query.language == Language.SQL
    exported = base64.b64decode(ws.workspace.export("/Repos/ana/query").content or "")
    assert exported == b"-- Databricks notebook source\nselect 1"
    ws.workspace.upload("/Repos/ana/data.csv", b"a,b\n", format=ImportFormat.RAW)

    with pytest.raises(ResourceAlreadyExists, match=r"Path \(/Repos/ana/explore\) already exists"):
        ws.workspace.upload("/Repos/ana/explore.py", (HEADER + "print(3)\n").encode(), format=ImportFormat.AUTO)
    ws.workspace.upload("/Repos/ana/explore.py", (HEADER + "print(3)\n").encode(), format=ImportFormat.AUTO,
                        overwrite=True)  # fmt: skip
    with ws.workspace.download("/Repos/ana/explore") as handle:
        assert handle.read() == (HEADER + "print(3)\n").encode()
    with pytest.raises(ResourceAlreadyExists, match="cannot become a folder"):
        ws.workspace.mkdirs("/Repos/ana/data.csv/sub")


def test_errors_have_databricks_shape_and_sdk_classes(server: Server, ws: WorkspaceClient) -> None:
    with pytest.raises(NotFound) as missing:
        ws.workspace.get_status("/nowhere/at/all")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(ResourceDoesNotExist, match=r"The parent folder \(/no/parent\) does not exist"):
        ws.workspace.upload("/no/parent/x.py", b"print(1)\n", format=ImportFormat.AUTO)
    with pytest.raises(InvalidParameterValue, match="format DBC is not supported"):
        ws.workspace.import_("/Repos/x.dbc", content="AAAA", format=ImportFormat.DBC)
    with pytest.raises(InvalidParameterValue, match=r"'\.\.' segments are not allowed"):
        ws.workspace.get_status("/ml_apps/../../etc")
    with pytest.raises(InvalidParameterValue, match="a python_wheel_task needs exactly one library"):
        ws.jobs.submit(run_name="wheel", tasks=[jobs.SubmitTask(task_key="w", python_wheel_task=jobs.PythonWheelTask(
            package_name="p", entry_point="main"))])
    with pytest.raises(ResourceDoesNotExist):
        ws.jobs.get_run(987654321)
    with pytest.raises(Unauthenticated):
        list(client(server, token="myd_" + "x" * 43).workspace.list("/"))
    with pytest.raises(NotFound, match="environment 'nope' not found"):
        nope = WorkspaceClient(host=f"{server.url}/databricks/nope", token=server.token, auth_type="pat")
        list(nope.workspace.list("/"))

    raw = httpx.get(f"{server.url}/databricks/dev/api/2.0/workspace/get-status", params={"path": "/zzz"},
                    headers={"Authorization": f"Bearer {server.token}"}, verify=TLS)  # fmt: skip
    assert raw.status_code == 404 and raw.json() == {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                                     "message": "Path (/zzz) doesn't exist."}  # fmt: skip
    bad = httpx.post(f"{server.url}/databricks/dev/api/2.0/workspace/mkdirs", content=b"{not json",
                     headers={"Authorization": f"Bearer {server.token}"}, verify=TLS)  # fmt: skip
    assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    nowhere = httpx.get(f"{server.url}/databricks/dev/api/2.0/clusters/list",
                        headers={"Authorization": f"Bearer {server.token}"}, verify=TLS)  # fmt: skip
    assert nowhere.status_code == 404 and nowhere.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_a_read_only_token_cannot_write_or_run(server: Server, ws: WorkspaceClient) -> None:
    made = server.client().post("/api/v1/tokens", json={"name": "dbx-reader", "scopes": ["repo:read"]})
    reader = client(server, token=made.json()["token"])
    assert reader.workspace.get_status("/").object_type == ObjectType.DIRECTORY
    with pytest.raises(PermissionDenied, match="lacks the 'workspace:write' scope"):
        reader.workspace.mkdirs("/Repos/reader")
    ws.workspace.mkdirs("/Repos/ro")
    ws.workspace.upload("/Repos/ro/nb", NOTEBOOK.encode(), language=Language.PYTHON)
    with pytest.raises(PermissionDenied, match="lacks the 'pipelines:run' scope"):
        reader.jobs.submit(run_name="no", tasks=[jobs.SubmitTask(task_key="t", notebook_task=jobs.NotebookTask(
            notebook_path="/Repos/ro/nb"))])


def test_notebook_run_and_its_output(ws: WorkspaceClient) -> None:
    ws.workspace.mkdirs("/Shared/demo")
    ws.workspace.upload("/Shared/demo/greet", NOTEBOOK.encode(), format=ImportFormat.SOURCE, language=Language.PYTHON)
    waiter = ws.jobs.submit(run_name="greet", tasks=[jobs.SubmitTask(
        task_key="greet", notebook_task=jobs.NotebookTask(notebook_path="/Shared/demo/greet",
                                                          base_parameters={"who": "ana"}))])  # fmt: skip
    run = waiter.result()
    assert run.state is not None and run.state.result_state == jobs.RunResultState.SUCCESS
    assert run.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED and run.run_name == "greet"
    assert run.tasks is not None and run.tasks[0].task_key == "greet" and run.tasks[0].run_id is not None
    output = ws.jobs.get_run_output(run.tasks[0].run_id)
    assert output.notebook_output is not None and output.notebook_output.result == "done:ana"
    assert output.error is None
    assert run.run_id in [r.run_id for r in ws.jobs.list_runs(completed_only=True)]

    ws.workspace.upload("/Shared/demo/fail", FAILING.encode(), format=ImportFormat.AUTO, language=Language.PYTHON)
    failed = wait(ws, ws.jobs.submit(run_name="fail", tasks=[jobs.SubmitTask(
        task_key="f", notebook_task=jobs.NotebookTask(notebook_path="/Shared/demo/fail"))]).run_id)  # fmt: skip
    assert failed.state is not None and failed.state.result_state == jobs.RunResultState.FAILED
    assert failed.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    out = ws.jobs.get_run_output(failed.run_id or 0)
    assert out.error == "the entry point exited with code 1"
    assert out.error_trace is not None and "ValueError: bad input" in out.error_trace


def test_python_file_run_logs_and_cancel(ws: WorkspaceClient) -> None:
    ws.workspace.mkdirs("/Shared/py")
    ws.workspace.upload("/Shared/py/args.py", b"import sys\nprint('args', sys.argv[1:])\n", format=ImportFormat.AUTO)
    run = ws.jobs.submit(run_name="args", tasks=[jobs.SubmitTask(task_key="a", spark_python_task=jobs.SparkPythonTask(
        python_file="/Shared/py/args.py", parameters=["--epochs", "3"]))]).result()
    assert run.state is not None and run.state.result_state == jobs.RunResultState.SUCCESS
    output = ws.jobs.get_run_output(run.run_id or 0)
    assert output.logs is not None and "args ['--epochs', '3']" in output.logs

    ws.workspace.upload("/Shared/py/slow.py", SLOW.encode(), format=ImportFormat.AUTO)
    slow = ws.jobs.submit(run_name="slow", tasks=[jobs.SubmitTask(task_key="s", spark_python_task=jobs.SparkPythonTask(
        python_file="/Shared/py/slow.py"))]).run_id or 0
    assert slow in [r.run_id for r in ws.jobs.list_runs(active_only=True)]
    canceled = ws.jobs.cancel_run(slow).result()
    assert canceled.state is not None and canceled.state.result_state == jobs.RunResultState.CANCELED
    assert canceled.state.user_cancelled_or_timedout


def wheel(package: str) -> bytes:
    """A minimal pure-Python wheel: `greet` is an entry point, `shout` a plain function of the package."""
    code = ("import sys\n\ndef main():\n    print('wheel args', sys.argv[1:])\n    return 0\n\n"
            "def shout():\n    print('SHOUT', sys.argv[1:])\n    return 3\n")  # fmt: skip
    info = f"{package}-0.1.dist-info"
    return folder_zip({
        f"{package}/__init__.py": code,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[console_scripts]\ngreet = {package}:main\n",
        f"{info}/RECORD": "",
    })  # fmt: skip


def test_python_wheel_run(ws: WorkspaceClient) -> None:
    ws.workspace.mkdirs("/Shared/wheels")
    ws.workspace.upload("/Shared/wheels/dbxwheel-0.1-py3-none-any.whl", wheel("dbxwheel"), format=ImportFormat.RAW)
    library = [compute.Library(whl="/Shared/wheels/dbxwheel-0.1-py3-none-any.whl")]
    run = ws.jobs.submit(run_name="wheel", tasks=[jobs.SubmitTask(task_key="w", libraries=library,
        python_wheel_task=jobs.PythonWheelTask(package_name="dbxwheel", entry_point="greet",
                                               named_parameters={"epochs": "3"}))]).result()  # fmt: skip
    assert run.state is not None and run.state.result_state == jobs.RunResultState.SUCCESS
    output = ws.jobs.get_run_output(run.run_id or 0)
    assert output.logs is not None and "wheel args ['--epochs=3']" in output.logs
    plain = wait(ws, ws.jobs.submit(run_name="shout", tasks=[jobs.SubmitTask(task_key="s", libraries=library,
        python_wheel_task=jobs.PythonWheelTask(package_name="dbxwheel", entry_point="shout",
                                               parameters=["x"]))]).run_id or 0)  # fmt: skip
    assert plain.state is not None and plain.state.result_state == jobs.RunResultState.FAILED
    out = ws.jobs.get_run_output(plain.run_id or 0)
    assert out.error == "the entry point exited with code 3" and "SHOUT ['x']" in (out.error_trace or "")


def test_mlyard_jobs_cancel_stops_a_submitted_run(server: Server, ws: WorkspaceClient) -> None:
    ws.workspace.mkdirs("/Shared/cli")
    ws.workspace.upload("/Shared/cli/slow.py", SLOW.encode(), format=ImportFormat.AUTO)
    task = jobs.SubmitTask(task_key="s", spark_python_task=jobs.SparkPythonTask(python_file="/Shared/cli/slow.py"))
    run_id = ws.jobs.submit(run_name="slow", tasks=[task]).run_id or 0
    out = server.cli("jobs", "cancel", str(run_id))
    assert out.stdout.startswith(f"job {run_id}: cancel requested")
    run = wait(ws, run_id)
    assert run.state is not None and run.state.result_state == jobs.RunResultState.CANCELED
    assert run.state.state_message == "canceled by admin"
    shown = server.cli("jobs", "show", str(run_id), "--json").stdout
    assert '"state": "canceled"' in shown and '"entrypoint": "/Shared/cli/slow.py"' in shown
