"""Registered model versions in a server's environment, made cheaply: three small scikit-learn models logged
by the test process straight into the environment's store (as a workspace job would), no pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.ci.helpers import make_repo
from tests.conftest import TLS, Server, make_git
from tests.registry.conftest import Logged, log_models


@dataclass(frozen=True)
class Registered:
    env: str
    uri: str
    logged: list[Logged]


def log_in_env(server: Server, env: str = "dev") -> Registered:
    """Log the three models (with parameters that differ) into `env`'s store."""
    from mlflow import MlflowClient

    from mlyard.registry import init_store

    with server.client() as api:
        uri = api.get(f"/api/v1/environments/{env}").json()["mlflow_tracking_uri"]
    init_store(uri)
    logged = log_models(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for index, item in enumerate(logged):
        client.log_param(item.run_id, "C", "10.0")
        client.log_param(item.run_id, "labels", f"pattern-{index}")
    return Registered(env=env, uri=uri, logged=logged)


def register(
    registered: Registered, name: str, count: int = 3, *, tags: dict[int, dict[str, str]] | None = None
) -> str:
    """Model `name` with `count` versions (version n is logged model (n-1) % 3), tagged with `tags`."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registered.uri, registry_uri=registered.uri)
    client.create_registered_model(name)
    for index in range(count):
        item = registered.logged[index % len(registered.logged)]
        client.create_model_version(name, item.artifact_location, run_id=item.run_id, model_id=item.model_id)
    for version, pairs in (tags or {}).items():
        for key, value in pairs.items():
            client.set_model_version_tag(name, str(version), key, value)
    return name


README = """# Demo <script>alert('readme')</script>

Read [the app](src/app.py), the [docs folder](docs/), a [bad link](javascript:alert(1)) and
[outside](../../etc/passwd). <b>bold?</b>

![logo](docs/logo.png)

| a | b |
|---|---|
| 1 | 2 |
"""
BIG = 600 * 1024  # more than a page shows (512 KiB)


def make_browse_repo(server: Server, tmp: Path, name: str) -> dict[str, str]:
    """A repository with a README, code, a big and a binary file on master, a branch `feature/x` and a tag
    `v1`; returns the commits by name."""
    git = make_git(tmp)
    work = make_repo(server, git, name, {"README.md": README, "src/app.py": "print('<hello>')\n" * 3,
                                         "docs/guide.md": "# Guide\n\nSee [the README](../README.md).\n",
                                         "data/big.txt": "x" * (BIG - 1) + "\n"}, "first commit")  # fmt: skip
    (work / "docs" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(64))
    second = git.commit({"src/app.py": "print('second')\n"}, "second <commit>", cwd=work)
    git("tag", "v1", cwd=work)
    git("push", "-q", "origin", "master", "v1", cwd=work)
    git("checkout", "-q", "-b", "feature/x", cwd=work)
    feature = git.commit({"feature.txt": "only on the branch\n"}, "feature work", cwd=work)
    git("push", "-q", "origin", "feature/x", cwd=work)
    return {"second": second, "feature": feature}


@contextmanager
def signed_in(server: Server, token: str | None = None) -> Iterator[httpx.Client]:
    """An HTTP client signed in to the web UI, as a browser is (the cookie), following no redirect."""
    with httpx.Client(base_url=server.url, timeout=60, follow_redirects=False, verify=TLS) as web:
        answer = web.post("/login", data={"token": token or server.token, "next": "/"})
        assert answer.status_code == 303, answer.text
        yield web
