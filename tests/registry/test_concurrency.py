"""Several processes at once: the store is initialised once, promotions of a model are serialised."""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlyard.registry import Registry, sqlite_uri

from . import workers
from .conftest import Store

PROCESSES = 4
PROMOTIONS = 5
VERSIONS = 6
# What every child needs before it opens the store: imported once, by the fork server.
PRELOAD = ["mlyard.registry", "mlflow.store.model_registry.sqlalchemy_store", "mlflow.store.tracking.sqlalchemy_store",
           "tests.registry.workers"]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _fork_server() -> Iterator[None]:
    """The fork server of this module's tests, stopped (and waited for) at the module's end."""
    yield
    server = multiprocessing.forkserver._forkserver  # type: ignore[attr-defined]
    stop = getattr(server, "_stop", None)  # CPython's own (private) way to stop it
    if stop is not None:
        stop()


def run_all(target: Callable[..., None], args: list[tuple]) -> None:
    # Fresh processes that open the store themselves, forked from a server process that imported MLflow once
    # (`spawn` made each child import it again: seconds of CPU per child). The fork server itself is a new
    # interpreter (not a fork of pytest): no connection, lock or engine of this process reaches the children.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    barrier = context.Barrier(len(args))
    processes = [context.Process(target=target, args=(*arg, barrier)) for arg in args]
    for process in processes:
        process.start()
    for process in processes:
        process.join(300)
    assert [process.exitcode for process in processes] == [0] * len(processes)


@pytest.mark.slow
def test_concurrent_promotions_leave_one_consistent_production_version(
    store: Store, registry: Registry, make_model: Callable[[int], str]
) -> None:
    name = make_model(VERSIONS)
    plans = [[(worker * PROMOTIONS + step) % VERSIONS + 1 for step in range(PROMOTIONS)] for worker in range(PROCESSES)]
    run_all(workers.promote_many, [(store.uri, name, plan, f"worker{i}") for i, plan in enumerate(plans)])

    model = registry.show_model(name)
    production = model["aliases"]["production"]
    client = MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)
    legacy = {int(mv.version): mv.current_stage for mv in client.search_model_versions(f"name = '{name}'")}
    assert legacy[production] == "Production"
    assert [v for v, stage in legacy.items() if stage == "Production"] == [production]
    history = registry.history(name)
    assert len(history) == PROCESSES * PROMOTIONS
    # Serialised: each promotion saw the Production version the one before it left.
    assert history[0]["previous_production"] is None
    assert all(history[k]["previous_production"] == history[k - 1]["version"] for k in range(1, len(history)))
    assert history[-1]["version"] == production
    for worker in range(PROCESSES):
        assert [e["version"] for e in history if e["by"] == f"worker{worker}"] == plans[worker]


@pytest.mark.slow
def test_init_store_from_several_processes_at_once(tmp_path: Path) -> None:
    uri = sqlite_uri(tmp_path / "env" / "mlflow.db")
    run_all(workers.init_at_once, [(uri,)] * 3)
    with sqlite3.connect(tmp_path / "env" / "mlflow.db") as conn:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
        assert conn.execute("SELECT artifact_location FROM experiments").fetchall() == [
            ((tmp_path / "env" / "mlartifacts" / "0").resolve().as_uri(),)
        ]
