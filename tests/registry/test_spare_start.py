"""The MLflow server process of an environment imports MLflow's server app as fast as it can: with Python's cyclic
garbage collector off during the import (the objects it creates are then frozen and the collector is on again),
and, for `mlyard server`, started before the CLI's own imports (docs/registry.md)."""

from __future__ import annotations

import gc
import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from mlyard.cli import server_home, starts_the_server
from mlyard.registry import tracking_server

FAKE_APP = "tests.registry.fake_server_app"


@pytest.fixture
def fake_app(monkeypatch: pytest.MonkeyPatch, collector: None) -> Iterator[None]:
    """MLflow's app replaced by tests/registry/fake_server_app.py, imported afresh; the collector's state restored
    (the `collector` fixture)."""
    monkeypatch.setattr(tracking_server, "APP", f"{FAKE_APP}:app")
    monkeypatch.setattr(tracking_server, "WARM_MODULES", ())
    sys.modules.pop(FAKE_APP, None)
    try:
        yield
    finally:
        sys.modules.pop(FAKE_APP, None)


def test_the_app_is_imported_without_the_collector_then_its_objects_are_frozen(fake_app: None) -> None:
    gc.enable()
    gc.unfreeze()
    tracking_server.prepare_app()
    imported = sys.modules[FAKE_APP]
    assert imported.COLLECTING_AT_IMPORT is False  # off while the app was imported
    assert gc.isenabled()  # on again for the requests
    assert gc.get_freeze_count() > 0  # what the import made is never scanned again
    assert tuple(imported.ASKED) == tracking_server.WARM_PATHS  # the warm-up still asked its paths


def test_a_collector_that_was_off_stays_off(fake_app: None) -> None:
    gc.disable()
    tracking_server.prepare_app()
    assert not gc.isenabled()


@pytest.fixture
def optional_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package `mlyard_test_optional` (with a submodule `probed`) importable from now on, and the one optional
    package that `prepare_app` does not probe for."""
    package = tmp_path / "packages" / "mlyard_test_optional"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "probed.py").write_text("")
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.setattr(tracking_server, "UNPROBED", ("mlyard_test_optional",))
    try:
        yield "mlyard_test_optional"
    finally:
        for name in [name for name in sys.modules if name.partition(".")[0] == "mlyard_test_optional"]:
            del sys.modules[name]
        sys.modules.pop(f"{FAKE_APP}_needing", None)


def test_optional_packages_are_not_probed_while_the_app_is_imported(fake_app: None, optional_package: str) -> None:
    finders = list(sys.meta_path)
    tracking_server.prepare_app()
    assert sys.modules[FAKE_APP].OPTIONAL_FOUND is False  # the app's probe found nothing
    assert optional_package not in sys.modules
    assert sys.meta_path == finders  # nothing left behind: the package imports as usual now
    assert importlib.import_module(f"{optional_package}.probed").__name__ == f"{optional_package}.probed"
    sys.modules.pop(FAKE_APP)
    tracking_server.prepare_app()  # the app imported again, the package already imported: found
    assert sys.modules[FAKE_APP].OPTIONAL_FOUND is True


def test_an_app_that_needs_an_optional_package_is_imported_with_it(
    fake_app: None, optional_package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracking_server, "APP", f"{FAKE_APP}_needing:app")
    tracking_server.prepare_app()  # refused, then imported again as usual
    assert optional_package in sys.modules and f"{FAKE_APP}_needing" in sys.modules
    assert tuple(sys.modules[FAKE_APP].ASKED) == tracking_server.WARM_PATHS  # warmed as usual


@pytest.mark.parametrize(
    ("argv", "starts"),
    [
        (["/venv/bin/mlyard", "server"], True),
        (["/venv/bin/mlyard", "server", "--port", "8765", "--agents", "0"], True),
        (["/venv/bin/mlyard", "--home", "/data/mlyard", "server"], True),
        (["/src/mlyard/__main__.py", "--home=/data/mlyard", "server"], True),  # python -m mlyard
        (["/venv/bin/mlyard", "server", "--help"], False),
        (["/venv/bin/mlyard", "--version", "server"], False),
        (["/venv/bin/mlyard", "--home", "server"], False),  # `server` is the home here: no command
        (["/venv/bin/mlyard", "agent", "server"], False),
        (["/venv/bin/mlyard", "models", "list"], False),
        (["/venv/bin/mlyard"], False),
        (["/venv/bin/pytest", "server"], False),  # another program importing the CLI
        ([], False),
    ],
)  # fmt: skip
def test_the_server_command_line_is_recognised_before_the_clis_imports(argv: list[str], starts: bool) -> None:
    assert starts_the_server(argv) is starts


SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.argv = [sys.argv[1], "--home", sys.argv[2], "server"]
    import mlyard.cli
    from mlyard.registry import tracking_server
    zygotes = [{"pid": zygote.pid, "folder": str(zygote.folder), "mark": zygote.mark}
               for zygote in tracking_server._EARLY]
    print(json.dumps({"typer": "typer" in sys.modules, "zygotes": zygotes}))
    """
)


