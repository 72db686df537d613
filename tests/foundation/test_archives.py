"""mlyard.archives refuses unsafe entries itself, so the same archive is refused on every Python."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from mlyard.archives import UnsafeEntry, safe_extract


def _archive(*members: tarfile.TarInfo) -> tarfile.TarFile:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member in members:
            archive.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    buffer.seek(0)
    return tarfile.open(fileobj=buffer)


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    ("member", "problem"),
    [
        (_member("/etc/evil"), "outside path"),
        (_member("a/../../evil"), "outside path"),
        (_member("link", tarfile.SYMTYPE, "/etc/passwd"), "absolute link"),
        (_member("sub/link", tarfile.SYMTYPE, "../../passwd"), "outside link"),
        (_member("hard", tarfile.LNKTYPE, "../passwd"), "outside link"),
        (_member("fifo", tarfile.FIFOTYPE), "special file"),
        (_member("dev", tarfile.CHRTYPE), "special file"),
    ],
    ids=["absolute-name", "dotdot-name", "absolute-link", "outside-link", "outside-hardlink", "fifo", "device"],
)
def test_unsafe_entries_are_refused_before_anything_is_written(
    tmp_path: Path, member: tarfile.TarInfo, problem: str
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with _archive(_member("first.txt"), member) as tar, pytest.raises(UnsafeEntry) as raised:
        safe_extract(tar, dest)
    assert raised.value.problem == problem and raised.value.name == member.name
    assert list(dest.iterdir()) == []  # checked first: not even the safe first member was written


def test_links_inside_the_tree_are_extracted(tmp_path: Path) -> None:
    with _archive(_member("sub/data.txt"), _member("sub/link", tarfile.SYMTYPE, "data.txt"),
                  _member("top", tarfile.SYMTYPE, "sub/data.txt")) as tar:  # fmt: skip
        safe_extract(tar, tmp_path)
    assert (tmp_path / "top").read_text() == "x" and (tmp_path / "sub" / "link").read_text() == "x"
