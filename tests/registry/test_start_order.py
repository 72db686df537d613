"""At server start the warm scoring process (it imports MLflow, pandas and scikit-learn: seconds of CPU) waits for
the registry's warm-up to end, so that a first use of the registry does not share the CPU with it, and for something
to serve (a registered model or a deployment), so that a new home's first pipelines do not share it either."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mlyard.app import _fill_pool_after
from mlyard.registry.store import init_store, sqlite_uri
from mlyard.services import deployments, environments
from tests.ci.engine import ADMIN, open_engine

ALWAYS = lambda _platform: True  # noqa: E731 - a registry with a model

class Pool:
    def __init__(self) -> None:
        self.fills = 0

    def fill_later(self) -> None:
        self.fills += 1


def platform_with(pool: Pool | None) -> Any:
    return SimpleNamespace(deployments=SimpleNamespace(pool=pool))


def test_the_pool_fills_once_the_registry_warm_up_has_ended() -> None:
    pool = Pool()

    async def scenario() -> None:
        warmed = asyncio.Event()

        async def warm_up() -> None:
            await warmed.wait()

        warming = asyncio.ensure_future(warm_up())
        filling = asyncio.ensure_future(_fill_pool_after(platform_with(pool), warming, ALWAYS))
        for _ in range(20):
            await asyncio.sleep(0)
        assert pool.fills == 0 and not filling.done()  # the MLflow server is still starting
        warmed.set()
        await filling
        assert pool.fills == 1

    asyncio.run(scenario())


def test_the_pool_fills_when_the_warm_up_failed_was_cancelled_or_is_off() -> None:
    async def failing() -> None:
        raise OSError("no MLflow server")

    async def scenario() -> list[int]:
        fills = []
        for make in (failing, None, "cancelled"):
            pool = Pool()
            warming: asyncio.Task[None] | None = None
            if make == "cancelled":
                warming = asyncio.ensure_future(asyncio.sleep(3600))
                await asyncio.sleep(0)
                warming.cancel()
            elif make is not None:
                warming = asyncio.ensure_future(failing())
            await _fill_pool_after(platform_with(pool), warming, ALWAYS)
            fills.append(pool.fills)
        await _fill_pool_after(platform_with(None), None)  # no pool (MLYARD_SERVING_WARM_POOL=0): nothing
        return fills

    assert asyncio.run(scenario()) == [1, 1, 1]


def test_the_pool_waits_for_something_to_serve() -> None:
    pool = Pool()
    answers = [False, False, True]

    async def scenario() -> None:
        await _fill_pool_after(platform_with(pool), None, lambda _platform: answers.pop(0))

    asyncio.run(scenario())
    assert pool.fills == 1 and answers == []


def test_something_to_serve_is_a_registered_model_in_a_store(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    platform = open_engine(tmp_path / "home")
    try:
        uri = sqlite_uri(tmp_path / "dev" / "mlflow.db")
        environments.create_environment(platform, ADMIN, "dev", mlflow_tracking_uri=uri)
        assert not deployments.something_to_serve(platform)  # no store yet
        init_store(uri, tmp_path / "dev" / "artifacts")
        assert not deployments.something_to_serve(platform)  # an empty registry
        MlflowClient(tracking_uri=uri, registry_uri=uri).create_registered_model("churn")  # not a global registry URI
        assert deployments.something_to_serve(platform)
    finally:
        platform.close()
