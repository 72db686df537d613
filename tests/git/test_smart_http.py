"""Fetches over smart HTTP run `git upload-pack` directly (issue 15: one git process per request instead of
http-backend starting upload-pack): the same bytes as `git http-backend` answers (protocol v0 and v2, a gzip
request), and a real git client clones and fetches through a real server."""

from __future__ import annotations

import asyncio
import gzip
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlyard.git import repos, smart_http
from mlyard.git.smart_http import GitHttpApp
from tests.conftest import Git, Server
from tests.git import ENV

REQUEST = "application/x-git-upload-pack-request"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=ENV, check=True, capture_output=True, text=True).stdout.strip()


def _pkt(text: str) -> bytes:
    data = text.encode()
    return f"{len(data) + 4:04x}".encode() + data


def _unpacked(answer: bytes) -> tuple[list[bytes], bytes]:
    """A v2 fetch answer's lines before its pack, and the pack's bytes (side band 1 joined: how the pack is cut
    into pkt-lines depends on the pipe's reads)."""
    lines: list[bytes] = []
    pack = b""
    rest = answer
    while rest:
        size = int(rest[:4], 16)
        data, rest = rest[4:size], rest[max(size, 4) :]
        if b"packfile\n" in lines and data[:1] == b"\x01":
            pack += data[1:]
        else:
            lines.append(data if size > 4 else f"{size:04x}".encode())
    return lines, pack


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A bare repository `demo.git` with two commits on master, and the second commit's id."""
    root = tmp_path / "repos"
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "master")
    for text in ("one\n", "two\n"):
        (work / "app.txt").write_text(text)
        _git(work, "add", ".")
        _git(work, "commit", "-qm", text.strip())
    _git(tmp_path, "clone", "-q", "--bare", str(work), str(root / "demo.git"))
    repos.configure(root / "demo.git", allow_force_push=False)  # mlyard's config and post-receive hook
    yield root, _git(work, "rev-parse", "HEAD")


def _call(app: GitHttpApp, method: str, path: str, query: str = "", headers: dict[str, str] | None = None,
          body: bytes = b"") -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(), "client": ("127.0.0.1", 1),
             "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()]}  # fmt: skip
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    head = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], head, b"".join(m.get("body", b"") for m in sent[1:])


def _http_backend(root: Path, method: str, path: str, query: str = "", headers: dict[str, str] | None = None,
                  body: bytes = b"", extra: dict[str, str] | None = None) -> tuple[dict[str, str], bytes]:  # fmt: skip
    """What `git http-backend` (the CGI) answers to the same request."""
    headers = headers or {}
    env = {**ENV, "GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
           "REQUEST_METHOD": method, "QUERY_STRING": query, "CONTENT_TYPE": headers.get("content-type", ""),
           "CONTENT_LENGTH": str(len(body)), **(extra or {})}  # fmt: skip
    for header, var in (("git-protocol", "HTTP_GIT_PROTOCOL"), ("content-encoding", "HTTP_CONTENT_ENCODING")):
        if header in headers:
            env[var] = headers[header]
    out = subprocess.run(["git", "http-backend"], env=env, input=body, capture_output=True, check=True).stdout
    head, _, rest = out.partition(b"\r\n\r\n")
    fields = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
    return {k.lower(): v for k, v in fields.items()}, rest


