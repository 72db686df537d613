"""Pipeline completion triggers ("resources.pipelines" with a ``trigger``): when a run succeeds, run the
pipelines whose YAML declares its pipeline as a resource with a matching trigger.

As in Azure, the trigger is read from the triggered pipeline's YAML on its repository's default branch.
The triggered run builds the same commit when both pipelines live in one repository, else the default
branch of its own repository. Its reason is ``ResourceTrigger``; the variables
``resources.pipeline.<alias>.runID`` (``runName``, ``pipelineName``, ``sourceBranch``, ``sourceCommit``,
``requestedFor``) name the run that triggered it, so ``download: <alias>`` finds its artifacts, and so do
Azure's ``Build.TriggeredBy.BuildId``, ``BuildNumber`` and ``DefinitionName``.

The YAML files are read outside any transaction; the runs are created in one transaction that first checks
that no run of that pipeline was already triggered by this run (the check makes a second call harmless).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.ci import sources
from mlyard.ci.host import Host
from mlyard.ci.runs import new_run
from mlyard.db.engine import transaction
from mlyard.db.tables import Pipeline, Repo, Run, RunStage
from mlyard.errors import MlyardError
from mlyard.git import repos as git
from mlyard.pipelines import PipelineError
from mlyard.pipelines.resources import PipelineResource, Resources
from mlyard.protocol import SUCCESSFUL_STATES

log = logging.getLogger("mlyard.completion")
RESOURCE_TRIGGER = "ResourceTrigger"  # Build.Reason of a run started by a pipeline completion trigger
MAX_LISTENERS = 500  # pipelines whose YAML is read after one run succeeds
MAX_CHAIN = 10  # runs started by completion triggers one after the other (A -> B -> C ...)


@dataclass(frozen=True)
class Finished:
    """A successful run: what the triggers compare and what the triggered runs record."""

    run_id: int
    number: int
    build_number: str
    pipeline: str
    repo: str
    branch: str
    commit: str
    requested_for: str
    succeeded_stages: frozenset[str]


@dataclass(frozen=True)
class Fire:
    pipeline_id: int
    alias: str
    ref: str
    sha: str


def resource_variables(alias: str, upstream: Finished) -> dict[str, str]:
    prefix = f"resources.pipeline.{alias}"
    return {
        f"{prefix}.runID": str(upstream.run_id),
        f"{prefix}.runName": upstream.build_number or str(upstream.number),
        f"{prefix}.pipelineName": upstream.pipeline,
        f"{prefix}.sourceBranch": upstream.branch,
        f"{prefix}.sourceCommit": upstream.commit,
        f"{prefix}.requestedFor": upstream.requested_for,
    }


def triggered_by(upstream: Finished) -> dict[str, str]:
    """Azure's ``Build.TriggeredBy.*`` variables of a run a completion trigger started."""
    return {
        "Build.TriggeredBy.BuildId": str(upstream.run_id),
        "Build.TriggeredBy.BuildNumber": upstream.build_number or str(upstream.number),
        "Build.TriggeredBy.DefinitionName": upstream.pipeline,
    }


def latest_runs(platform: Host, resources: Resources, given: Mapping[str, str]) -> dict[str, str]:
    """The variables of each pipeline resource not given already (a run a completion trigger started has
    them): its source pipeline's latest successful run (on ``branch`` when the resource names one)."""
    found: dict[str, str] = {}
    with transaction(platform.sessions) as session:
        for resource in resources.pipelines:
            if f"resources.pipeline.{resource.alias}.runID" in given:
                continue
            query = select(Run).join(Pipeline, Pipeline.id == Run.pipeline_id).where(
                Pipeline.name == resource.pipeline, Run.state.in_(SUCCESSFUL_STATES)
            )
            if resource.branch:
                branch = resource.branch if resource.branch.startswith("refs/") else f"refs/heads/{resource.branch}"
                query = query.where(Run.source_branch == branch)
            run = session.scalars(query.order_by(Run.id.desc()).limit(1)).first()
            upstream = finished(session, run) if run is not None else None
            if upstream is not None:
                found.update(resource_variables(resource.alias, upstream))
    return found


def finished(session: Session, run: Run) -> Finished | None:
    """The facts of `run` if it succeeded (succeededWithIssues included), else None."""
    if run.state not in SUCCESSFUL_STATES:
        return None
    pipeline = session.get(Pipeline, run.pipeline_id)
    if pipeline is None:
        return None
    stages = session.scalars(select(RunStage).where(RunStage.run_id == run.id))
    succeeded = frozenset(stage.name for stage in stages if stage.state in SUCCESSFUL_STATES)
    return Finished(run.id, run.number, run.build_number, pipeline.name, pipeline.repo, run.source_branch,
                    run.source_version, run.requested_for, succeeded)  # fmt: skip


