"""`mlyard quickstart`: from nothing to a live model endpoint, one step after another, through the
same API, git and CLI a person would use.

init a home (if there is none) -> start the server -> create the demo project -> permit its code
deployment -> train in the dev workspace -> stage the version to Staging -> permit model CI run #1
(started by the project's first push), which tests the Staging version and promotes it -> run model CD
(the environment's deployments target) -> score a sample.

The demo data (scikit-learn's Breast Cancer rows, seconds of imports) loads in a background thread started
once the code deployment runs (the server's start and its warm-up have the two CPUs before that), so
scoring and the drift demo do not wait for it.

No step sleeps to wait: a run is waited for with the server's long poll (`GET /runs/{id}?wait=`, answered
the moment the run ends), and run #1 of the code deployment is permitted as soon as it asks, while the
project creator still finishes.

Run again on the same home, it reuses what the first run made: the demo project, its deployed code,
the version in Production and its deployment; only what is missing is done again. It leaves no run
waiting for permission and none `succeededWithIssues` by its own doing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlyard.client import Client
from mlyard.errors import AuthenticationError, MlyardError, NotFound, OperationFailed
from mlyard.protocol import State
from mlyard.views import RunView

if TYPE_CHECKING:
    import httpx

    from mlyard.drift_demo import DemoData

FINAL = {"succeeded", "succeededWithIssues", "failed", "canceled", "skipped"}
MODEL = "my-model"
QUIET_SECONDS = 20  # the longest quickstart stays silent while a run it waits for goes on
RUN_POLL_SECONDS = 0.3  # the longest a progress line (or a run asking for permission) waits to be seen
JOB_POLL_SECONDS = 0.1  # workspace jobs have no long poll: look this often (a cheap GET)
START_POLL_SECONDS = 0.05  # how often /health is asked while the server starts (refused connections: cheap)
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
    reused: bool = False  # the demo project of an earlier quickstart is there: do only what is missing
    _permitted: set[int] = field(default_factory=set)
    _demo_data: Future[DemoData] | None = None
    _health: httpx.Client | None = None

    # -- steps -----------------------------------------------------------------------------------
    def init(self) -> None:
        """`mlyard init --port PORT` in this process (an initialised home is kept as it is). A new home whose port
        another program holds is refused first: nothing is made."""
        from mlyard.services.bootstrap import init_home
        from mlyard.settings import Settings, is_initialised

        settings = Settings(home=self.home, port=self.port)
        if not is_initialised(self.home) and not _port_free(self.port):
            if self._answers_health(settings.url):  # a server of another home: this home has none yet
                raise OperationFailed(
                    f"{settings.url} is another mlyard server (of another home; {self.home} is new): stop it, or "
                    f"choose another port: `mlyard quickstart --port N`"
                )
            raise OperationFailed(
                f"port {self.port} of {settings.url} is used by another program, not an mlyard server: stop it, "
                f"or choose another port: `mlyard quickstart --port N`"
            )
        info = init_home(settings)
        self.facts.update(url=info.url, username=info.username, created_home=info.created)
        self.facts["token"] = info.token  # the web UI's sign-in asks for it (also in cli.json)
        self.api = Client(info.url, info.token, timeout=120)

    def start_server(self) -> None:
        api = self._api()
        if self._answers_health():
            try:
                api.me()
            except AuthenticationError:
                raise OperationFailed(
                    f"{self.facts['url']} is another mlyard server (the token of {self.home} is not valid there): "
                    f"stop it, or give this home another port (`mlyard quickstart --port N` for a new home; "
                    f"`port` in {self.home}/settings.json for this one)"
                ) from None
            self.facts["server"] = "already running"
            return
        port = _port_of(self.facts["url"])
        if not _port_free(port):
            raise OperationFailed(
                f"port {port} of {self.facts['url']} is used by another program, not an mlyard server: stop it, or "
                f"give this home another port (`mlyard quickstart --port N` for a new home; `port` in "
                f"{self.home}/settings.json for this one)"
            )
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
            if self._answers_health():
                self.facts["server"] = f"started (pid {self.server.pid}, log {log.name})"
                return
            time.sleep(START_POLL_SECONDS)
        raise OperationFailed(f"the server did not start within 60 s; see {log.name}")

    def _answers_health(self, url: str | None = None) -> bool:
        """Whether an mlyard server answers on `url` (default: the home's; quickly: a program that holds the port
        and never answers is not one). One HTTP client for every poll: httpx.get makes a client, and its TLS
        context, each time (36 ms of CPU, twenty times a second while the server starts)."""
        import httpx

        if self._health is None:
            self._health = httpx.Client(timeout=3)
        try:
            return self._health.get(f"{url or self.facts['url']}/health").status_code == 200
        except httpx.HTTPError:
            return False

    def create_project(self) -> None:
        api = self._api()
        try:
            pipeline = api.pipelines.get(f"{self.model}-deploy-code")
        except NotFound:
            pipeline = None
        if pipeline is not None and pipeline.repo == self.model:  # an earlier quickstart's demo project
            self.reused = True
            self.say(f"reusing the demo project {self.model} of an earlier quickstart")
            self._load_demo_data()  # little is left to do before `score` needs it
            return
        run = api.pipelines.run(
            "ml-project-creator-pipeline", {"repo_name": self.model, "env_name": self.env, "demo": "true"}
        )
        # The creator's push starts run #1 of the code deployment, which waits for permission: permit it as soon
        # as it asks, while the creator still reports the runs it started.
        self._wait_run(run.id, "the project creator", poll=0.1, watch=self._permit_first_code_run)

    def _permit_first_code_run(self) -> None:
        pipeline = f"{self.model}-deploy-code"
        try:
            runs = self._api().runs.list(pipeline=pipeline, limit=1)
        except NotFound:  # the creator has not registered it yet
            return
        if runs and runs[0].number == 1 and runs[0].state == State.WAITING and runs[0].id not in self._permitted:
            self._permit(self._api().runs.get(runs[0].id))

    def deploy_code(self) -> None:
        api = self._api()
        pipeline = f"{self.model}-deploy-code"
        newest = api.runs.list(pipeline=pipeline, limit=1) if self.reused else []
        if not self.reused:
            run = self._first_run(pipeline)  # run #1, started by the project's first push
        elif not newest or newest[0].state in (State.FAILED, State.CANCELED, State.SKIPPED):
            run = api.runs.get(api.pipelines.run(pipeline, {}).id)  # deploy the code again
        else:
            run = api.runs.get(newest[0].id)
        # The unit tests take one CPU; the demo data (needed from `score` on) loads on the other meanwhile.
        self._load_demo_data()
        if run.state != State.SUCCEEDED:
            self._permit(run)
            self._wait_run(run.id, "code CI/CD")
        self.facts["workspace"] = f"ml_apps/{self.model}/master in the {self.env} workspace"

    def train(self) -> None:
        api = self._api()
        if self.reused and (version := self._version_in("Production")):
            self.facts["version"] = version
            self.say(f"reusing version {version} of {self.model}, in Production")
            return
        self.reused = False  # from here on, do it all: train, stage, promote, deploy
        job = api.jobs.start(env=self.env, app=self.model, branch="master", entrypoint="train")
        deadline = time.monotonic() + 1800
        while job.state not in FINAL and time.monotonic() < deadline:
            time.sleep(JOB_POLL_SECONDS)
            job = api.jobs.get(job.id)
        if job.state != State.SUCCEEDED:
            raise OperationFailed(f"training job {job.id} {job.state}: {job.message}; see `mlyard jobs logs {job.id}`")
        versions = api.models.get(self.model, self.env)["versions"]
        self.facts["version"] = str(max(int(v["version"]) for v in versions))

    def stage(self) -> None:
        if self.reused:
            return
        self._api().models.stage(self.model, self.facts["version"], "Staging", env=self.env, reason="quickstart")

    def promote(self) -> None:
        """Permit model CI run #1 (the first push started it; it waits for the group): it tests the Staging
        version and promotes it. Nothing else runs model CI, so no run ends with nothing to promote."""
        if self.reused:
            return
        first = self._first_run(f"{self.model}-promote-model")
        if first.state in FINAL:  # an earlier, interrupted quickstart let run #1 go: run model CI again
            first = self._api().runs.get(self._api().pipelines.run(f"{self.model}-promote-model", {}).id)
        self._permit(first)
        self._wait_run(first.id, "model CI")
        self.facts["model_ci_run"] = first.id

    def deploy_model(self) -> None:
        api = self._api()
        if self.reused:
            try:
                deployment = api.deployments.get(self.env, self.model)
            except NotFound:
                deployment = None
            if deployment is not None and deployment.version == self.facts["version"] and deployment.state != "failed":
                self.say(f"reusing the deployment of version {deployment.version} ({deployment.state})")
                self.facts["scoring_uri"] = _scoring_uri(deployment.url)
                return
            if deployment is not None and deployment.state == "failed":  # e.g. its port is another's now
                self.say(f"deleting the failed deployment of {self.model} ({deployment.message}); deploying again")
                api.deployments.delete(self.env, self.model)
        run = api.pipelines.run(f"{self.model}-deploy-model", {})
        deadline = time.monotonic() + 30
        doc = api.runs.get(run.id)
        while doc.state not in FINAL | {"waiting"} and time.monotonic() < deadline:
            # a first run asks for permission right after it is queued: look again soon, not after a long sleep
            if doc.state == State.RUNNING:
                break  # permitted before (an earlier quickstart): nothing to permit
            time.sleep(0.05)
            doc = api.runs.get(run.id)
        self._permit(doc)
        self._wait_run(run.id, "model CD")
        self.facts["scoring_uri"] = _scoring_uri(api.deployments.get(self.env, self.model).url)

    def score(self) -> None:
        import httpx

        data = self._data()  # the demo project's features
        body = {"dataframe_split": {"columns": list(data.columns), "data": [list(row) for row in data.rows[:2]]}}
        try:
            response = httpx.post(self.facts["scoring_uri"], json=body, timeout=30)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise OperationFailed(f"the endpoint {self.facts['scoring_uri']} did not answer the sample: {exc}") from exc
        self.facts["prediction"] = response.json()["predictions"]
        self.facts["sample_request"] = body

    def drift_demo(self) -> None:
        from mlyard.drift_demo import run_drift_demo

        report = run_drift_demo(self._api(), self.env, self.model, self.facts["scoring_uri"], self.say,
                                data=self._data())  # fmt: skip
        self.facts["drifted"] = report.drifted

    # -- helpers ---------------------------------------------------------------------------------
    def _load_demo_data(self) -> None:
        """Start loading the demo data in a daemon thread (it never keeps the process alive)."""
        if self._demo_data is not None:
            return
        future: Future[DemoData] = Future()

        def load() -> None:
            from mlyard.drift_demo import load_demo_data

            try:
                future.set_result(load_demo_data())
            except BaseException as exc:  # handed to the step that needs the data
                future.set_exception(exc)

        self._demo_data = future
        threading.Thread(target=load, name="quickstart-demo-data", daemon=True).start()

    def _data(self) -> DemoData:
        self._load_demo_data()
        assert self._demo_data is not None
        return self._demo_data.result(timeout=300)

    def _version_in(self, stage: str) -> str | None:
        try:
            versions = self._api().models.get(self.model, self.env)["versions"]
        except MlyardError:
            return None
        found = [int(v["version"]) for v in versions if v.get("stage") == stage]
        return str(max(found)) if found else None

    def _api(self) -> Client:
        assert self.api is not None, "init first"
        return self.api

    def _first_run(self, pipeline: str, timeout: float = 60) -> RunView:
        api = self._api()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = api.runs.list(pipeline=pipeline)
            if runs and runs[-1].state not in (State.QUEUED, State.NOT_STARTED):
                return api.runs.get(runs[-1].id)
            time.sleep(0.1)
        raise OperationFailed(f"{pipeline} did not start within {timeout:.0f} s")

    def _permit(self, run: RunView) -> None:
        if run.state == State.WAITING and run.waiting_for and run.id not in self._permitted:
            self._api().runs.permit(run.id)
            self._permitted.add(run.id)
            self.say(f"permitted run {run.id} to use {', '.join(run.waiting_for)}")

    def _wait_run(self, run_id: int, what: str, *, ok: set[str] | None = None, timeout: float = 600,
                  poll: float = RUN_POLL_SECONDS, watch: Callable[[], None] | None = None) -> None:
        """Wait for the run to end, saying where it is when it moves on and permitting what it asks for. The
        server answers each look the moment the run ends (a long poll of at most `poll` seconds); `watch` is
        called after each look (another run to attend to meanwhile)."""
        api = self._api()
        deadline = time.monotonic() + timeout
        doc = api.runs.get(run_id)
        said: set[str] = set()
        started = last = time.monotonic()
        while doc.state not in FINAL and time.monotonic() < deadline:
            if doc.state == State.WAITING and doc.waiting_for:
                self._permit(doc)
            now = _progress(doc)
            if now not in said:  # a line when the run moves on: no long silence, no line twice
                self.say(f"{what} (run {run_id}): {now}")
                said.add(now)
                last = time.monotonic()
            elif time.monotonic() - last >= QUIET_SECONDS:  # a long step: say it still runs
                self.say(f"{what} (run {run_id}): {now}, {time.monotonic() - started:.0f} s so far")
                last = time.monotonic()
            if watch is not None:
                watch()
            doc = api.runs.get(run_id, wait=poll)
        if watch is not None:
            watch()
        if doc.state not in (ok or {"succeeded", "succeededWithIssues"}):
            raise OperationFailed(f"{what} (run {run_id}) ended {doc.state}: see `mlyard runs logs {run_id}`")

    def stop_server(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(20)
            except subprocess.TimeoutExpired:
                self.server.kill()


def _progress(run: RunView) -> str:
    """Where a run is: its state and the job (and step) that runs, for one progress line."""
    for job in run.jobs:
        if job.state == State.RUNNING:
            step = next((s for s in job.steps if s.state == State.RUNNING), None)
            name = job.display_name or job.name
            return f"{run.state}, {name}" + (f": {step.display_name or step.name}" if step else "")
    return str(run.state)


def _scoring_uri(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/invocations") else f"{url}/invocations"


def _port_of(url: str) -> int:
    from urllib.parse import urlsplit

    return urlsplit(url).port or 80


def _port_free(port: int) -> bool:
    """Whether nothing listens on `port` of the loopback interface."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


STEPS: list[tuple[str, str]] = [
    ("init", "initialise the data directory"),
    ("start_server", "start the server"),
    ("create_project", "create the demo project (repo, pipelines), or reuse it"),
    ("deploy_code", "permit and deploy the code to the dev workspace"),
    ("train", "train in the dev workspace (registers a version)"),
    ("stage", "stage the version to Staging"),
    ("promote", "permit model CI run #1: it tests the Staging version and promotes it"),
    ("deploy_model", "run model CD (mlflow deployments, the dev group's target)"),
    ("score", "send a sample request"),
    ("drift_demo", "send shifted requests: the monitor report flags the drift"),
]
