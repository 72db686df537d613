"""Names and paths that would leave the workspace are refused with the exact message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlyard.errors import InvalidInput
from mlyard.names import REPO_RULE
from mlyard.workspace import LocalWorkspace, open_workspace

BRANCH_RULE = (
    "branch names follow git's rules (no spaces, '..', '~', '^', ':', '?', '*', '[', '\\', "
    "no leading '-' or '.', no trailing '/' or '.lock')"
)

BAD_BRANCHES = [
    ("../../etc", "invalid branch name '../../etc': '..' segments would escape the workspace"),
    ("feature/../../x", "invalid branch name 'feature/../../x': '..' segments would escape the workspace"),
    ("/etc/passwd", "invalid branch name '/etc/passwd': a branch name must not start with '/'"),
    ("", "invalid branch name '': a branch name is required"),
    ("a..b", f"invalid branch name 'a..b': {BRANCH_RULE}"),
    ("feature/.hidden", f"invalid branch name 'feature/.hidden': {BRANCH_RULE}"),
    ("feature//x", f"invalid branch name 'feature//x': {BRANCH_RULE}"),
    ("x.lock", f"invalid branch name 'x.lock': {BRANCH_RULE}"),
    ("a b", f"invalid branch name 'a b': {BRANCH_RULE}"),
]

BAD_APPS = ["/etc", "../demo", "demo/x", "..", ".versions", "Demo", "demo.git"]


@pytest.mark.parametrize(("branch", "message"), BAD_BRANCHES)
def test_bad_branches_are_refused(tmp_path: Path, source: Path, branch: str, message: str) -> None:
    ws = LocalWorkspace(tmp_path / "ws")
    with pytest.raises(InvalidInput) as err:
        ws.deploy("demo", branch, source, manifest={})
    assert err.value.message == message
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("app", BAD_APPS)
def test_bad_apps_are_refused(tmp_path: Path, source: Path, app: str) -> None:
    ws = LocalWorkspace(tmp_path / "ws")
    with pytest.raises(InvalidInput) as err:
        ws.deploy(app, "master", source, manifest={})
    assert err.value.message == f"invalid repository name {app!r}: {REPO_RULE}"
    assert not (tmp_path / "ws").exists()


def test_a_symlinked_app_folder_is_not_followed(tmp_path: Path, source: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "ws/ml_apps").mkdir(parents=True)
    os.symlink(outside, tmp_path / "ws/ml_apps/demo")
    ws = LocalWorkspace(tmp_path / "ws")
    with pytest.raises(InvalidInput) as err:
        ws.deploy("demo", "master", source, manifest={})
    assert err.value.message == (
        f"refusing 'ml_apps/demo' in workspace {ws.uri}: it is a symbolic link, which could lead out of the workspace"
    )
    assert list(outside.iterdir()) == []


def test_a_symlinked_apps_folder_is_not_followed(tmp_path: Path, source: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "ws").mkdir()
    os.symlink(outside, tmp_path / "ws/ml_apps")
    ws = LocalWorkspace(tmp_path / "ws")
    with pytest.raises(InvalidInput) as err:
        ws.deploy("demo", "master", source, manifest={})
    assert err.value.message == (
        f"refusing 'ml_apps' in workspace {ws.uri}: it is a symbolic link, which could lead out of the workspace"
    )
    assert list(outside.iterdir()) == []


def test_a_foreign_link_inside_an_app_is_not_followed(tmp_path: Path, source: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "ws/ml_apps/demo").mkdir(parents=True)
    os.symlink(outside, tmp_path / "ws/ml_apps/demo/feature")
    ws = LocalWorkspace(tmp_path / "ws")
    with pytest.raises(InvalidInput) as err:
        ws.deploy("demo", "feature/x", source, manifest={})
    assert err.value.message == (
        f"refusing 'ml_apps/demo/feature' in workspace {ws.uri}: it is a symbolic link, "
        "which could lead out of the workspace"
    )
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../x", "invalid workspace path '../x': '..' segments would escape the workspace"),
        ("ml_apps/../../x", "invalid workspace path 'ml_apps/../../x': '..' segments would escape the workspace"),
        ("/etc", "invalid workspace path '/etc': paths are relative to the workspace root"),
        ("out", "invalid workspace path 'out': it leads out of the workspace"),
    ],
)
def test_ls_refuses_paths_out_of_the_workspace(tmp_path: Path, path: str, message: str) -> None:
    (tmp_path / "ws").mkdir()
    os.symlink(tmp_path, tmp_path / "ws/out")
    with pytest.raises(InvalidInput) as err:
        LocalWorkspace(tmp_path / "ws").ls(path)
    assert err.value.message == message


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("databricks://adb-123.azuredatabricks.net/", "unsupported workspace URI "),
        ("s3://bucket/ws", "unsupported workspace URI "),
        ("/plain/path", "unsupported workspace URI "),
    ],
)
def test_unsupported_schemes(uri: str, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        open_workspace(uri)
    assert err.value.message == f"{message}{uri!r}: supported schemes: file://"


def test_file_uris_need_an_absolute_local_path() -> None:
    with pytest.raises(InvalidInput) as err:
        open_workspace("file://server/share/ws")
    assert err.value.message == (
        "invalid workspace URI 'file://server/share/ws': "
        "a local workspace is file:///absolute/path (no host, absolute path)"
    )


def test_a_source_that_contains_the_workspace_is_refused(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x\n")
    workspace = LocalWorkspace(tmp_path / "ws")
    with pytest.raises(InvalidInput) as caught:
        workspace.deploy("demo", "master", tmp_path, manifest={})
    assert str(caught.value) == (
        f"the source folder {tmp_path} contains the workspace {tmp_path / 'ws'}: "
        "deploy from a folder outside the workspace"
    )
    assert not (tmp_path / "ws" / "ml_apps" / "demo" / "master").exists()