def _app(root: Path, tmp_path: Path) -> GitHttpApp:
    return GitHttpApp(repos_dir=root, spool_dir=tmp_path / "spool", authorize=lambda *_: "tester",
                      after_push=lambda _: None)  # fmt: skip


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The argv of every process the app starts."""
    calls: list[tuple[str, ...]] = []
    real = asyncio.create_subprocess_exec

    async def spy(*argv: str, **kwargs: Any) -> asyncio.subprocess.Process:
        calls.append(argv)
        return await real(*argv, **kwargs)

    monkeypatch.setattr(smart_http.asyncio, "create_subprocess_exec", spy)
    return calls


@pytest.mark.parametrize("protocol", ["", "version=2", "version=1"])
def test_the_ref_advertisement_is_http_backends_from_one_upload_pack(
    bare: tuple[Path, str], tmp_path: Path, started: list[tuple[str, ...]], protocol: str
) -> None:
    root, _ = bare
    headers = {"git-protocol": protocol} if protocol else {}
    status, head, body = _call(_app(root, tmp_path), "GET", "/git/demo.git/info/refs", "service=git-upload-pack",
                               headers)  # fmt: skip
    expected_head, expected = _http_backend(root, "GET", "/demo.git/info/refs", "service=git-upload-pack", headers)
    assert status == 200 and body == expected
    for name in ("content-type", "cache-control", "pragma", "expires"):
        assert head[name] == expected_head[name]
    assert started == [("git", "upload-pack", "--stateless-rpc", "--advertise-refs", ".")]


def test_the_push_advertisement_is_http_backends_from_one_receive_pack(
    bare: tuple[Path, str], tmp_path: Path, started: list[tuple[str, ...]]
) -> None:
    root, _ = bare
    status, head, body = _call(_app(root, tmp_path), "GET", "/git/demo.git/info/refs", "service=git-receive-pack")
    expected_head, expected = _http_backend(root, "GET", "/demo.git/info/refs", "service=git-receive-pack",
                                            extra={"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0":
                                                   "receive.advertisePushOptions", "GIT_CONFIG_VALUE_0": "true",
                                                   "REMOTE_USER": "tester"})  # fmt: skip
    assert status == 200 and body == expected and b"push-options" in body
    assert head["content-type"] == expected_head["content-type"] == "application/x-git-receive-pack-advertisement"
    assert started == [("git", "receive-pack", "--stateless-rpc", "--advertise-refs", ".")]


def test_a_push_is_answered_once_recorded_by_one_receive_pack(
    bare: tuple[Path, str], tmp_path: Path, started: list[tuple[str, ...]]
) -> None:
    """A push deleting a branch (no pack to send): receive-pack updates the ref, the post-receive hook writes the
    spool record, and `after_push` runs before the answer is sent."""
    root, commit = bare
    _git(root / "demo.git", "branch", "old", commit)
    recorded: list[str] = []
    app = GitHttpApp(repos_dir=root, spool_dir=tmp_path / "spool", authorize=lambda *_: "tester",
                     after_push=recorded.append)  # fmt: skip
    zero = "0" * 40
    request = _pkt(f"{commit} {zero} refs/heads/old\0report-status\n") + b"0000"
    status, head, answer = _call(app, "POST", "/git/demo.git/git-receive-pack", "",
                                 {"content-type": "application/x-git-receive-pack-request"}, request)  # fmt: skip
    assert status == 200 and head["content-type"] == "application/x-git-receive-pack-result"
    assert b"unpack ok" in answer and b"ok refs/heads/old" in answer
    assert len(recorded) == 1
    record = (tmp_path / "spool" / f"{recorded[0]}.push").read_text()
    assert record.startswith("repo demo\npusher tester\n") and f"{commit} {zero} refs/heads/old" in record
    assert started == [("git", "receive-pack", "--stateless-rpc", ".")]


@pytest.mark.parametrize("encoding", ["", "gzip"])
def test_a_v2_fetch_of_one_commit_is_http_backends_from_one_upload_pack(
    bare: tuple[Path, str], tmp_path: Path, started: list[tuple[str, ...]], encoding: str
) -> None:
    root, commit = bare
    request = _pkt("command=fetch\n") + b"0001" + _pkt("no-progress\n") + _pkt("deepen 1\n") + _pkt(f"want {commit}\n")
    request += _pkt("done\n")
    request += b"0000"
    headers = {"git-protocol": "version=2", "content-type": REQUEST}
    body = request
    if encoding:
        headers["content-encoding"] = encoding
        body = gzip.compress(request)
    status, head, answer = _call(_app(root, tmp_path), "POST", "/git/demo.git/git-upload-pack", "", headers, body)
    expected_head, expected = _http_backend(root, "POST", "/demo.git/git-upload-pack", "", headers, body)
    assert status == 200, answer
    assert head["content-type"] == expected_head["content-type"] == "application/x-git-upload-pack-result"
    assert _unpacked(answer) == _unpacked(expected)
    assert b"packfile\n" in answer and b"PACK" in _unpacked(answer)[1]
    assert started == [("git", "upload-pack", "--stateless-rpc", ".")]


def test_a_fetch_request_of_another_type_is_refused_as_http_backend_does(
    bare: tuple[Path, str], tmp_path: Path, started: list[tuple[str, ...]]
) -> None:
    root, _ = bare
    status, _, body = _call(_app(root, tmp_path), "POST", "/git/demo.git/git-upload-pack", "",
                            {"content-type": "text/plain"}, b"0000")  # fmt: skip
    assert status == 415 and b"application/x-git-upload-pack-request" in body
    assert started == []


def test_a_request_body_inflating_past_the_limit_is_cut(
    bare: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, commit = bare
    monkeypatch.setattr(smart_http, "MAX_INFLATED_REQUEST", 1000)
    request = _pkt("command=fetch\n") + b"0001" + _pkt(f"want {commit}\n") * 100 + _pkt("done\n") + b"0000"
    headers = {"git-protocol": "version=2", "content-type": REQUEST, "content-encoding": "gzip"}
    status, _, answer = _call(_app(root, tmp_path), "POST", "/git/demo.git/git-upload-pack", "", headers,
                              gzip.compress(request))  # fmt: skip
    assert b"packfile" not in answer  # upload-pack saw a cut request and failed; no pack was sent
    assert status in (200, 500)


@pytest.mark.slow
@pytest.mark.parametrize("version", ["0", "2"])
def test_real_git_clones_and_fetches_one_commit(server: Server, git: Git, version: str) -> None:
    name = f"smart-http-v{version}"
    with server.client() as api:
        assert api.post("/api/v1/repos", json={"name": name}).status_code == 201
    git("clone", "-q", server.remote(name), "w")
    work = git.cwd / "w"
    first = git.commit({"app.txt": "one\n"}, "first", cwd=work)
    for i in range(40):  # enough history that a later fetch's haves are gzip-compressed by the client
        git.commit({"app.txt": f"{i}\n"}, f"c{i}", cwd=work)
    git("push", "-q", "origin", "master", cwd=work)
    proto = ["-c", f"protocol.version={version}"]
    git(*proto, "clone", "-q", server.remote(name), "copy")
    assert (git.cwd / "copy" / "app.txt").read_text() == "39\n"
    local = git.cwd / "local"
    git("init", "-q", str(local))
    for i in range(60):  # local commits the server does not have: the fetch sends their ids as haves
        git.commit({"mine.txt": f"{i}\n"}, f"local {i}", cwd=local)
    # protocol v2 serves any commit by id; v0 only advertised ones (the agent's checkout then fetches the branch)
    wanted = first if version == "2" else "master"
    git(*proto, "fetch", "-q", "--depth=1", server.remote(name), wanted, cwd=local)
    assert git("show", "FETCH_HEAD:app.txt", cwd=local).stdout == ("one\n" if version == "2" else "39\n")


PUSH_LISTINGS = ["service=git-receive-pack", "service=git%2Dreceive%2Dpack", "a=b&service=git-receive-pack"]


@pytest.mark.parametrize("query", PUSH_LISTINGS)
def test_the_push_listing_needs_write_access_however_its_service_is_spelled(
    bare: tuple[Path, str], tmp_path: Path, query: str
) -> None:
    root, _ = bare
    asked: list[bool] = []

    def authorize(_header: str | None, _name: str, write: bool, _address: str) -> str:
        asked.append(write)
        return "tester"

    app = GitHttpApp(repos_dir=root, spool_dir=tmp_path / "spool", authorize=authorize, after_push=lambda _: None)
    status, head, _ = _call(app, "GET", "/git/demo.git/info/refs", query)
    assert status == 200 and head["content-type"] == "application/x-git-receive-pack-advertisement"
    assert asked == [True]


def test_a_v2_capability_listing_is_remembered_until_the_configuration_changes(
    bare: tuple[Path, str], tmp_path: Path, started: list[tuple[str, ...]]
) -> None:
    root, _ = bare
    app = _app(root, tmp_path)
    listing = ("GET", "/git/demo.git/info/refs", "service=git-upload-pack", {"git-protocol": "version=2"})
    first = _call(app, *listing)
    again = _call(app, *listing)
    assert first == again and b"fetch=shallow wait-for-done filter" in first[2]
    assert len(started) == 1  # the second listing started no process
    _git(root / "demo.git", "config", "uploadpack.allowFilter", "false")
    changed = _call(app, *listing)
    assert len(started) == 2 and b"filter" not in changed[2]
    assert changed[2] == _http_backend(root, "GET", "/demo.git/info/refs", "service=git-upload-pack",
                                       {"git-protocol": "version=2"})[1]  # fmt: skip
    v0 = ("GET", "/git/demo.git/info/refs", "service=git-upload-pack", {})
    _call(app, *v0)
    _call(app, *v0)
    assert len(started) == 4  # a v0 listing names the refs: never remembered
