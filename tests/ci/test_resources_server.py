"""`resources:` end to end: a real server with local agents, real repos and the real git client.
A multi-repository checkout over git smart HTTP with the job's token, then a completion trigger whose
run downloads the triggering run's artifact (`download: alias`)."""

from __future__ import annotations

import pytest

from tests.ci.helpers import logs, make_repo, register, run, runs_of, wait_runs, wait_state
from tests.conftest import Git, Server

pytestmark = pytest.mark.slow

APP = """trigger: none
resources:
  repositories:
  - repository: tools
    type: github
    name: acme/e2e-tools
steps:
- checkout: self
- checkout: tools
- script: |
    cd "$(Build.SourcesDirectory)"
    echo "layout: $(ls | tr '\\n' ' ')"
    cat e2e-app/app.txt e2e-tools/tool.txt
- publish: $(Build.SourcesDirectory)/e2e-tools
  artifact: tools
"""
DEPLOY = """trigger: none
resources:
  pipelines:
  - pipeline: app
    source: e2e-app-ci
    trigger: true
steps:
- checkout: none
- download: app
  artifact: tools
- script: cat "$(Pipeline.Workspace)/app/tools/tool.txt"
"""


def test_multi_checkout_then_a_completion_trigger_downloads_the_artifact(server: Server, git: Git) -> None:
    make_repo(server, git, "e2e-tools", {"tool.txt": "the tool\n"})
    make_repo(server, git, "e2e-app", {"ci.yml": APP, "app.txt": "the app\n"})
    make_repo(server, git, "e2e-deploy", {"deploy.yml": DEPLOY})
    register(server, "e2e-app-ci", "e2e-app", "ci.yml")
    register(server, "e2e-deploy", "e2e-deploy", "deploy.yml")
    upstream = wait_state(server, run(server, "e2e-app-ci")["id"])
    text = logs(server, upstream["id"])
    assert upstream["state"] == "succeeded", text
    assert "layout: e2e-app e2e-tools" in text and "the app" in text and "the tool" in text
    (triggered,) = wait_runs(server, "e2e-deploy", 1)
    done = wait_state(server, triggered["id"])
    assert (done["state"], done["reason"]) == ("succeeded", "ResourceTrigger"), logs(server, done["id"])
    assert "the tool" in logs(server, done["id"])
    assert len(runs_of(server, "e2e-deploy")) == 1
