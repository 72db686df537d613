"""`mlyard jobs run` on code deployed in the dev workspace: real training, real MLflow registration."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from mlyard.scaffold.render import TEMPLATE_DIR, default_answers, render_project
from mlyard.services.auth import environment_of
from tests.conftest import Server, start_server
from tests.models.test_model_ci import laptop

pytestmark = pytest.mark.slow

PEEK = """import os, sys
for name in ("cli.json", "secret.key", "mlyard.db"):
    try:
        print(name, open(os.path.join(sys.argv[1], name), "rb").read()[:40])
    except OSError as exc:
        print(name, "unreadable:", type(exc).__name__)
print("variables:", " ".join(sorted(os.environ)))
"""


@pytest.fixture(scope="module")
def deployed(server: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo project rendered from the template and deployed to dev as app `jobsdemo`."""
    project = tmp_path_factory.mktemp("jobsdemo") / "jobsdemo"
    render_project(TEMPLATE_DIR, project, default_answers("jobsdemo", environment="dev", demo=True,
                                                          default_branch="master"))
    (project / "src" / "jobsdemo" / "notebooks" / "broken.py").write_text("raise SystemExit(7)\n")
    (project / "src" / "jobsdemo" / "notebooks" / "peek.py").write_text(PEEK)
    server.cli("workspace", "deploy", "--env", "dev", "--app", "jobsdemo", "--branch", "master", "--source",
               str(project), "--commit", "abc123")
    return "jobsdemo"


DURATION = r"(\d+\.\d s|\d+ min \d+ s)"


def test_job_trains_and_registers_a_version(server: Server, deployed: str) -> None:
    out = server.cli("jobs", "run", "--env", "dev", "--app", deployed, "train")
    assert "registered model: jobsdemo version 1" in out.stdout
    assert re.search(rf"job \d+ succeeded in {DURATION} ", out.stdout), out.stdout  # a duration with its unit
    jobs = json.loads(server.cli("jobs", "list", "--app", deployed, "--json").stdout)
    job = jobs[0]
    assert job["state"] == "succeeded" and job["exit_code"] == 0 and job["commit"] == "abc123"
    assert job["entrypoint"] == "src/jobsdemo/notebooks/train.py" and len(job["mlflow_run_ids"]) == 1
    assert job["duration_seconds"] > 0
    models = json.loads(server.cli("models", "show", "jobsdemo", "--json").stdout)
    assert [str(v["version"]) for v in models["versions"]] == ["1"]
    assert models["versions"][0]["run_id"] == job["mlflow_run_ids"][0]
    assert models["versions"][0]["metrics"]["accuracy"] > 0.9
    listed = server.cli("jobs", "list", "--app", deployed).stdout.splitlines()
    assert "DURATION" in listed[0].split() and re.search(rf" {DURATION} ", listed[1]), listed
    assert re.search(rf"^duration +{DURATION}$", server.cli("jobs", "show", str(job["id"])).stdout, re.M)
    log = server.cli("jobs", "logs", str(job["id"])).stdout
    assert "MLflow run id:" in log
    artifacts = server.home / "envs" / "dev" / "mlartifacts" / "jobsdemo"
    assert artifacts.is_dir() and any(artifacts.rglob("MLmodel"))
    assert not list(Path(server.home / "envs" / "dev" / "workspace").rglob("mlruns"))


def test_job_errors(server: Server, deployed: str) -> None:
    failed = server.cli("jobs", "run", "--env", "dev", "--app", deployed, "broken", check=False)
    assert failed.returncode == 1 and "the entry point exited with code 7" in failed.stderr
    missing = server.cli("jobs", "run", "--env", "dev", "--app", deployed, "nope", check=False)
    assert missing.returncode == 3 and "no entry point 'nope'" in missing.stderr and "train" in missing.stderr
    undeployed = server.cli("jobs", "run", "--env", "dev", "--app", "ghost", "train", check=False)
    assert undeployed.returncode == 3 and "ghost" in undeployed.stderr
    for out in (failed, missing, undeployed):
        assert "Traceback" not in out.stderr


def test_an_entry_point_sees_nothing_of_the_server(server: Server, deployed: str) -> None:
    """Issue 10: `jobs run` user code ran with the server's environment and could read its data directory."""
    out = server.cli("jobs", "run", "--env", "dev", "--app", deployed, "peek", str(server.home))
    for name in ("cli.json", "secret.key", "mlyard.db"):
        assert f"{name} unreadable: FileNotFoundError" in out.stdout
    assert server.token not in out.stdout
    variables = next(line for line in out.stdout.splitlines() if line.startswith("variables:")).split()[1:]
    assert "MLFLOW_TRACKING_URI" in variables and "HOME" in variables
    assert "MLYARD_HOME" not in variables and "MLYARD_TOKEN" not in variables


