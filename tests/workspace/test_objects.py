"""Databricks' view of a local workspace (mlyard.workspace.objects), in process: kinds, names, escapes."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from mlyard.errors import Conflict, InvalidInput, NotFound
from mlyard.workspace import LocalWorkspace
from mlyard.workspace import objects as objects_module
from mlyard.workspace.objects import DirectoryNotEmpty, TooLarge, WorkspaceObjects

HEADER = b"# Databricks notebook source\n"


@pytest.fixture
def tree(tmp_path: Path) -> WorkspaceObjects:
    return WorkspaceObjects(tmp_path / "ws")


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "fmt", "language", "kind", "path"),
    [
        ("train.py", HEADER + b"x = 1\n", "AUTO", None, "NOTEBOOK", "/a/train"),
        ("train.py", b"x = 1\n", "AUTO", None, "FILE", "/a/train.py"),
        ("train", HEADER + b"x = 1\n", "AUTO", None, "NOTEBOOK", "/a/train"),
        ("q.sql", b"-- Databricks notebook source\nselect 1", "AUTO", None, "NOTEBOOK", "/a/q"),
        ("q.sql", HEADER + b"select 1", "AUTO", None, "FILE", "/a/q.sql"),  # the header of another language
        ("train.py", b"x = 1\n", "SOURCE", "PYTHON", "NOTEBOOK", "/a/train.py"),  # SOURCE keeps the name
        ("nb", HEADER + b"x = 1\n", "SOURCE", None, "NOTEBOOK", "/a/nb"),  # the header names the language
        ("train.py", HEADER + b"x = 1\n", "RAW", None, "NOTEBOOK", "/a/train"),  # stored as is: it is a notebook
        ("data.csv", b"a,b\n", "RAW", None, "FILE", "/a/data.csv"),
    ],
)
def test_import_kinds(
    tree: WorkspaceObjects, name: str, content: bytes, fmt: str, language: str | None, kind: str, path: str
) -> None:
    tree.mkdirs("/a")
    info = tree.import_object(f"/a/{name}", content, fmt=fmt, language=language)
    assert (info.object_type, info.path) == (kind, path)
    assert tree.get_status(path).object_type == kind
    assert [o.path for o in tree.list("/a")] == [path]


def test_a_notebook_file_is_not_reachable_under_its_file_name(tree: WorkspaceObjects) -> None:
    tree.mkdirs("/a")
    tree.import_object("/a/train.py", HEADER, fmt="AUTO")
    with pytest.raises(NotFound) as err:
        tree.get_status("/a/train.py")
    assert err.value.message == "Path (/a/train.py) doesn't exist."
    with pytest.raises(Conflict) as taken:
        tree.import_object("/a/train.py", b"plain\n", fmt="RAW")
    assert taken.value.message == "Path (/a/train) already exists. Import with overwrite=true to replace it."
    tree.import_object("/a/train.py", b"plain\n", fmt="RAW", overwrite=True)
    assert tree.get_status("/a/train.py").object_type == "FILE"
    with pytest.raises(NotFound):
        tree.get_status("/a/train")


def test_paths_cannot_leave_the_workspace(tmp_path: Path, tree: WorkspaceObjects) -> None:
    outside = tmp_path / "outside"
    (outside / "secret").mkdir(parents=True)
    tree.mkdirs("/a")
    os.symlink(outside, tree.root / "a" / "evil")
    for path in ("/a/evil", "/a/evil/secret"):
        with pytest.raises(NotFound):
            tree.get_status(path)
    with pytest.raises(InvalidInput) as err:
        tree.mkdirs("/a/evil/new")
    assert err.value.message == "invalid path '/a/evil/new': /a/evil leads out of the workspace"
    with pytest.raises(NotFound):
        tree.import_object("/a/evil/x.py", b"x", fmt="RAW")
    assert [o.path for o in tree.list("/a")] == []
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    with pytest.raises(InvalidInput) as dots:
        tree.get_status("/a/../../etc")
    assert dots.value.message == "invalid path '/a/../../etc': '..' segments are not allowed"
    with pytest.raises(InvalidInput, match=r"archive entry '\.\./x'"):
        tree.import_object("/a/pkg", zipped({"../x": b"x"}))
    with pytest.raises(InvalidInput) as relative:
        tree.get_status("a")
    assert relative.value.message == "invalid path 'a': a workspace path is absolute (starts with '/')"


def test_folder_import_export_round_trip(tree: WorkspaceObjects) -> None:
    tree.mkdirs("/apps")
    tree.import_object("/apps/pkg", zipped({"pkg/nb.py": HEADER + b"1\n", "pkg/lib/util.py": b"2\n"}))
    assert tree.get_status("/apps/pkg/nb").object_type == "NOTEBOOK"
    assert tree.get_status("/apps/pkg/lib/util.py").size == 2
    exported = tree.export("/apps/pkg", "AUTO")
    assert exported.file_type == "zip"
    assert sorted(zipfile.ZipFile(io.BytesIO(exported.content)).namelist()) == ["pkg/lib/util.py", "pkg/nb.py"]
    with pytest.raises(Conflict):
        tree.import_object("/apps/pkg", exported.content)
    tree.import_object("/apps/pkg", zipped({"only.py": b"3\n"}), overwrite=True)
    assert [o.path for o in tree.list("/apps/pkg")] == ["/apps/pkg/only.py"]
    assert [p.name for p in (tree.root / "apps").iterdir()] == ["pkg"]  # no staging folder left


def test_deployed_branches_are_folders_removed_with_their_versions(tree: WorkspaceObjects, source: Path) -> None:
    local = LocalWorkspace(tree.root)
    local.deploy("demo", "feature/x", source, manifest={})
    local.deploy("demo", "master", source, manifest={})
    assert [o.path for o in tree.list("/ml_apps/demo")] == ["/ml_apps/demo/feature", "/ml_apps/demo/master"]
    assert tree.get_status("/ml_apps/demo/master").object_type == "DIRECTORY"
    with pytest.raises(NotFound):
        tree.get_status("/ml_apps/demo/.versions")
    with pytest.raises(DirectoryNotEmpty) as err:
        tree.delete("/ml_apps/demo/feature")
    assert err.value.message == "Folder (/ml_apps/demo/feature) is not empty: delete it with recursive=true"
    tree.delete("/ml_apps/demo/feature", recursive=True)
    assert [row["branch"] for row in local.deployments("demo")] == ["master"]
    tree.delete("/ml_apps/demo/master", recursive=True)
    assert local.deployments("demo") == []
    assert list((tree.root / "ml_apps" / "demo" / ".versions").glob("*/*")) == []


def test_limits(tree: WorkspaceObjects, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objects_module, "MAX_OBJECT_BYTES", 10)
    monkeypatch.setattr(objects_module, "MAX_ARCHIVE_ENTRIES", 2)
    tree.mkdirs("/a")
    with pytest.raises(TooLarge) as big:
        tree.import_object("/a/big.txt", b"x" * 11, fmt="RAW")
    assert big.value.message == "the content of /a/big.txt has 11 bytes; at most 10 can be imported at once"
    with pytest.raises(TooLarge, match="more than 2 files"):
        tree.import_object("/a/many", zipped({"1": b"", "2": b"", "3": b""}))
    with pytest.raises(InvalidInput) as dbc:
        tree.import_object("/a/x", b"", fmt="DBC")
    assert dbc.value.message.startswith("format DBC is not supported by mlyard's workspace")
    with pytest.raises(InvalidInput, match="'/' cannot be deleted"):
        tree.delete("/")


def test_a_folder_imported_at_a_branch_is_an_atomic_deploy(tree: WorkspaceObjects) -> None:
    tree.mkdirs("/ml_apps/demo")
    tree.import_object("/ml_apps/demo/master", zipped({"a.py": b"1\n"}), manifest={"deployed_by": "ana"})
    local = LocalWorkspace(tree.root)
    first = local.show("demo", "master")
    assert first["deployed_by"] == "ana" and [f["path"] for f in first["files"]] == ["a.py"]
    with pytest.raises(Conflict):
        tree.import_object("/ml_apps/demo/master", zipped({"b.py": b"2\n"}))
    tree.import_object("/ml_apps/demo/master", zipped({"b.py": b"2\n"}), overwrite=True)
    second = local.show("demo", "master")
    assert [f["path"] for f in second["files"]] == ["b.py"] and second["version"] != first["version"]
    assert (tree.root / "ml_apps" / "demo" / "master").is_symlink()  # switched in one rename, never removed
    assert [p.name for p in tree.root.iterdir()] == ["ml_apps"]  # no staging folder left


@pytest.mark.parametrize(
    ("info", "commit", "run"),
    [
        (b'{"commit": "0123abcd0123abcd", "run_url": "http://h/mlyard/_build/results?buildId=42"}', "0123abcd0123abcd",
         {"id": 42, "url": "http://h/mlyard/_build/results?buildId=42"}),
        (b'{"commit": "not a sha; rm -rf /", "run_url": "file:///etc/passwd"}', None, {"id": None, "url": None}),
        (b"[not json", None, {"id": None, "url": None}),
    ],
)  # fmt: skip
def test_a_deployed_folder_says_what_it_was_built_from(
    tree: WorkspaceObjects, info: bytes, commit: str | None, run: dict
) -> None:
    """The template's mlops/deploy_code.py writes .deploy.json; the deploy's manifest takes its commit and run."""
    tree.mkdirs("/ml_apps/demo")
    tree.import_object("/ml_apps/demo/master", zipped({"a.py": b"1\n", ".deploy.json": info}),
                       manifest={"deployed_by": "env-dev", "commit": None})  # fmt: skip
    shown = LocalWorkspace(tree.root).show("demo", "master")
    assert (shown["commit"], shown["run"], shown["deployed_by"]) == (commit, run, "env-dev")
