"""The local workspace adapter on real folders: deploy, redeploy, branches, ls/show/remove."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlyard.errors import Conflict, InvalidInput, NotFound
from mlyard.workspace import MANIFEST_FILE, LocalWorkspace, open_workspace
from tests.workspace.conftest import build_tree

META = {
    "commit": "0123456789abcdef",
    "run": {"id": "7", "url": "http://x/runs/7"},
    "deployed_by": "ci",
    "environment": "dev",
}


def deployed_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_deploy_copies_the_source_without_git_caches_and_venv(tmp_path: Path, source: Path) -> None:
    ws = LocalWorkspace(tmp_path / "ws")
    result = ws.deploy("demo", "master", source, manifest=META)

    target = tmp_path / "ws" / "ml_apps" / "demo" / "master"
    assert result["path"] == str(target)
    assert deployed_files(target) == {
        MANIFEST_FILE,
        "src/demo/__init__.py",
        "src/demo/train.py",
        "tests/unit/test_train.py",
    }
    assert (target / "src/demo/train.py").read_text() == (source / "src/demo/train.py").read_text()
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    assert {k: manifest[k] for k in ("app", "branch", "commit", "run", "deployed_by", "environment")} == {
        "app": "demo",
        "branch": "master",
        "commit": "0123456789abcdef",
        "run": {"id": "7", "url": "http://x/runs/7"},
        "deployed_by": "ci",
        "environment": "dev",
    }
    assert manifest["files"] == 3
    assert manifest["bytes"] == sum((source / f).stat().st_size for f in deployed_files(target) - {MANIFEST_FILE})
    assert manifest["deployed_at"].endswith("+00:00")
    assert {k: result[k] for k in manifest} == manifest


def test_redeploy_replaces_the_content_and_the_manifest(tmp_path: Path, source: Path) -> None:
    ws = LocalWorkspace(tmp_path / "ws", grace_seconds=0)
    ws.deploy("demo", "master", source, manifest=META)
    second = build_tree(tmp_path / "second", {"src/demo/new.py": "new\n"})
    ws.deploy("demo", "master", second, manifest={**META, "commit": "fedcba"})

    target = tmp_path / "ws" / "ml_apps" / "demo" / "master"
    assert deployed_files(target) == {MANIFEST_FILE, "src/demo/new.py"}
    assert json.loads((target / MANIFEST_FILE).read_text())["commit"] == "fedcba"
    # with no grace period the replaced version is gone from the version store too
    versions = list((tmp_path / "ws" / "ml_apps" / "demo" / ".versions").glob("*/*"))
    assert [v.name for v in versions] == [os.readlink(target).rsplit("/", 1)[1]]


def test_replaced_versions_stay_for_the_grace_period(tmp_path: Path, source: Path) -> None:
    ws = LocalWorkspace(tmp_path / "ws")
    first = Path(os.path.realpath(ws.deploy("demo", "master", source, manifest=META)["path"]))
    ws.deploy("demo", "master", source, manifest=META)
    assert (first / "src/demo/train.py").is_file()


@pytest.mark.parametrize("branch", ["feature/x", "users/ana/fix-1", "release/2.0"])
def test_a_full_branch_name_becomes_folders(tmp_path: Path, source: Path, branch: str) -> None:
    ws = LocalWorkspace(tmp_path / "ws")
    ws.deploy("demo", branch, source, manifest=META)

    app_dir = tmp_path / "ws" / "ml_apps" / "demo"
    target = app_dir.joinpath(*branch.split("/"))
    assert (target / "src/demo/train.py").is_file()
    assert target.is_symlink() and not target.parent.is_symlink() and target.parent.is_dir()
    assert json.loads((target / MANIFEST_FILE).read_text())["branch"] == branch
    assert [(d["app"], d["branch"]) for d in ws.deployments()] == [("demo", branch)]


def test_branches_of_one_app_are_independent(tmp_path: Path, source: Path) -> None:
    ws = LocalWorkspace(tmp_path / "ws")
    other = build_tree(tmp_path / "other", {"only.txt": "x"})
    ws.deploy("demo", "master", source, manifest=META)
    ws.deploy("demo", "feature/x", other, manifest=META)
    ws.deploy("other-app", "master", other, manifest=META)

    assert [(d["app"], d["branch"]) for d in ws.deployments()] == [
        ("demo", "feature/x"),
        ("demo", "master"),
        ("other-app", "master"),
    ]
    assert [f["path"] for f in ws.show("demo", "feature/x")["files"]] == ["only.txt"]
    assert len(ws.show("demo", "master")["files"]) == 3


def test_a_branch_and_a_folder_of_branches_conflict(tmp_path: Path, source: Path) -> None:
    ws = LocalWorkspace(tmp_path / "ws")
    ws.deploy("demo", "feature", source, manifest=META)
    with pytest.raises(Conflict) as err:
        ws.deploy("demo", "feature/x", source, manifest=META)
    assert err.value.message == (
        "branch 'feature/x' of app 'demo' conflicts with the deployed branch 'feature': remove 'feature' first"
    )
    ws.remove("demo", "feature")
    ws.deploy("demo", "feature/x", source, manifest=META)
    with pytest.raises(Conflict) as err:
        ws.deploy("demo", "feature", source, manifest=META)
    assert err.value.message == (
        "branch 'feature' of app 'demo' conflicts with the deployed branches under 'feature/': remove them first"
    )


def test_show_lists_the_manifest_and_the_files(tmp_path: Path, source: Path) -> None:
    ws = LocalWorkspace(tmp_path / "ws")
    ws.deploy("demo", "feature/x", source, manifest=META)
    detail = ws.show("demo", "feature/x")
    assert detail["commit"] == "0123456789abcdef" and detail["branch"] == "feature/x"
    assert detail["path"] == str(tmp_path / "ws/ml_apps/demo/feature/x")
    assert detail["files"] == [
        {"path": "src/demo/__init__.py", "size": 0},
        {"path": "src/demo/train.py", "size": len("# Databricks notebook source\nprint('train')\n")},
        {"path": "tests/unit/test_train.py", "size": len("def test_ok():\n    assert True\n")},
    ]


def test_show_of_a_branch_not_deployed(tmp_path: Path, source: Path) -> None:
    ws = LocalWorkspace(tmp_path / "ws")
    ws.deploy("demo", "master", source, manifest=META)
    with pytest.raises(NotFound) as err:
        ws.show("demo", "dev")
    assert err.value.message == (
        f"branch 'dev' of app 'demo' is not deployed in workspace {ws.uri}; deployed branches: master"
    )


def test_ls_walks_apps_branches_and_files(tmp_path: Path, source: Path) -> None:
    ws = LocalWorkspace(tmp_path / "ws")
    assert ws.ls() == []
    ws.deploy("demo", "master", source, manifest=META)
    ws.deploy("demo", "feature/x", source, manifest=META)

    def names(path: str) -> list[tuple[str, str]]:
        return [(e["name"], e["type"]) for e in ws.ls(path)]

    assert names("") == [("ml_apps", "dir")]
    assert names("ml_apps") == [("demo", "app")]
    assert names("ml_apps/demo") == [("feature", "dir"), ("master", "branch")]
    assert names("ml_apps/demo/feature") == [("x", "branch")]
    assert names("ml_apps/demo/master") == [(MANIFEST_FILE, "file"), ("src", "dir"), ("tests", "dir")]
    assert names("ml_apps/demo/feature/x/src/demo") == [("__init__.py", "file"), ("train.py", "file")]
    [entry] = ws.ls("ml_apps/demo/master/src/demo/train.py")
    assert entry["size"] == (source / "src/demo/train.py").stat().st_size and entry["modified"]
    with pytest.raises(NotFound) as err:
        ws.ls("ml_apps/nope")
    assert err.value.message == f"no such path 'ml_apps/nope' in workspace {ws.uri}"


def test_remove_takes_the_branch_away(tmp_path: Path, source: Path) -> None:
    ws = LocalWorkspace(tmp_path / "ws")
    ws.deploy("demo", "master", source, manifest=META)
    ws.deploy("demo", "feature/x", source, manifest=META)
    removed = ws.remove("demo", "feature/x")
    assert removed["removed"] is True and removed["branch"] == "feature/x"
    app_dir = tmp_path / "ws/ml_apps/demo"
    assert not (app_dir / "feature").exists()
    assert [d["branch"] for d in ws.deployments()] == ["master"]
    assert [p.name for p in (app_dir / ".versions").iterdir() if p.is_dir()] == [
        os.readlink(app_dir / "master").split("/")[1]
    ]
    with pytest.raises(NotFound):
        ws.remove("demo", "feature/x")
    ws.deploy("demo", "feature/x", source, manifest=META)
    assert (app_dir / "feature/x/src/demo/train.py").is_file()


def test_source_must_be_an_existing_folder(tmp_path: Path) -> None:
    ws = LocalWorkspace(tmp_path / "ws")
    with pytest.raises(NotFound) as err:
        ws.deploy("demo", "master", tmp_path / "missing", manifest=META)
    assert err.value.message == f"source folder '{tmp_path / 'missing'}' does not exist"
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InvalidInput) as err2:
        ws.deploy("demo", "master", tmp_path / "file.txt", manifest=META)
    assert err2.value.message == f"source '{tmp_path / 'file.txt'}' is not a folder"
    assert not (tmp_path / "ws/ml_apps/demo/master").exists()


def test_symlinks_in_the_source_are_never_followed_out(tmp_path: Path) -> None:
    secret = build_tree(tmp_path / "secret", {"key.txt": "secret"})
    src = build_tree(tmp_path / "src", {"code/a.py": "a", ".git/config": "x"})
    os.symlink("code/a.py", src / "inside")
    os.symlink("code", src / "inside-dir")
    os.symlink(str(secret / "key.txt"), src / "absolute")
    os.symlink("../secret", src / "outside")
    os.symlink("../../secret/key.txt", src / "code" / "sneaky")
    os.symlink("missing.py", src / "dangling")
    os.symlink(".git/config", src / "into-git")

    ws = LocalWorkspace(tmp_path / "ws")
    result = ws.deploy("demo", "master", src, manifest=META)
    target = tmp_path / "ws/ml_apps/demo/master"
    assert os.readlink(target / "inside") == "code/a.py" and (target / "inside").read_text() == "a"
    assert os.readlink(target / "inside-dir") == "code" and (target / "inside-dir/a.py").read_text() == "a"
    for name in ("absolute", "outside", "code/sneaky", "dangling", "into-git"):
        assert not os.path.lexists(target / name)
    assert result["warnings"] == [
        f"skipped link absolute -> {secret / 'key.txt'}: absolute links are not deployed",
        "skipped link dangling -> missing.py: its target is missing or not deployed",
        "skipped link into-git -> .git/config: its target is missing or not deployed",
        "skipped link outside -> ../secret: it points outside the source folder",
        "skipped link code/sneaky -> ../../secret/key.txt: it points outside the source folder",
    ]
    assert json.loads((target / MANIFEST_FILE).read_text())["skipped"] == result["warnings"]
    assert result["files"] == 3
    assert ws.show("demo", "master")["files"] == [
        {"path": "code/a.py", "size": 1},
        {"path": "inside", "size": len("code/a.py"), "link_to": "code/a.py"},
        {"path": "inside-dir", "size": len("code"), "link_to": "code"},
    ]


def test_open_workspace_by_uri(tmp_path: Path) -> None:
    ws = open_workspace((tmp_path / "a b").as_uri())
    assert isinstance(ws, LocalWorkspace) and ws.root == tmp_path / "a b"
    assert open_workspace(f"file://localhost{tmp_path}").uri == tmp_path.as_uri()