def test_an_entry_point_is_stopped_at_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLYARD_JOBS_TIMEOUT_MINUTES", "0.05")
    server = start_server(tmp_path, "--agents", "0")
    try:
        source = tmp_path / "sleepy"
        source.mkdir()
        (source / "sleepy.py").write_text("import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n")
        server.cli("workspace", "deploy", "--env", "dev", "--app", "sleepy", "--branch", "master", "--source",
                   str(source))  # fmt: skip
        out = server.cli("jobs", "run", "--env", "dev", "--app", "sleepy", "sleepy", check=False)
        assert out.returncode == 1 and "sleeping" in out.stdout
        expected = "the entry point ran longer than the maximum of 0.05 minutes (MLYARD_JOBS_TIMEOUT_MINUTES)"
        assert expected in out.stderr
        [job] = json.loads(server.cli("jobs", "list", "--app", "sleepy", "--json").stdout)
        assert job["state"] == "failed" and job["exit_code"] is None
    finally:
        server.stop()


# Logs a run with an artifact to the experiment /ml_apps/<app> and registers a version of model <app> from it,
# wherever MLFLOW_TRACKING_URI points (a laptop: the server's /mlflow/dev; a workspace job: what the job gets).
TRAIN = """import os, sys
import mlflow
app = sys.argv[1]
mlflow.set_experiment(f"/ml_apps/{app}")
with mlflow.start_run() as run:
    mlflow.log_text("trained by " + os.environ.get("MLYARD_JOB_ID", "a laptop"), "notes/who.txt")
client = mlflow.MlflowClient()
if not client.search_registered_models(f"name = '{app}'"):
    client.create_registered_model(app)
version = client.create_model_version(app, f"{run.info.artifact_uri}/notes", run_id=run.info.run_id).version
print("experiment", run.info.experiment_id, "run", run.info.run_id, "version", version)
if len(sys.argv) > 2:  # in the job: its MLflow settings, and the store's files out of reach
    print("store readable:", os.path.exists(os.path.join(sys.argv[2], "envs", "dev", "mlflow.db")))
    print("token:", os.environ["MLFLOW_TRACKING_TOKEN"])
"""


def logged_line(out: str) -> list[str]:
    """`experiment ID run ID version N` of TRAIN's output (MLflow prints its run links too)."""
    return next(line for line in out.splitlines() if line.startswith("experiment ")).split()