class ResourceCache:
    """The pipeline resources of each pipeline file version read so far (the orchestrator keeps one), so
    that a successful run reads the YAML of only the pipelines whose file changed since the last one."""

    MAX_ENTRIES = 2000

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], tuple[PipelineResource, ...]] = {}
        self._heads: dict[tuple[str, str], tuple[tuple[object, ...], str | None]] = {}
        self.lock = threading.Lock()

    def head(self, platform: Host, repo: str, ref: str) -> str | None:
        """The commit the full ref name `ref` of `repo` points at (None: none), looked up again only when the ref
        may have moved (`git.ref_stamp`): a successful run looks at the default branch of every repository with
        a pipeline, and a git lookup for each of them made each successful run cost more as repositories grew."""
        path = sources.bare_repo(platform, repo)
        stamp = git.ref_stamp(path, ref)
        with self.lock:
            known = self._heads.get((repo, ref))
        if stamp is not None and known is not None and known[0] == stamp:
            return known[1]
        try:
            head: str | None = sources.resolve_commit(platform, repo, ref)
        except MlyardError:  # no commit there yet
            head = None
        if stamp is not None:
            with self.lock:
                if len(self._heads) >= self.MAX_ENTRIES:
                    self._heads.clear()
                self._heads[(repo, ref)] = (stamp, head)
        return head

    def pipelines(self, platform: Host, repo: str, commit: str, yaml_path: str) -> tuple[PipelineResource, ...]:
        key = (repo, commit, yaml_path)
        with self.lock:
            if key in self._entries:
                return self._entries[key]
        try:
            found = sources.load_at(platform, repo, commit, yaml_path).resources.pipelines
        except (MlyardError, PipelineError):  # no file there, or an invalid file: no trigger
            found = ()
        with self.lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = found
        return found


def trigger_completion(platform: Host, upstream: Finished, cache: ResourceCache | None = None) -> list[int]:
    """Start the runs that `upstream` completes (call after its final state is committed); their ids."""
    with transaction(platform.sessions) as session:
        rows = session.execute(
            select(Pipeline.id, Pipeline.name, Pipeline.repo, Pipeline.yaml_path, Repo.default_branch)
            .join(Repo, Repo.name == Pipeline.repo)
            .order_by(Pipeline.id)
            .limit(MAX_LISTENERS)
        ).all()
    cache = cache or ResourceCache()
    heads: dict[str, str | None] = {}
    fires: list[Fire] = []
    for pipeline_id, name, repo, yaml_path, default_branch in rows:
        default_ref = f"refs/heads/{default_branch}"
        if repo not in heads:  # one lookup per repository (none while its default branch has not moved)
            heads[repo] = cache.head(platform, repo, default_ref)
        head = heads[repo]
        if head is None:
            continue
        for resource in cache.pipelines(platform, repo, head, yaml_path):
            if _fires(resource, upstream, name):
                same = repo == upstream.repo  # one repository: the same commit
                ref, sha = (upstream.branch, upstream.commit) if same else (default_ref, head)
                fires.append(Fire(pipeline_id, resource.alias, ref, sha))
                break
    created: list[int] = []
    with transaction(platform.sessions) as session:
        chain = _chain(session, upstream.run_id)
        for fire in fires:
            if fire.pipeline_id in chain or len(chain) > MAX_CHAIN:
                log.warning("run %d: no completion run of pipeline %d: it would make a loop or a chain longer "
                            "than %d runs", upstream.run_id, fire.pipeline_id, MAX_CHAIN)  # fmt: skip
                continue
            if _already(session, fire, upstream):
                continue
            run = new_run(
                session, fire.pipeline_id, reason=RESOURCE_TRIGGER, ref=fire.ref, sha=fire.sha,
                requested_for=upstream.requested_for, parameters={},
                variables={**resource_variables(fire.alias, upstream), **triggered_by(upstream)},
            )  # fmt: skip
            created.append(run.id)
    return created


def _fires(resource: PipelineResource, upstream: Finished, listener: str) -> bool:
    trigger = resource.trigger
    if trigger is None or resource.pipeline != upstream.pipeline or listener == upstream.pipeline:
        return False
    ok, why = trigger.matches(upstream.branch)
    missing = [stage for stage in trigger.stages if stage not in upstream.succeeded_stages]
    if not ok or missing:
        reason = why if not ok else f"stages {', '.join(missing)} did not succeed"
        log.info("pipeline %s: no completion run after run %d: %s", listener, upstream.run_id, reason)
        return False
    return True


def _chain(session: Session, run_id: int) -> list[int]:
    """The pipelines of the runs that led to run `run_id` by completion triggers, its own first (at most
    MAX_CHAIN + 1). A completion trigger never starts a pipeline already in its chain (A -> B -> A)."""
    pipelines: list[int] = []
    run = session.get(Run, run_id)
    while run is not None and len(pipelines) <= MAX_CHAIN:
        pipelines.append(run.pipeline_id)
        if run.reason != RESOURCE_TRIGGER:
            break
        ids = [str(v) for k, v in run.variables.items() if k.startswith("resources.pipeline.") and k.endswith(".runID")]
        run = session.get(Run, int(ids[0])) if ids and ids[0].isdigit() else None
    return pipelines


def _already(session: Session, fire: Fire, upstream: Finished) -> bool:
    key = f"resources.pipeline.{fire.alias}.runID"
    runs = session.scalars(
        select(Run)
        .where(Run.pipeline_id == fire.pipeline_id, Run.reason == RESOURCE_TRIGGER)
        .order_by(Run.id.desc())
        .limit(MAX_LISTENERS)
    )
    return any(run.variables.get(key) == str(upstream.run_id) for run in runs)
