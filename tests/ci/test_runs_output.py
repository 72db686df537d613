"""`mlyard runs show|logs|list` as people read them (issue 13): the real CLI at COLUMNS=80, one run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

import pytest

from tests.ci.helpers import make_repo, register, run, wait_state
from tests.conftest import Server, make_git, mlyard

pytestmark = pytest.mark.slow

NARROW = {"COLUMNS": "80"}
YAML = """trigger: none
variables:
- group: out-grp
- name: greeting
  value: hello
steps:
- script: echo "one line"
  displayName: Say $(greeting) on $(Build.SourceBranchName)$(not.defined)
- script: echo never
  displayName: skipped-one
  condition: false
- script: echo "three line"
  displayName: third
- script: echo never
  displayName: skipped-two
  condition: false
"""


@dataclass(frozen=True)
class Shown:
    """The run, with what `runs show` printed while it waited for permission."""

    run_id: int
    waiting_show: str
    followed: str  # `runs logs --follow` from before the run started until it ended


@pytest.fixture(scope="module")
def done(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Shown:
    git = make_git(tmp_path_factory.mktemp("runs-output"))
    server.cli("variable-groups", "create", "out-grp", "--var", "colour=blue")
    make_repo(server, git, "runs-output", {"azure-pipelines.yml": YAML})
    register(server, "runs-output-with-a-rather-long-pipeline-name", "runs-output", "azure-pipelines.yml")
    run_id = run(server, "runs-output-with-a-rather-long-pipeline-name")["id"]
    wait_state(server, run_id, {"waiting"})
    waiting_show = cli(server, "runs", "show", str(run_id)).stdout
    env = {**os.environ, "MLYARD_HOME": str(server.home), "MLYARD_URL": server.url, "MLYARD_TOKEN": server.token}
    with subprocess.Popen(
        [sys.executable, "-m", "mlyard", "runs", "logs", str(run_id), "--follow"],
        env={**env, **NARROW}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as follow:  # fmt: skip
        server.cli("runs", "permit", str(run_id))
        followed, errors = follow.communicate(timeout=120)
    assert follow.returncode == 0, errors
    assert wait_state(server, run_id)["state"] == "succeeded"
    return Shown(run_id, waiting_show, followed)


def cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"MLYARD_URL": server.url, "MLYARD_TOKEN": server.token, **NARROW}
    return mlyard(*args, home=server.home, env=env)


PIPELINE = "runs-output-with-a-rather-long-pipeline-name"
SECOND = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def test_runs_show_cuts_nothing_at_80_columns(done: Shown) -> None:
    hint = f"`mlyard pipelines permit {PIPELINE} --resource variablegroup:out-grp`"
    assert hint in done.waiting_show  # whole, on one line: the terminal wraps it, the CLI does not cut it
    assert "…" not in done.waiting_show


def test_runs_show_durations_have_units_and_no_reprs(server: Server, done: Shown) -> None:
    shown = cli(server, "runs", "show", str(done.run_id)).stdout
    assert re.search(rf"run {done.run_id}: {PIPELINE} #1 \(\S+\) succeeded \d+\.\d s\n", shown), shown
    assert re.search(r"third succeeded \d+\.\d s", shown) and "skipped-one skipped\n" in shown
    assert "None" not in shown and "[dim]" not in shown and "\033[" not in shown  # plain text in a pipe


def test_run_tables_have_one_run_id_and_times_to_the_second(server: Server, done: Shown) -> None:
    for args in (("runs", "list", "--pipeline", PIPELINE), ("pipelines", "show", PIPELINE)):
        lines = cli(server, *args).stdout.splitlines()
        header = next(line for line in lines if line.startswith("RUN"))
        assert header.split()[:2] == ["RUN", "NUMBER"] or header.split()[:2] == ["RUN", "PIPELINE"], header
        assert "#" not in header.split()
        row = lines[lines.index(header) + 1]
        assert row.split()[0] == str(done.run_id)
        assert SECOND.search(row) and not re.search(r"\d{2}:\d{2}:\d{2}[.,]\d", row), row




STEPS = ["Checkout self", "Say hello on master$(not.defined)", "skipped-one", "third", "skipped-two"]


def headers(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("## ")]


@pytest.mark.parametrize("mode", ["follow", "read"])
def test_logs_put_skipped_steps_in_order_and_finishing_in_its_own_section(
    server: Server, done: Shown, mode: str
) -> None:
    text = done.followed if mode == "follow" else cli(server, "runs", "logs", str(done.run_id)).stdout
    expected = ["## Job", *(f"## Job / {name}" for name in STEPS), "## Job / Finalize job"]
    assert headers(text)[: len(expected)] == expected, text
    sections = re.split(r"^## ", text, flags=re.M)  # ["", "Job...", "Job / Checkout self...", ...]
    assert "Finishing job: Succeeded" in sections[len(expected)]  # the last section, and only there
    assert "Finishing job" not in "".join(sections[: len(expected)])
    assert "Skipping step 'skipped-one'" in sections[4] and "Skipping step 'skipped-two'" in sections[6]
    if mode == "follow":
        assert headers(text)[-1] == f"## run {done.run_id} succeeded"


def test_logs_as_json_jobs_steps_lines(server: Server, done: Shown) -> None:
    document = json.loads(cli(server, "runs", "logs", str(done.run_id), "--json").stdout)
    assert document["run"] == done.run_id and document["state"] == "succeeded" and not document["truncated"]
    [job] = document["jobs"]
    assert job["name"] == "Job"
    assert [step["name"] for step in job["steps"]] == ["Initialize job", *STEPS, "Finalize job"]
    assert [step["key"] is None for step in job["steps"]] == [True] + [False] * len(STEPS) + [True]
    third = job["steps"][4]
    assert {"text": "three line"} in [{"text": line["text"]} for line in third["lines"]]
    assert all(re.match(r"\d{4}-\d\d-\d\dT", line["at"]) for line in third["lines"])
    assert job["steps"][-1]["lines"][-1]["text"] == "Finishing job: Succeeded"
    step_only = json.loads(cli(server, "runs", "logs", str(done.run_id), "--step", "third", "--json").stdout)
    assert [step["name"] for step in step_only["jobs"][0]["steps"]] == ["third"]
    both = mlyard("runs", "logs", "1", "--json", "--follow", home=server.home, check=False)
    assert both.returncode == 2 and "without --follow" in both.stderr


def test_step_names_have_their_macros_expanded(server: Server, done: Shown) -> None:
    """As Azure DevOps names a job's steps: `$(...)` expanded with the job's variables at job start."""
    shown = cli(server, "runs", "show", str(done.run_id)).stdout
    assert "Say hello on master$(not.defined) succeeded" in shown  # an unknown name stays as written
    assert "Starting: Say hello on master$(not.defined)" in cli(server, "runs", "logs", str(done.run_id)).stdout
    assert "$(greeting)" in done.waiting_show  # not started yet: as written


def test_pipelines_list_tree_cuts_nothing_at_80_columns(server: Server, done: Shown) -> None:
    listed = cli(server, "pipelines", "list").stdout
    assert f"── {PIPELINE} - #1 succeeded (refs/heads/master)\n" in listed, listed
    assert listed.startswith("pipelines\n")
