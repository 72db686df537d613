"""Readers never see half a deploy; concurrent deploys of one branch end consistent."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

from mlyard.workspace import MANIFEST_FILE, LocalWorkspace
from tests.workspace.conftest import build_tree

REDEPLOYS = 30


def version_tree(root: Path, tag: str, extra_files: int = 20) -> Path:
    """A source whose files all carry `tag`: a.txt and b.txt first and last, many files between."""
    files = {"a.txt": tag, "b.txt": tag}
    files.update({f"pkg/m{i:02}.py": f"# {tag}\n" * 50 for i in range(extra_files)})
    return build_tree(root, files)


def test_a_reader_never_sees_a_missing_file_or_mixed_versions(tmp_path: Path) -> None:
    ws = LocalWorkspace(tmp_path / "ws")
    sources = [version_tree(tmp_path / f"v{i}", f"v{i}") for i in range(REDEPLOYS + 1)]
    ws.deploy("demo", "master", sources[0], manifest={"commit": "v0"})
    link = tmp_path / "ws/ml_apps/demo/master"
    stop = threading.Event()
    problems: list[str] = []
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            try:
                direct = (link / "a.txt").read_text()  # through the link, as a notebook would
                version = Path(os.path.realpath(link))  # one resolution, then both files of that version
                a, b = (version / "a.txt").read_text(), (version / "b.txt").read_text()
                tag = json.loads((version / MANIFEST_FILE).read_text())["commit"]
            except OSError as exc:
                problems.append(f"read failed: {exc}")
                continue
            if not direct.startswith("v") or a != b or a != tag:
                problems.append(f"mixed versions: direct={direct} a={a} b={b} manifest={tag}")
            reads[0] += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(1, REDEPLOYS + 1):
            ws.deploy("demo", "master", sources[i], manifest={"commit": f"v{i}"})
    finally:
        stop.set()
        thread.join()
    assert problems == []
    assert reads[0] > REDEPLOYS
    assert (link / "a.txt").read_text() == f"v{REDEPLOYS}"


def _deploy_many(root: str, tag: str, source: str, count: int, start: Any) -> None:
    ws = LocalWorkspace(Path(root), grace_seconds=0)
    start.wait(60)  # both processes begin together, so their deploys overlap
    for i in range(count):
        ws.deploy("demo", "feature/x", Path(source), manifest={"commit": f"{tag}-{i}"})


def test_concurrent_deploys_from_two_processes_end_consistent(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    count = 20
    start = ctx.Barrier(2)
    trees = {tag: version_tree(tmp_path / tag, tag) for tag in ("p1", "p2")}
    procs = [
        ctx.Process(target=_deploy_many, args=(str(tmp_path / "ws"), tag, str(tree), count, start))
        for tag, tree in trees.items()
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0, 0]

    link = tmp_path / "ws/ml_apps/demo/feature/x"
    manifest = json.loads((link / MANIFEST_FILE).read_text())
    winner = manifest["commit"].split("-")[0]
    assert manifest["commit"] == f"{winner}-{count - 1}"  # the last switch wins
    assert (link / "a.txt").read_text() == (link / "b.txt").read_text() == winner
    assert {p.read_text() for p in (link / "pkg").iterdir()} == {f"# {winner}\n" * 50}
    assert manifest["files"] == 22
    versions = [p for p in (tmp_path / "ws/ml_apps/demo/.versions").iterdir() if p.is_dir()]
    assert len(versions) == 1
    leftovers = [p.name for p in (tmp_path / "ws/ml_apps/demo/feature").iterdir()]
    assert leftovers == ["x"]  # no temporary links left behind