@pytest.mark.slow
def test_mlyard_server_starts_its_zygote_first_and_one_not_taken_stops_at_exit(tmp_path: Path) -> None:
    def run(warm: str) -> dict[str, Any]:
        program = str(tmp_path / "bin" / "mlyard")  # the console script's name
        env = {**os.environ, "MLYARD_REGISTRY_WARM": warm}
        proc = subprocess.run([sys.executable, "-c", SCRIPT, program, str(tmp_path / "home")], env=env,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return dict(json.loads(proc.stdout))

    started = run("1")
    assert started["typer"] is False  # started before the CLI imported its libraries
    [zygote] = started["zygotes"]
    # it carries the mark of the home the command line names (its forks' /proc environ: orphans are found by it)
    assert zygote["mark"] == ["MLYARD_AGENT_MARK", str((tmp_path / "home").resolve())]
    # the command never took it (the process ended first): stopped and its folder removed at exit
    assert not psutil.pid_exists(zygote["pid"]) or psutil.Process(zygote["pid"]).status() == psutil.STATUS_ZOMBIE
    assert not Path(zygote["folder"]).exists()
    assert run("0")["zygotes"] == []  # MLYARD_REGISTRY_WARM=0: no MLflow process starts with the server


@pytest.mark.parametrize(
    ("argv", "home"),
    [
        (["/venv/bin/mlyard", "server"], None),
        (["/venv/bin/mlyard", "--home", "/data/a", "server", "--port", "1"], "/data/a"),
        (["/venv/bin/mlyard", "--home=/data/a", "server"], "/data/a"),
        (["/venv/bin/mlyard", "--home", "/data/a", "server", "--home", "/data/b"], "/data/b"),  # the command's wins
        (["/venv/bin/mlyard", "server", "--home=/data/b"], "/data/b"),
    ],
)  # fmt: skip
def test_the_servers_home_is_read_before_the_clis_imports(argv: list[str], home: str | None) -> None:
    assert server_home(argv) == home


def test_entry_points_are_read_once_while_the_app_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata as metadata

    original = metadata.entry_points
    reads: list[dict[str, str]] = []

    def counted(**params: str) -> Any:
        reads.append(params)
        return original(**params)

    monkeypatch.setattr(metadata, "entry_points", counted)
    groups = ("console_scripts", "mlflow.deployments", "pytest11")
    with tracking_server._entry_points_read_once():
        kept = metadata.entry_points  # as `from importlib.metadata import entry_points` in a module imported now
        during = {group: tuple(metadata.entry_points(group=group)) for group in groups}
        again = tuple(metadata.entry_points(group="console_scripts"))
    assert during == {group: tuple(original(group=group)) for group in groups}  # the same answers
    assert again == during["console_scripts"]
    assert reads == [{}]  # the installed packages were read once
    assert metadata.entry_points is counted  # the import is done: the function itself again
    kept(group="pytest11")
    assert reads == [{}, {"group": "pytest11"}]  # a kept reference asks the function itself


def test_url_builders_compile_on_first_use_and_build_the_same_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    from werkzeug.routing import Map, Rule

    original = Rule._compile_builder
    compiled: list[str] = []

    def counted(self: Rule, append_unknown: bool = True) -> Any:
        compiled.append(self.rule)
        return original(self, append_unknown)

    monkeypatch.setattr(Rule, "_compile_builder", counted)

    def url_map() -> Map:
        return Map([
            Rule("/api/2.0/mlflow/runs/get", endpoint="get_run"),
            Rule("/artifacts/<path:artifact_path>", endpoint="artifact", methods=["GET", "PUT"]),
            Rule("/jobs/<int:job_id>/runs/<run_id>", endpoint="job_run"),
            Rule("/page/<int:page>", endpoint="page", defaults={"page": 1}),
            Rule("/page/<int:page>", endpoint="page"),
            Rule("/static/<path:filename>", endpoint="static", subdomain="<tenant>"),
        ])  # fmt: skip

    cases = [
        ("get_run", {}), ("get_run", {"run_id": "a b", "flag": ["x", "y"]}), ("artifact", {"artifact_path": "m/a.pkl"}),
        ("job_run", {"job_id": 7, "run_id": "r?1"}), ("page", {"page": 1}), ("page", {"page": 3}),
        ("static", {"tenant": "t1", "filename": "x.js"}),
    ]  # fmt: skip
    eager = url_map().bind("example.org", url_scheme="http")
    expected = [eager.build(endpoint, values, force_external=True) for endpoint, values in cases]
    assert len(compiled) == 12  # two builders per rule, when the rule was added
    compiled.clear()
    with tracking_server._url_builders_on_first_use():
        lazy_map = url_map()
        assert compiled == []  # none compiled while the rules were added
    assert Rule._compile_builder is counted  # restored
    lazy = lazy_map.bind("example.org", url_scheme="http")
    assert [lazy.build(endpoint, values, force_external=True) for endpoint, values in cases] == expected
    built = len(compiled)
    assert 0 < built < 12  # only the builders used
    assert [lazy.build(endpoint, values, force_external=True) for endpoint, values in cases] == expected
    assert len(compiled) == built  # each compiled once
    with pytest.raises(Exception, match="job_id"):
        lazy.build("job_run", {"run_id": "r"})  # a missing value is still an error
