"""`mlyard quickstart`: from nothing to a live model endpoint, one step after another, through the
same API, git and CLI a person would use.

init a home (if there is none) -> start the server -> create the demo project -> permit its code
deployment -> train in the dev workspace -> stage the version to Staging -> push to the default
branch so model CI promotes it -> run model CD (the environment's deployments target) -> score a sample.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlyard.client import Client
from mlyard.errors import OperationFailed
from mlyard.protocol import State
from mlyard.views import RunView

FINAL = {"succeeded", "succeededWithIssues", "failed", "canceled", "skipped"}
MODEL = "my-model"
ENV = "dev"


@dataclass
class Quickstart:
    home: Path
    say: Callable[[str], None]
    port: int = 8765
    model: str = MODEL
    env: str = ENV
    server: subprocess.Popen[bytes] | None = None
    api: Client | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    # -- steps -----------------------------------------------------------------------------------
    def init(self) -> None:
        proc = self._mlyard("init", "--port", str(self.port), "--json")
        info = json.loads(proc.stdout)
        self.facts.update(url=info["url"], username=info["username"], created_home=info["created"])
        self.api = Client(info["url"], info["token"], timeout=120)

    def start_server(self) -> None:
        assert self.api is not None
        try:
            self.api.get("/health")
            self.facts["server"] = "already running"
            return
        except Exception:
            pass
        log = open(self.home / "logs" / "server.log", "ab")  # noqa: SIM115 - kept open for the child
        env = {**os.environ, "MLYARD_HOME": str(self.home)}
        self.server = subprocess.Popen(
            [sys.executable, "-m", "mlyard", "server"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise OperationFailed(f"the server exited (code {self.server.returncode}); see {log.name}")
            try:
                self.api.get("/health")
                self.facts["server"] = f"started (pid {self.server.pid}, log {log.name})"
                return
            except Exception:
                time.sleep(0.2)
        raise OperationFailed(f"the server did not start within 60 s; see {log.name}")

    def create_project(self) -> None:
        api = self._api()
        try:
            api.repos.get(self.model)
            self.model = f"{MODEL}-{int(time.time())}"  # a second quickstart in the same home
        except Exception:
            pass
        run = api.pipelines.run(
            "ml-project-creator-pipeline", {"repo_name": self.model, "env_name": self.env, "demo": "true"}
        )
        self._wait_run(run.id, "the project creator")

    def deploy_code(self) -> None:
        run = self._first_run(f"{self.model}-deploy-code")
        self._permit(run)
        self._wait_run(run.id, "code CI/CD run #1")
        self.facts["workspace"] = f"ml_apps/{self.model}/master in the {self.env} workspace"

    def train(self) -> None:
        api = self._api()
        job = api.jobs.start(env=self.env, app=self.model, branch="master", entrypoint="train")
        while job.state not in FINAL:
            time.sleep(0.3)
            job = api.jobs.get(job.id)
        if job.state != State.SUCCEEDED:
            raise OperationFailed(f"training job {job.id} {job.state}: {job.message}; see `mlyard jobs logs {job.id}`")
        versions = api.models.get(self.model, self.env)["versions"]
        self.facts["version"] = str(max(int(v["version"]) for v in versions))

    def stage(self) -> None:
        self._api().models.stage(self.model, self.facts["version"], "Staging", env=self.env, reason="quickstart")

    def promote(self) -> None:
        """Push to the default branch: model CI tests the Staging version and promotes it."""
        from mlyard.git.remote import auth_env

        api = self._api()
        before = len(api.runs.list(pipeline=f"{self.model}-promote-model"))
        first = self._first_run(f"{self.model}-promote-model")
        self._permit(first)
        self._wait_run(first.id, "model CI run #1", ok=FINAL)
        clone_url = api.repos.get(self.model).clone_url
        env = auth_env(self.facts["username"], api.token)
        identity = {
            "GIT_AUTHOR_NAME": "quickstart",
            "GIT_AUTHOR_EMAIL": "quickstart@mlyard.local",
            "GIT_COMMITTER_NAME": "quickstart",
            "GIT_COMMITTER_EMAIL": "quickstart@mlyard.local",
        }
        git_env = {**env, **identity}
        with tempfile.TemporaryDirectory(prefix="mlyard-quickstart-") as tmp:
            work = Path(tmp) / "repo"
            _git(["clone", "-q", clone_url, str(work)], Path(tmp), git_env)
            (work / "CHANGELOG.md").write_text(f"- version {self.facts['version']} to Production\n")
            _git(["add", "CHANGELOG.md"], work, git_env)
            _git(["commit", "-q", "-m", f"Release model version {self.facts['version']}"], work, git_env)
            _git(["push", "-q", "origin", "HEAD"], work, git_env)
        deadline = time.monotonic() + 30
        runs = api.runs.list(pipeline=f"{self.model}-promote-model")
        while len(runs) <= max(before, 1) and time.monotonic() < deadline:
            time.sleep(0.2)
            runs = api.runs.list(pipeline=f"{self.model}-promote-model")
        self._wait_run(runs[0].id, "model CI")
        self.facts["model_ci_run"] = runs[0].id

    def deploy_model(self) -> None:
        api = self._api()
        run = api.pipelines.run(f"{self.model}-deploy-model", {})
        deadline = time.monotonic() + 30
        doc = api.runs.get(run.id)
        while doc.state not in FINAL | {"waiting"} and time.monotonic() < deadline:
            time.sleep(0.2)
            doc = api.runs.get(run.id)
        self._permit(doc)
        self._wait_run(run.id, "model CD")
        deployment = api.deployments.get(self.env, self.model)
        url = deployment.url.rstrip("/")
        self.facts["scoring_uri"] = url if url.endswith("/invocations") else f"{url}/invocations"

    def score(self) -> None:
        import httpx

        columns = _breast_cancer_columns()  # the demo project's features
        body = {"dataframe_split": {"columns": columns, "data": self._sample_rows(columns)}}
        try:
            response = httpx.post(self.facts["scoring_uri"], json=body, timeout=30)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise OperationFailed(f"the endpoint {self.facts['scoring_uri']} did not answer the sample: {exc}") from exc
        self.facts["prediction"] = response.json()["predictions"]
        self.facts["sample_request"] = body

    def drift_demo(self) -> None:
        from mlyard.monitoring.demo import run_drift_demo

        report = run_drift_demo(self._api(), self.env, self.model, self.facts["scoring_uri"], self.say)
        self.facts["drifted"] = report.drifted

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    def _sample_rows(columns: list[str]) -> list[list[float]]:
        from sklearn.datasets import load_breast_cancer

        frame = load_breast_cancer(as_frame=True).frame
        return [[float(x) for x in row] for row in frame[columns].head(2).to_numpy().tolist()]

    def _api(self) -> Client:
        assert self.api is not None, "init first"
        return self.api

    def _mlyard(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "MLYARD_HOME": str(self.home)}
        proc = subprocess.run(
            [sys.executable, "-m", "mlyard", *args], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        if proc.returncode != 0:
            raise OperationFailed(f"mlyard {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def _first_run(self, pipeline: str, timeout: float = 60) -> RunView:
        api = self._api()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = api.runs.list(pipeline=pipeline)
            if runs and runs[-1].state not in (State.QUEUED, State.NOT_STARTED):
                return api.runs.get(runs[-1].id)
            time.sleep(0.2)
        raise OperationFailed(f"{pipeline} did not start within {timeout:.0f} s")

    def _permit(self, run: RunView) -> None:
        if run.state == State.WAITING and run.waiting_for:
            self._api().runs.permit(run.id)
            self.say(f"permitted run {run.id} to use {', '.join(run.waiting_for)}")

    def _wait_run(self, run_id: int, what: str, *, ok: set[str] | None = None, timeout: float = 600) -> None:
        api = self._api()
        deadline = time.monotonic() + timeout
        doc = api.runs.get(run_id)
        while doc.state not in FINAL and time.monotonic() < deadline:
            if doc.state == State.WAITING and doc.waiting_for:
                self._permit(doc)
            time.sleep(0.3)
            doc = api.runs.get(run_id)
        if doc.state not in (ok or {"succeeded", "succeededWithIssues"}):
            raise OperationFailed(f"{what} (run {run_id}) ended {doc.state}: see `mlyard runs logs {run_id}`")

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(20)
            except subprocess.TimeoutExpired:
                self.server.kill()


def _git(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise OperationFailed(f"git {args[0]} failed: {proc.stderr.decode('utf-8', 'replace').strip()}")


def _breast_cancer_columns() -> list[str]:
    from sklearn.datasets import load_breast_cancer

    return [str(c) for c in load_breast_cancer(as_frame=True).feature_names]


STEPS: list[tuple[str, str]] = [
    ("init", "initialise the data directory"),
    ("start_server", "start the server"),
    ("create_project", "create the demo project (repo, pipelines)"),
    ("deploy_code", "permit and deploy the code to the dev workspace"),
    ("train", "train in the dev workspace (registers a version)"),
    ("stage", "stage the version to Staging"),
    ("promote", "push to master: model CI tests and promotes it"),
    ("deploy_model", "run model CD (mlflow deployments, the dev group's target)"),
    ("score", "send a sample request"),
    ("drift_demo", "send shifted requests: the monitor report flags the drift"),
]
