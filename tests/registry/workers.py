"""Functions run in child processes (each child opens the store itself; MLflow is imported by the fork server
the children start from, see test_concurrency.run_all)."""

from __future__ import annotations

from typing import Any


def promote_many(uri: str, name: str, versions: list[int], who: str, barrier: Any) -> None:
    from mlyard.registry import Registry

    registry = Registry(uri)
    barrier.wait(timeout=300)
    for version in versions:
        registry.promote(name, version, by=who, reason=f"{who} promotes {version}")


def init_at_once(uri: str, barrier: Any) -> None:
    from mlyard.registry import init_store

    barrier.wait(timeout=300)
    init_store(uri, None)
