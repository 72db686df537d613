"""At server start the warm scoring process (it imports MLflow, pandas and scikit-learn: seconds of CPU) waits for
the registry's warm-up to end, so that a first use of the registry does not share the CPU with it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from mlyard.app import _fill_pool_after


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
        filling = asyncio.ensure_future(_fill_pool_after(platform_with(pool), warming))
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
            await _fill_pool_after(platform_with(pool), warming)
            fills.append(pool.fills)
        await _fill_pool_after(platform_with(None), None)  # no pool (MLYARD_SERVING_WARM_POOL=0): nothing
        return fills

    assert asyncio.run(scenario()) == [1, 1, 1]