def test_a_job_logs_to_an_experiment_a_laptop_created(server: Server, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A job logged to the store's files directly: an experiment first created through /mlflow/<env> (from a
    laptop: `mlflow-artifacts:/` artifacts) failed it (`When an mlflow-artifacts URI was supplied, the tracking
    URI must be a valid http or https URI`), and with it the monitor pipeline's retraining."""
    from mlflow import MlflowClient

    app = "laptopjob"
    source = tmp_path / app
    source.mkdir()
    (source / "train.py").write_text(TRAIN)
    first = logged_line(laptop(server, source, "train.py", app))
    assert first[4:] == ["version", "1"], first
    server.cli("workspace", "deploy", "--env", "dev", "--app", app, "--branch", "master", "--source", str(source))
    out = server.cli("jobs", "run", "--env", "dev", "--app", app, "train", app, str(server.home), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    said = dict(line.split(": ", 1) for line in out.stdout.splitlines() if line.startswith(("store", "token")))
    logged = logged_line(out.stdout)
    assert logged[1] == first[1] and logged[4:] == ["version", "2"], out.stdout  # the laptop's experiment
    assert said["store readable"] == "False"  # through the tracking server only
    [job] = json.loads(server.cli("jobs", "list", "--app", app, "--json").stdout)
    assert job["state"] == "succeeded" and job["mlflow_run_ids"] == [logged[3]]
    # the artifact went through the tracking server, into the environment's store
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
    client = MlflowClient(tracking_uri=f"{server.url}/mlflow/dev", registry_uri=f"{server.url}/mlflow/dev")
    path = client.download_artifacts(logged[3], "notes/who.txt", str(tmp_path / "got"))
    assert Path(path).read_text() == f"trained by {job['id']}"
    assert client.get_model_version(app, "2").run_id == logged[3]
    # the job's token was the job's only: revoked when it ended
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {said['token']}"}) as api:
        answer = api.get("/mlflow/dev/api/2.0/mlflow/experiments/get", params={"experiment_id": logged[1]})
    assert answer.status_code == 401 and "revoked" in answer.text, answer.text


def test_a_job_token_is_bound_to_its_environment() -> None:
    assert environment_of("env-dev", "workspace-job-12", is_admin=False) == "dev"
    assert environment_of("env-dev", "variable-group", is_admin=False) == "dev"
    assert environment_of("env-dev", "workspace-job-x", is_admin=False) is None  # not a job's token name
    assert environment_of("ana", "workspace-job-12", is_admin=False) is None  # not a service identity: unbound


PROBE = """import os, sys
print("python", "warm" if "decimal" in sys.modules else "cold")  # the warm sandboxes pre-import `decimal` here
folder = os.path.dirname(os.getcwd())  # the job's folder (the entry point runs in its code/)
print("beside it", sorted(os.listdir(os.path.dirname(folder))))
print("home inside", os.environ["HOME"].startswith(folder + "/"))
sys.stdout.flush()
if "sleepy" in sys.argv[0]:
    import time
    time.sleep(600)
sys.exit(7 if "fail" in sys.argv[0] else 0)
"""


def test_jobs_after_the_first_run_in_warm_sandboxes_that_see_only_their_own_folder(tmp_path: Path) -> None:
    """Warm sandboxes of workspace jobs start once a first job ended; a job then runs there (its Python a fork of
    the pre-imported one), sees its own folder only, logs and exits as a cold job does (canceled too), and its folder
    is back in its place after it. /health counts the sandboxes that wait."""
    warm = {"MLYARD_STEP_WARM": "1", "MLYARD_STEP_WARM_IDLE": "0", "MLYARD_STEP_WARM_MODULES": "decimal"}
    server = start_server(tmp_path, "--agents", "0", env=warm)
    try:
        source = tmp_path / "warmjobs"
        (source / "src" / "warmjobs" / "notebooks").mkdir(parents=True)
        for name in ("probe", "fail", "sleepy"):
            (source / "src" / "warmjobs" / "notebooks" / f"{name}.py").write_text(PROBE)
        server.cli("workspace", "deploy", "--env", "dev", "--app", "warmjobs", "--branch", "master", "--source",
                   str(source))  # fmt: skip

        def waiting() -> int:
            deadline = time.monotonic() + 120
            while (count := httpx.get(f"{server.url}/health", timeout=30).json()["warm_job_sandboxes"]) < 1:
                assert time.monotonic() < deadline, "no warm sandbox for jobs"
                time.sleep(0.1)
            return int(count)

        first = server.cli("jobs", "run", "--env", "dev", "--app", "warmjobs", "probe").stdout
        assert "python cold" in first  # none before a first job
        assert waiting() == 1
        second = server.cli("jobs", "run", "--env", "dev", "--app", "warmjobs", "probe").stdout
        assert "python warm" in second and "home inside True" in second
        jobs = json.loads(server.cli("jobs", "list", "--app", "warmjobs", "--json").stdout)
        assert f"beside it ['{jobs[0]['id']}']" in second  # its own folder only (in the sandboxes' slot)
        folder = server.home / "jobs" / str(jobs[0]["id"])
        assert folder.is_dir() and not folder.is_symlink() and "python warm" in (folder / "job.log").read_text()
        assert waiting() == 1  # its replacement
        failed = server.cli("jobs", "run", "--env", "dev", "--app", "warmjobs", "fail", check=False)
        assert failed.returncode == 1 and "python warm" in failed.stdout
        assert "the entry point exited with code 7" in failed.stderr
        assert not list((server.home / "jobs").glob("slot-*/*"))  # the slot is empty between jobs
        assert waiting() == 1
        with server.client() as api:  # a warm job canceled: its sandbox's group stopped, its folder back
            started = api.post("/api/v1/jobs", json={"env": "dev", "app": "warmjobs", "entrypoint": "sleepy"})
            job_id = started.json()["id"]
            log = server.home / "jobs" / str(job_id) / "job.log"
            deadline = time.monotonic() + 60
            while not (log.is_file() and "python warm" in log.read_text()):
                assert time.monotonic() < deadline, "the job did not start"
                time.sleep(0.1)
            assert api.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
            while (state := api.get(f"/api/v1/jobs/{job_id}").json()["state"]) not in ("canceled", "failed"):
                assert time.monotonic() < deadline + 60, state
                time.sleep(0.1)
        assert state == "canceled"
        folder = server.home / "jobs" / str(job_id)
        assert folder.is_dir() and not folder.is_symlink() and not list((server.home / "jobs").glob("slot-*/*"))
    finally:
        server.stop()
