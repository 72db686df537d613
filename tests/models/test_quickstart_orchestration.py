"""How `mlyard quickstart` waits (issue 15), against a scripted API: it permits run #1 of the code deployment
while the project creator still runs, and it waits for runs with the server's long poll, never sleeping."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from mlyard.client import Client
from mlyard.errors import NotFound
from mlyard.protocol import State
from mlyard.quickstart import Quickstart
from mlyard.views import RunBrief, RunSummary, RunView

CREATOR, CODE = 1, 2


class ScriptedApi:
    """The creator run goes queued -> running (5 looks) -> succeeded. Its push registers `my-model-deploy-code`
    (after the 2nd look) and queues run #1 of it, waiting for permission (after the 3rd)."""

    def __init__(self) -> None:
        self.looks = 0  # GET /runs/{creator}
        self.events: list[str] = []
        self.waits: list[float] = []
        self.runs = self
        self.pipelines = ScriptedPipelines()

    def creator_state(self) -> State:
        return State.QUEUED if self.looks < 1 else State.RUNNING if self.looks < 6 else State.SUCCEEDED

    def get(self, run_id: int, *, wait: float = 0.0) -> RunView:
        if run_id == CREATOR:
            self.looks += 1
            self.waits.append(wait)
            return RunView(id=CREATOR, number=1, state=self.creator_state(), pipeline="ml-project-creator-pipeline")
        return RunView(id=CODE, number=1, state=self.code_state(), pipeline="my-model-deploy-code",
                       waiting_for=[] if "permit" in " ".join(self.events) else ["variablegroup:dev"])  # fmt: skip

    def code_state(self) -> State:
        return State.RUNNING if any(e.startswith("permit") for e in self.events) else State.WAITING

    def list(self, *, pipeline: str | None = None, limit: int | None = None) -> list[RunSummary]:
        assert pipeline == "my-model-deploy-code"
        if self.looks < 2:
            raise NotFound("pipeline 'my-model-deploy-code' not found")
        if self.looks < 3:
            return []
        return [RunSummary(id=CODE, number=1, state=self.code_state(), pipeline=pipeline)]

    def permit(self, run_id: int) -> None:
        self.events.append(f"permit {run_id} while the creator is {self.creator_state()}")


class ScriptedPipelines:
    def get(self, name: str) -> None:
        raise NotFound(f"pipeline {name!r} not found")  # no earlier quickstart's project

    def run(self, name: str, parameters: dict[str, Any]) -> RunBrief:
        assert name == "ml-project-creator-pipeline"
        return RunBrief(id=CREATOR, number=1, state=State.QUEUED)


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(seconds: float) -> None:
        raise AssertionError(f"quickstart slept {seconds} s while waiting for a run: use the server's long poll")

    monkeypatch.setattr("mlyard.quickstart.time.sleep", refuse)
    yield


def test_run_1_of_the_code_deployment_is_permitted_while_the_creator_runs(tmp_path: Path, no_sleep: None) -> None:
    api = ScriptedApi()
    said: list[str] = []
    qs = Quickstart(home=tmp_path, say=said.append, api=cast(Client, api))
    qs.create_project()
    assert api.events == [f"permit {CODE} while the creator is {State.RUNNING}"]  # once, before the creator ended
    assert "permitted run 2 to use variablegroup:dev" in said
    assert api.creator_state() == State.SUCCEEDED  # and the creator was waited for to the end
    # every look after the first is a long poll: the server answers it the moment the run ends
    assert api.waits[0] == 0 and all(wait > 0 for wait in api.waits[1:])
