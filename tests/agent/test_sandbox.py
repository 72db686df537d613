"""Step isolation (issue 10): steps run in a bubblewrap sandbox with an allow-listed environment, tasks
the agent runs itself stay inside the job's work directory, and nothing runs unsandboxed unless asked.

The executor tests run real bash in the real sandbox; the reporter is the recording one of conftest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlyard.protocol import FAILED, SUCCEEDED, Connection
from mlyard.sandbox import BWRAP_ENV, Sandbox, SandboxUnavailable, bwrap_binary, probe
from tests.agent.conftest import Runner, job, script, step

SECRET = "server-only-secret-4d1f"


@pytest.fixture
def server_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory with the files a step must never read, named by the agent's MLYARD_HOME, and a
    secret-looking variable in the agent's environment."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "cli.json").write_text(f'{{"token": "{SECRET}"}}\n')
    (home / "secret.key").write_text(SECRET)
    (home / "mlyard.db").write_text("SQLite format 3\n" + SECRET)
    monkeypatch.setenv("MLYARD_HOME", str(home))
    monkeypatch.setenv("MLYARD_TOKEN", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return home


def test_bubblewrap_works_here() -> None:
    """CI installs bubblewrap (.ci/run); without it every sandbox test below would be meaningless."""
    assert probe(bwrap_binary()) is None


def test_a_step_reads_nothing_of_the_server(run: Runner, server_home: Path, tmp_path: Path) -> None:
    other = tmp_path / "work" / "job99-other"  # another job's work directory under the same work root
    other.mkdir(parents=True)
    (other / "model.txt").write_text(SECRET)
    (tmp_path / "outside.txt").write_text(SECRET)  # the agent's temporary folder: a step has a private one
    attempts = "\n".join(
        f"cat {path} || echo 'cannot read {path.name}'"
        for path in (server_home / "cli.json", server_home / "secret.key", server_home / "mlyard.db",
                     other / "model.txt", tmp_path / "outside.txt")
    )  # fmt: skip
    text = f"{attempts}\ncat /proc/*/environ | tr '\\0' '\\n' | grep -a SECRET || echo 'no secret in /proc'\nenv\n"
    outcome, rec = run(job(script("steal", text), script("write", f"echo x > {server_home}/planted || true")))
    assert outcome.result == SUCCEEDED, rec.all_text()
    log = rec.all_text()
    assert SECRET not in log
    for name in ("cli.json", "secret.key", "mlyard.db", "model.txt", "outside.txt"):
        assert f"cannot read {name}" in log
    assert "no secret in /proc" in log
    assert "MLYARD_HOME=" not in log and "MLYARD_TOKEN=" not in log and "AWS_SECRET_ACCESS_KEY" not in log
    home_line = next(line for line in rec.logs["steal"] if line.startswith("HOME="))
    assert home_line.endswith("/home") and str(tmp_path / "work") in home_line  # a path inside the step sandbox
    assert not (server_home / "planted").exists()


def test_the_step_environment_is_an_allow_list(run: Runner, server_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("TZ", "UTC")
    spec = job(script("show", "env | sort", env={"MINE": "from-the-step"}), variables={"colour": "blue"})
    _, rec = run(spec, sandbox=Sandbox.none())  # the allow-list holds with or without the sandbox
    names = {line.split("=", 1)[0] for line in rec.logs["show"] if "=" in line}
    assert {"PATH", "HOME", "LC_ALL", "TZ", "MINE", "COLOUR", "MLYARD_JOB", "MLYARD_JOB_RUN"} <= names
    assert not names & {"MLYARD_HOME", "MLYARD_TOKEN", "AWS_SECRET_ACCESS_KEY"}
    assert "MINE=from-the-step" in rec.logs["show"] and "COLOUR=blue" in rec.logs["show"]


def test_a_step_writes_its_work_directory_and_reads_the_system(run: Runner, server_home: Path) -> None:
    text = ("echo made > $(Build.ArtifactStagingDirectory)/made.txt\ncat $(Build.ArtifactStagingDirectory)/made.txt\n"
            "echo private > /tmp/t && cat /tmp/t\n"  # a path inside the step sandbox
            "python -c 'import sys; print(sys.version_info[0])'\n"
            "touch /usr/forbidden 2>/dev/null || echo 'read-only system'")  # fmt: skip
    _, rec = run(job(script("work", text)))
    assert rec.result("work") == SUCCEEDED, rec.text("work")
    assert rec.logs["work"][-5:-1] == ["made", "private", "3", "read-only system"]


def test_a_connection_store_is_reachable_only_by_its_step(run: Runner, server_home: Path) -> None:
    store = server_home / "envs" / "dev"
    store.mkdir(parents=True)
    (store / "mlflow.db").write_text("runs")
    settings = {"MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"}
    azure = step("azure", "AzureCLI@2", inputs={
        "azureSubscription": "dev-conn", "scriptType": "bash", "scriptLocation": "inlineScript",
        "inlineScript": 'db="${MLFLOW_TRACKING_URI#sqlite://}"; cat "$db" && echo more > "$(dirname "$db")/new"',
    })  # fmt: skip
    plain = script("plain", f"cat {store / 'mlflow.db'} || echo 'not without the connection'")
    spec = job(azure, plain, connections={"dev-conn": Connection("dev-conn", "generic", settings)})
    _, rec = run(spec)
    assert rec.result("azure") == SUCCEEDED, rec.text("azure")
    assert "runs" in rec.logs["azure"] and (store / "new").read_text() == "more\n"
    assert "not without the connection" in rec.logs["plain"] and SECRET not in rec.all_text()


@pytest.mark.parametrize(
    ("task", "inputs", "what"),
    [
        ("PublishPipelineArtifact@1", {"targetPath": "{home}/secret.key", "artifact": "a"}, "the path to publish"),
        ("PublishPipelineArtifact@1", {"targetPath": "../../..", "artifact": "a"}, "the path to publish"),
        ("PublishPipelineArtifact@1", {"targetPath": "link", "artifact": "a"}, "the path to publish"),
        ("DownloadPipelineArtifact@2", {"artifact": "a", "path": "{home}/agents"}, "the download path"),
        ("DownloadPipelineArtifact@2", {"artifact": "a", "path": "$(Pipeline.Workspace)/../.."}, "the download path"),
        ("PublishTestResults@2", {"searchFolder": "{home}", "testResultsFiles": "*"}, "the test results folder"),
        ("PublishTestResults@2", {"testResultsFiles": "link/*"}, "the test results file"),
    ],
)
def test_tasks_stay_inside_the_work_directory(
    run: Runner, server_home: Path, task: str, inputs: dict[str, str], what: str
) -> None:
    inputs = {key: value.replace("{home}", str(server_home)) for key, value in inputs.items()}
    link = script("link", f"ln -s {server_home} link")
    _, rec = run(job(link, step("task", task, inputs=inputs)))
    assert rec.result("task") == FAILED
    [(kind, message)] = rec.issues("task")
    assert kind == "error" and message.startswith(what) and "is outside the job's work directory" in message
    assert "use a path under $(Pipeline.Workspace)" in message
    assert rec.uploads == [] and rec.tests == [] and not (server_home / "agents").exists()


def test_without_bubblewrap_jobs_fail_unless_unsandboxed(
    run: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BWRAP_ENV, str(tmp_path / "no-bwrap"))
    with pytest.raises(SandboxUnavailable) as caught:
        Sandbox.detect()
    assert "is not installed" in caught.value.message and "--unsandboxed-steps" in caught.value.message
    outcome, rec = run(job(script("a", "echo ran")))
    assert outcome.result == FAILED and "steps cannot be isolated" in outcome.message
    assert "ran" not in rec.all_text()
    outcome, rec = run(job(script("a", "echo ran")), sandbox=Sandbox.detect(unsandboxed=True))
    assert outcome.result == SUCCEEDED and "ran" in rec.logs["a"]
    assert "Steps run unsandboxed" in rec.text(None)


def test_a_bubblewrap_that_cannot_create_namespaces_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv(BWRAP_ENV, str(fake))
    with pytest.raises(SandboxUnavailable) as caught:
        Sandbox.detect()
    assert caught.value.message.startswith(
        f"steps cannot be isolated: bubblewrap ({fake}) cannot create a sandbox here: "
        "bwrap: No permissions to create new namespace; install bubblewrap"
    )
