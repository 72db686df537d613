"""CopyFiles@2, DeleteFiles@1, ArchiveFiles@2, ExtractFiles@1 and the file matching patterns they share.

Sources: the task reference pages "CopyFiles@2 - Copy files v2 task", "DeleteFiles@1 - Delete files v1
task", "ArchiveFiles@2 - Archive files v2 task", "ExtractFiles@1 - Extract files v1 task" (inputs and
defaults) and "File matching patterns reference" (minimatch with dot: true, interleaved excludes).
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from mlyard.agent.patterns import PatternError, match_paths
from mlyard.protocol import FAILED, SUCCEEDED
from tests.agent.conftest import Recorder, Runner, job, script, step

TREE = (
    "mkdir -p src/pkg/sub src/.hidden docs && echo a > src/a.py && echo b > src/pkg/b.py "
    "&& echo c > src/pkg/sub/c.txt && echo h > src/.hidden/h.py && echo r > docs/readme.md && echo t > top.txt"
)
LIST = "find . -path ./.git -prune -o -print | sort"


def _output(rec: Recorder, step_id: str) -> list[str]:
    """What a script step printed (the lines between the command line and the end of the step)."""
    lines = rec.logs[step_id]
    start = next(i for i, line in enumerate(lines) if line.startswith("[command]")) + 1
    return [line for line in lines[start:] if not line.startswith("##[")]


def _tree(root: Path) -> None:
    for name in ("src/a.py", "src/pkg/b.py", "src/pkg/sub/c.txt", "src/.hidden/h.py", "docs/readme.md", "top.txt"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)


def _names(root: Path, paths: list[Path]) -> list[str]:
    return [path.relative_to(root).as_posix() for path in paths]


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        ("**/*.py", ["src/.hidden/h.py", "src/a.py", "src/pkg/b.py"]),
        ("src/*.py", ["src/a.py"]),
        ("**/*.py\n!**/.hidden/**", ["src/a.py", "src/pkg/b.py"]),
        ("**/*.py\n!src/pkg/**\n!!src/pkg/b.py", ["src/.hidden/h.py", "src/a.py", "src/pkg/b.py"]),
        ("# a comment\n\n*.txt", ["top.txt"]),
        ("src/pkg/**", ["src/pkg", "src/pkg/b.py", "src/pkg/sub", "src/pkg/sub/c.txt"]),
        ("src/**/c.txt", ["src/pkg/sub/c.txt"]),
        ("src/?.py", ["src/a.py"]),
        ("src/[ab].py\ndocs/[!x]*", ["docs/readme.md", "src/a.py"]),
        ("{a,b}.py", []),  # braces are literal (nobrace)
    ],
)  # fmt: skip
def test_patterns(tmp_path: Path, patterns: str, expected: list[str]) -> None:
    _tree(tmp_path)
    assert _names(tmp_path, match_paths(tmp_path, patterns)) == expected


def test_patterns_without_dot_files_and_absolute(tmp_path: Path) -> None:
    _tree(tmp_path)
    assert _names(tmp_path, match_paths(tmp_path, "**/*.py", dot=False)) == ["src/a.py", "src/pkg/b.py"]
    absolute = f"{tmp_path}/docs/*.md"
    assert _names(tmp_path, match_paths(tmp_path / "src", absolute)) == ["docs/readme.md"]
    with pytest.raises(PatternError, match=r"the pattern '/etc/\*' looks outside the job's work directory"):
        match_paths(tmp_path, "/etc/*", within=tmp_path)


def test_copy_files(run: Runner) -> None:
    spec = job(
        script("tree", TREE),
        step("copy", "CopyFiles@2", inputs={"sourceFolder": "src", "contents": "**/*.py", "targetFolder": "out"}),
        step("flat", "CopyFiles@2", inputs={"SourceFolder": "src", "Contents": "**/*.py\n!**/.hidden/**",
                                            "TargetFolder": "$(Build.ArtifactStagingDirectory)",
                                            "flattenFolders": True}),
        script("change", "echo new > src/a.py"),
        step("again", "CopyFiles@2", inputs={"SourceFolder": "src", "Contents": "a.py", "TargetFolder": "out"}),
        script("show", f"cat out/a.py && cd out && {LIST} && cd $(Build.ArtifactStagingDirectory) && {LIST}"),
        step("over", "CopyFiles@2", inputs={"SourceFolder": "src", "Contents": "a.py", "TargetFolder": "out",
                                            "OverWrite": "true", "CleanTargetFolder": "true"}),
        script("show2", f"cat out/a.py && cd out && {LIST}"),
    )  # fmt: skip
    _, rec = run(spec)
    assert rec.result("copy") == SUCCEEDED
    assert _output(rec, "show") == ["a", ".", "./.hidden", "./.hidden/h.py", "./a.py", "./pkg", "./pkg/b.py",
                                ".", "./a.py", "./b.py"]  # fmt: skip
    assert any("already exists" in line and "OverWrite is false" in line for line in rec.logs["again"])
    assert _output(rec, "show2") == ["new", ".", "./a.py"]


def test_copy_files_refuses_paths_outside_the_job(run: Runner) -> None:
    spec = job(
        step("missing", "CopyFiles@2", inputs={"Contents": "**"}),
        step("outside", "CopyFiles@2", inputs={"TargetFolder": "/srv/elsewhere"}, condition="always()"),
        script("link", "mkdir -p src && ln -s /etc/hostname src/host", condition="always()"),
        step("leak", "CopyFiles@2", inputs={"SourceFolder": "src", "TargetFolder": "out"}, condition="always()"),
    )  # fmt: skip
    _, rec = run(spec)
    assert rec.issues("missing") == [("error", "input TargetFolder is required: name the folder to copy into")]
    ((_, message),) = rec.issues("outside")
    assert message.startswith("the target folder /srv/elsewhere is outside the job's work directory ")
    assert rec.result("leak") == FAILED
    assert "is outside the job's work directory" in rec.issues("leak")[0][1]


def test_delete_files(run: Runner) -> None:
    spec = job(
        script("tree", TREE),
        step("default", "DeleteFiles@1", inputs={}),  # Contents defaults to myFileShare: nothing here
        step("py", "DeleteFiles@1", inputs={"SourceFolder": "src", "Contents": "**/*.py"}),
        script("show", LIST),
        step("dirs", "DeleteFiles@1", inputs={"Contents": "src/pkg\ndocs"}),
        step("dots", "DeleteFiles@1", inputs={"SourceFolder": "src", "Contents": "**", "RemoveDotFiles": "true",
                                              "RemoveSourceFolder": "true"}),
        script("show2", LIST),
        step("root", "DeleteFiles@1", inputs={"SourceFolder": "$(Pipeline.Workspace)", "Contents": "nothing",
                                              "RemoveSourceFolder": "true"}),
    )  # fmt: skip
    _, rec = run(spec)
    assert rec.result("default") == SUCCEEDED
    # without RemoveDotFiles, .hidden/h.py stays (minimatch dot: false)
    assert _output(rec, "show") == [".", "./docs", "./docs/readme.md", "./src", "./src/.hidden", "./src/.hidden/h.py",
                                "./src/pkg", "./src/pkg/sub", "./src/pkg/sub/c.txt", "./top.txt"]  # fmt: skip
    assert _output(rec, "show2") == [".", "./top.txt"]
    assert rec.issues("root") == [("error", "RemoveSourceFolder cannot remove the job's work directory itself")]


def test_archive_and_extract_zip_and_tar(run: Runner) -> None:
    spec = job(
        script("tree", TREE),
        step("zip", "ArchiveFiles@2", inputs={"rootFolderOrFile": "src"}),  # defaults: zip, root folder included
        step("tgz", "ArchiveFiles@2", inputs={"rootFolderOrFile": "src", "includeRootFolder": "false",
                                              "archiveType": "tar", "archiveFile": "out/src.tar.gz"}),
        step("tar", "ArchiveFiles@2", inputs={"rootFolderOrFile": "docs", "archiveType": "tar",
                                              "tarCompression": "none", "archiveFile": "out/docs.tar"}),
        step("unzip", "ExtractFiles@1", inputs={"archiveFilePatterns": "$(Build.ArtifactStagingDirectory)/*.zip",
                                                "destinationFolder": "x1"}),
        step("untar", "ExtractFiles@1", inputs={"archiveFilePatterns": "out/*.tar*", "destinationFolder": "x2"}),
        script("show", f"cd x1 && {LIST} && cd ../x2 && {LIST} && cat src/pkg/sub/c.txt 2>/dev/null || true"),
        step("sevenzip", "ArchiveFiles@2", inputs={"archiveType": "7z"}),
    )  # fmt: skip
    _, rec = run(spec)
    for name in ("zip", "tgz", "tar", "unzip", "untar"):
        assert rec.result(name) == SUCCEEDED, rec.issues(name)
    assert _output(rec, "show") == [
        ".", "./src", "./src/.hidden", "./src/.hidden/h.py", "./src/a.py", "./src/pkg", "./src/pkg/b.py",
        "./src/pkg/sub", "./src/pkg/sub/c.txt",
        ".", "./.hidden", "./.hidden/h.py", "./a.py", "./docs", "./docs/readme.md", "./pkg", "./pkg/b.py",
        "./pkg/sub", "./pkg/sub/c.txt",
    ]  # fmt: skip
    assert rec.issues("sevenzip") == [("error", "archiveType '7z' is not supported by the mlyard agent (no 7z on "
                                                "agents); use archiveType zip or tar")]  # fmt: skip


def _write_archive(kind: str, members: list[tuple[str, bytes | None, str]]) -> bytes:
    """An archive with (name, data, link target) members: data None and a target makes a symlink."""
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as zipped:
            for name, data, _ in members:
                zipped.writestr(name, data or b"")
        return buffer.getvalue()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data, target in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("kind", "members", "problem"),
    [
        ("zip", [("../evil.txt", b"x", "")], "the archive member '../evil.txt' would be written outside the "
                                               "destination folder"),
        ("tar.gz", [("/abs.txt", b"x", "")], "the archive member '/abs.txt' would be written outside the "
                                             "destination folder"),
        ("tar.gz", [("link", None, "../../../../etc/passwd")], "the archive member 'link' is a link leading out "
                                                               "of the destination"),
        ("tar.gz", [("abs", None, "/etc/passwd")], "the archive member 'abs' is a link leading out of the destination"),
    ],
)  # fmt: skip
def test_extract_refuses_unsafe_members(run: Runner, kind: str, members: list[tuple[str, bytes | None, str]],
                                        problem: str) -> None:  # fmt: skip
    data = _write_archive(kind, members)
    writer = f"import base64,pathlib; pathlib.Path('bad.{kind}').write_bytes(base64.b64decode('{_b64(data)}'))"
    spec = job(
        step("write", "PythonScript@0", inputs={"scriptSource": "inline", "script": writer}),
        step("extract", "ExtractFiles@1", inputs={"archiveFilePatterns": f"*.{kind}", "destinationFolder": "x"}),
    )
    _, rec = run(spec)
    assert rec.issues("extract") == [("error", problem)]


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def test_extract_keeps_existing_files_unless_overwrite(run: Runner) -> None:
    data = _write_archive("zip", [("a.txt", b"from-zip", "")])
    writer = f"import base64,pathlib; pathlib.Path('a.zip').write_bytes(base64.b64decode('{_b64(data)}'))"
    spec = job(
        step("write", "PythonScript@0", inputs={"scriptSource": "inline", "script": writer}),
        script("old", "mkdir -p x && echo old > x/a.txt"),
        step("keep", "ExtractFiles@1", inputs={"destinationFolder": "x", "cleanDestinationFolder": "false"}),
        script("show", "cat x/a.txt"),
        step("over", "ExtractFiles@1", inputs={"destinationFolder": "x", "cleanDestinationFolder": "false",
                                               "overwriteExistingFiles": "true"}),
        script("show2", "cat x/a.txt"),
        step("none", "ExtractFiles@1", inputs={"archiveFilePatterns": "*.rar", "destinationFolder": "x"}),
    )  # fmt: skip
    _, rec = run(spec)
    assert _output(rec, "show") == ["old"] and _output(rec, "show2") == ["from-zip"]
    assert rec.issues("none")[0][1].startswith("no archive matched '*.rar' in ")


def test_links_in_the_job_never_lead_a_task_out_of_it(run: Runner, tmp_path: Path) -> None:
    """A step may leave links pointing out of the work directory; the tasks the agent runs itself (with
    the agent's rights, outside the step sandbox) neither write, delete nor list through them."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "kept.txt").write_text("kept")
    zipped = _write_archive("zip", [("sub/evil.txt", b"evil", "")])
    writer = f"import base64,pathlib; pathlib.Path('a.zip').write_bytes(base64.b64decode('{_b64(zipped)}'))"
    spec = job(
        script("links", f"mkdir -p src/sub out x && echo x > src/sub/f && echo y > src/kept.txt "
                        f"&& ln -s {outside} out/sub && ln -s {outside}/kept.txt out/kept.txt "
                        f"&& ln -s {outside} x/sub && ln -s {outside} lnk"),
        step("copy", "CopyFiles@2", inputs={"SourceFolder": "src", "Contents": "sub/*", "TargetFolder": "out"}),
        step("over", "CopyFiles@2", inputs={"SourceFolder": "src", "Contents": "kept.txt", "TargetFolder": "out",
                                            "OverWrite": "true"}, condition="always()"),
        step("write", "PythonScript@0", inputs={"scriptSource": "inline", "script": writer}, condition="always()"),
        step("extract", "ExtractFiles@1", inputs={"archiveFilePatterns": "a.zip", "destinationFolder": "x",
                                                  "cleanDestinationFolder": "false"}, condition="always()"),
        step("delete", "DeleteFiles@1", inputs={"Contents": "$(Build.SourcesDirectory)/lnk/**"},
             condition="always()"),
    )  # fmt: skip
    _, rec = run(spec)
    assert rec.result("copy") == FAILED
    assert rec.issues("copy")[0][1].startswith("the folder to copy into ")
    assert rec.result("over") == SUCCEEDED  # the link out/kept.txt is replaced by the file
    assert rec.issues("extract") == [("error", "the archive member 'sub/evil.txt' would be written through a link "
                                               "leading out of the destination folder")]  # fmt: skip
    assert rec.issues("delete")[0][1].startswith("the folder to delete in ")
    assert "is outside the job's work directory" in rec.issues("delete")[0][1]
    assert sorted(path.name for path in outside.rglob("*")) == ["kept.txt", "sub"]
    assert (outside / "kept.txt").read_text() == "kept"


def test_links_to_folders_inside_the_job_are_followed(run: Runner) -> None:
    spec = job(
        script("tree", "mkdir -p real/sub && echo r > real/sub/r.txt && ln -s real alias && ln -s .. real/loop"),
        step("copy", "CopyFiles@2", inputs={"Contents": "alias/**/*.txt", "TargetFolder": "out"}),
        step("delete", "DeleteFiles@1", inputs={"Contents": "alias"}),  # the link goes, not what it points to
        script("show", f"cd out && {LIST} && cd .. && ls real/sub && test ! -e alias && echo gone"),
    )  # fmt: skip
    _, rec = run(spec)
    assert rec.result("copy") == SUCCEEDED, rec.issues("copy")
    # each real folder is entered once: the loop (real/loop -> the sources) ends the walk
    assert _output(rec, "show") == [".", "./alias", "./alias/loop", "./alias/loop/real", "./alias/loop/real/sub",
                                    "./alias/loop/real/sub/r.txt", "./alias/sub", "./alias/sub/r.txt", "r.txt",
                                    "gone"]  # fmt: skip


def test_pipes_are_never_read(run: Runner) -> None:
    """A named pipe left by a step would block a task reading it; copy and zip leave it out."""
    spec = job(
        script("pipe", "mkdir -p src && mkfifo src/pipe && echo f > src/f.txt"),
        step("copy", "CopyFiles@2", inputs={"SourceFolder": "src", "TargetFolder": "out"}),
        step("zip", "ArchiveFiles@2", inputs={"rootFolderOrFile": "src", "archiveFile": "src.zip"}),
        script("show", f"cd out && {LIST} && unzip -l ../src.zip | grep -c pipe || true"),
    )  # fmt: skip
    _, rec = run(spec, minute=0.5)
    assert rec.result("copy") == SUCCEEDED and rec.result("zip") == SUCCEEDED
    assert _output(rec, "show")[:2] == [".", "./f.txt"]
