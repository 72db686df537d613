"""Git's smart HTTP protocol as an ASGI app.

The smart services' requests (the ref advertisement `info/refs?service=git-upload-pack|git-receive-pack`
and the POSTs to `git-upload-pack` / `git-receive-pack`) run `git upload-pack|receive-pack --stateless-rpc`
directly: one git process per request, where git's CGI `git http-backend` would start `git`, which starts
`git-http-backend`, which starts the service (a checkout's two requests cost three processes with
pack-objects instead of seven). This module does what http-backend does around the service: the
`# service=` preamble of a protocol v0/v1 advertisement, the Git-Protocol header passed as GIT_PROTOCOL, a
gzip request body inflated, the content types and no-cache headers, a push's committer. The rest (the dumb
protocol, HEAD requests) still goes through `git http-backend`.

Reads need `repo:read`, pushes `repo:write` (checked by the `authorize` callback). Responses of
reads are streamed. A push's response is held back until `after_push` has recorded the push's
events, so a push that returned to the client is never lost, even if the server dies right after.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from mlyard.errors import AuthenticationError, MlyardError, NotFound
from mlyard.git.repos import git_env, repo_path

log = logging.getLogger("mlyard.git")
CHUNK = 256 * 1024
REALM = 'Basic realm="mlyard git", charset="UTF-8"'
SERVICES = ("git-upload-pack", "git-receive-pack")
MAX_INFLATED_REQUEST = 64 * 1024 * 1024  # a fetch's wants and haves, inflated (a gzip bomb stops here)
MAX_PROTOCOL_HEADER = 256  # Git-Protocol: "version=2" and the like
MAX_QUERY = 1000  # of a request's query string read for `service=`
# what git http-backend sends with every smart answer (hdr_nocache)
NO_CACHE = [
    (b"expires", b"Fri, 01 Jan 1980 00:00:00 GMT"),
    (b"pragma", b"no-cache"),
    (b"cache-control", b"no-cache, max-age=0, must-revalidate"),
]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


# authorize(Authorization header or None, repo name, write?, remote address) -> user name.
# Raises AuthenticationError (answered 401 with a Basic challenge, so git asks for credentials)
# or another MlyardError (answered with its status).
Authorize = Callable[[str | None, str, bool, str], str]
AfterPush = Callable[[str], None]


class GitHttpApp:
    """ASGI app for paths `/git/<repo>.git/...`."""

    def __init__(
        self, *, repos_dir: Path, spool_dir: Path, authorize: Authorize, after_push: AfterPush, prefix: str = "/git/"
    ) -> None:
        self.repos_dir = repos_dir
        self.spool_dir = spool_dir
        self.authorize = authorize
        self.after_push = after_push
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name, rest = self._split(scope["path"])
        if not name:
            await _plain(send, 404, "not a repository URL: use /git/<repo>.git")
            return
        query = scope.get("query_string", b"").decode("latin-1")
        service = parse_qs(query[:MAX_QUERY]).get("service", [""])[0] if rest == "info/refs" else ""
        # a push, or its ref listing (any spelling of the service: http-backend decodes the query too)
        write = rest == "git-receive-pack" or service == "git-receive-pack" or "receive-pack" in query
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client") or ("", 0)
        try:
            username = await asyncio.to_thread(self.authorize, headers.get("authorization"), name, write, client[0])
            path = repo_path(self.repos_dir, name)
            if not path.is_dir():
                raise NotFound(f"repository {name!r} not found")
        except AuthenticationError as exc:
            await _plain(
                send,
                401,
                f"{exc.message}: authenticate with your user name and a personal access token",
                [(b"www-authenticate", REALM.encode())],
            )
            return
        except MlyardError as exc:
            await _plain(send, exc.http_status, exc.message)
            return
        smart = service if rest == "info/refs" else rest
        if smart in SERVICES and (scope["method"], rest) in (("GET", "info/refs"), ("POST", smart)):
            await self._service(
                send, receive, service=smart, name=name, path=path, headers=headers, username=username,
                address=client[0] or "", advertise=rest == "info/refs",
            )  # fmt: skip
            return
        await self._cgi(scope, receive, send, name=name, rest=rest, query=query, headers=headers, username=username)

    def _split(self, path: str) -> tuple[str, str]:
        if not path.startswith(self.prefix):
            return "", ""
        head, _, rest = path[len(self.prefix) :].partition("/")
        name = head[:-4] if head.endswith(".git") else head
        return name, rest

    async def _service(
        self, send: Send, receive: Receive, *, service: str, name: str, path: Path, headers: dict[str, str],
        username: str, address: str, advertise: bool,
    ) -> None:  # fmt: skip
        """`git upload-pack|receive-pack --stateless-rpc` on the repository: the ref advertisement (`advertise`)
        or the answer to the POST's request (its body inflated when gzip), as git http-backend gives them. A
        push's answer is sent once `after_push` has recorded its events."""
        kind = service.removeprefix("git-")
        if not advertise and headers.get("content-type", "") != f"application/x-{service}-request":
            received = headers.get("content-type", "")[:100]
            await _plain(send, 415, f"Expected POST with Content-Type 'application/x-{service}-request', "
                         f"but received '{received}' instead.")  # fmt: skip
            return
        protocol = headers.get("git-protocol", "")
        if len(protocol) > MAX_PROTOCOL_HEADER or "\0" in protocol:
            protocol = ""
        push_id = uuid.uuid4().hex if kind == "receive-pack" and not advertise else ""
        env = self._service_env(kind, name=name, protocol=protocol, username=username, address=address,
                                push_id=push_id)  # fmt: skip
        content_type = f"application/x-{service}-{'advertisement' if advertise else 'result'}"
        out_headers = [(b"content-type", content_type.encode()), *NO_CACHE]
        # protocol v2's listing names capabilities only (no refs): the same until git or its configuration changes
        key = _capabilities_key(path, env) if advertise and kind == "upload-pack" and _protocol_v2(protocol) else None
        if key is not None and (known := _CAPABILITIES.get(key)) is not None:
            await send({"type": "http.response.start", "status": 200, "headers": out_headers})
            await send({"type": "http.response.body", "body": known})
            return
        args = [kind, "--stateless-rpc", *(["--advertise-refs"] if advertise else []), "."]
        proc = await asyncio.create_subprocess_exec(
            "git", *args, stdin=asyncio.subprocess.DEVNULL if advertise else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=str(path), limit=CHUNK,
        )  # fmt: skip
        assert proc.stdout and proc.stderr
        feeder = None
        if proc.stdin is not None:
            gzipped = headers.get("content-encoding", "").strip().lower() in ("gzip", "x-gzip")
            feeder = asyncio.create_task(_feed(receive, proc.stdin, inflate=gzipped))
        errors = asyncio.create_task(proc.stderr.read())
        try:
            if push_id:  # the answer is held back until the push's events are recorded
                body = await proc.stdout.read()
                await proc.wait()
                await asyncio.to_thread(self.after_push, push_id)
                await send({"type": "http.response.start", "status": 200, "headers": out_headers})
                await send({"type": "http.response.body", "body": body})
                return
            await _stream(send, proc, out_headers, what=f"git {kind} on repository {name!r}",
                          preamble=_service_line(service) if advertise and not _protocol_v2(protocol) else b"",
                          remember=key)  # fmt: skip
        finally:
            await _end(proc, feeder, errors, f"git {kind} {name}")

    def _service_env(
        self, kind: str, *, name: str, protocol: str, username: str, address: str, push_id: str
    ) -> dict[str, str]:
        """The environment of upload-pack / receive-pack, as http-backend gives it (and the push's spool)."""
        env = git_env()
        if protocol:
            env["GIT_PROTOCOL"] = protocol  # what http-backend passes on (version=2 selects protocol v2)
        if kind == "receive-pack":
            # the committer http-backend sets for its service (the reflog's), and `git push -o requested-for=USER`
            # reaches the hook (services/events.py decides whom to trust): advertised, then accepted
            env.update({"GIT_COMMITTER_NAME": username, "GIT_COMMITTER_EMAIL": f"{username}@http.{address or '(none)'}",
                        "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "receive.advertisePushOptions",
                        "GIT_CONFIG_VALUE_0": "true"})  # fmt: skip
        if push_id:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            env.update({"MLYARD_SPOOL": str(self.spool_dir), "MLYARD_PUSH_ID": push_id, "MLYARD_PUSHER": username,
                        "MLYARD_REPO": name})  # fmt: skip
        return env

    async def _cgi(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        name: str,
        rest: str,
        query: str,
        headers: dict[str, str],
        username: str,
    ) -> None:
        """Anything but the smart services' requests (the dumb protocol, HEAD), through `git http-backend`."""
        env = git_env(
            {
                "GIT_PROJECT_ROOT": str(self.repos_dir),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": f"/{name}.git/{rest}",
                "REQUEST_METHOD": scope["method"],
                "QUERY_STRING": query,
                "REMOTE_USER": username,
                "REMOTE_ADDR": (scope.get("client") or ("",))[0] or "",
                "CONTENT_TYPE": headers.get("content-type", ""),
            }
        )
        for header, var in (
            ("content-length", "CONTENT_LENGTH"),
            ("content-encoding", "HTTP_CONTENT_ENCODING"),
            ("git-protocol", "HTTP_GIT_PROTOCOL"),
            ("accept", "HTTP_ACCEPT"),
        ):
            if header in headers:
                env[var] = headers[header]
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=str(self.repos_dir),
            limit=CHUNK,
        )
        assert proc.stdin and proc.stdout and proc.stderr
        feeder = asyncio.create_task(_feed(receive, proc.stdin))
        errors = asyncio.create_task(proc.stderr.read())
        try:
            status, out_headers = await _read_cgi_headers(proc.stdout)
            await send({"type": "http.response.start", "status": status, "headers": out_headers})
            while chunk := await proc.stdout.read(CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await _end(proc, feeder, errors, f"git http-backend {name} {rest}")


async def _stream(
    send: Send, proc: asyncio.subprocess.Process, headers: list[tuple[bytes, bytes]], *, what: str, preamble: bytes,
    remember: tuple[object, ...] | None,
) -> None:  # fmt: skip
    """Stream the process's output as the answer (after `preamble`); a 500 when it failed before writing anything.
    `remember`: keep the whole answer under that key of the capability listings once the process succeeded."""
    assert proc.stdout
    chunk = await proc.stdout.read(CHUNK)
    if not chunk and await proc.wait() != 0:
        await _plain(send, 500, f"{what} failed (the server's log says why)")
        return
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if preamble:
        await send({"type": "http.response.body", "body": preamble, "more_body": True})
    kept = b""
    while chunk:
        if remember is not None and len(kept) < MAX_CAPABILITIES:
            kept += chunk
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        chunk = await proc.stdout.read(CHUNK)
    await send({"type": "http.response.body", "body": b""})
    if remember is not None and len(kept) < MAX_CAPABILITIES and await proc.wait() == 0:
        if len(_CAPABILITIES) >= MAX_CAPABILITY_ENTRIES:
            _CAPABILITIES.clear()
        _CAPABILITIES[remember] = kept


def _service_line(service: str) -> bytes:
    """What http-backend writes before a v0/v1 advertisement: the pkt-line `# service=NAME\\n`, then a flush."""
    line = f"# service={service}\n".encode()
    return f"{len(line) + 4:04x}".encode() + line + b"0000"


MAX_CAPABILITIES = 64 * 1024  # a v2 capability listing is a few hundred bytes
MAX_CAPABILITY_ENTRIES = 1024  # repositories whose listing is remembered (all forgotten past it)
_CAPABILITIES: dict[tuple[object, ...], bytes] = {}


def _capabilities_key(path: Path, env: dict[str, str]) -> tuple[object, ...]:
    """What a protocol v2 capability listing depends on: the repository, the git program and the configuration
    files upload-pack reads (the repository's, the user's; no system file: GIT_CONFIG_NOSYSTEM), each by inode,
    size and modification time, so that a changed file or a re-created repository is read anew."""
    home = Path(env.get("HOME", "/"))
    program = shutil.which("git", path=env.get("PATH")) or "git"
    files = (path / "config", home / ".gitconfig", home / ".config" / "git" / "config", Path(program))
    stats: list[object] = [str(path), env.get("GIT_PROTOCOL", "")]
    for file in files:
        try:
            found = os.stat(file)
        except OSError:
            stats.append(None)
            continue
        stats.append((found.st_ino, found.st_size, found.st_mtime_ns))
    return tuple(stats)


def _protocol_v2(header: str) -> bool:
    """Whether upload-pack speaks protocol v2 for this Git-Protocol header (git's
    determine_protocol_version_server: the highest `version=N` of its colon-separated items)."""
    return "version=2" in header.split(":")


async def _end(
    proc: asyncio.subprocess.Process, feeder: asyncio.Task[None] | None, errors: asyncio.Task[bytes], label: str
) -> None:
    """A git process's end, whatever happened: stop feeding it, kill it if it still runs, reap it, log its stderr."""
    if feeder is not None:
        feeder.cancel()
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    await proc.wait()
    stderr = await errors
    if stderr.strip():
        log.info("%s: %s", label, stderr.decode("utf-8", "replace").strip()[:4000])


async def _feed(receive: Receive, stdin: asyncio.StreamWriter, *, inflate: bool = False) -> None:
    """The request's body into the process's stdin; `inflate`: the body is gzip (git compresses a large
    fetch request), inflated on the way, at most MAX_INFLATED_REQUEST bytes (past it, stdin is closed
    early and the process fails on the cut request)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if inflate else None
    written = 0
    try:
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body = message.get("body", b"")
            while body:
                if inflater is None:
                    data, body = body, b""
                else:
                    data = inflater.decompress(body, CHUNK)
                    body = inflater.unconsumed_tail
                written += len(data)
                if written > MAX_INFLATED_REQUEST:
                    log.warning("a git-upload-pack request inflated past %d bytes: cut", MAX_INFLATED_REQUEST)
                    return
                stdin.write(data)
                await stdin.drain()
            if not message.get("more_body"):
                if inflater is not None:
                    stdin.write(inflater.flush()[: max(MAX_INFLATED_REQUEST - written, 0)])
                    await stdin.drain()
                break
    except zlib.error as exc:
        log.info("a git-upload-pack request is not valid gzip: %s", exc)
    except (ConnectionError, BrokenPipeError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, BrokenPipeError):
            stdin.close()


async def _read_cgi_headers(stdout: asyncio.StreamReader) -> tuple[int, list[tuple[bytes, bytes]]]:
    status = 200
    headers: list[tuple[bytes, bytes]] = []
    while True:
        line = await stdout.readline()
        if not line or line in (b"\r\n", b"\n"):
            break
        key, _, value = line.decode("latin-1").partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers.append((key.strip().lower().encode("latin-1"), value.strip().encode("latin-1")))
    return status, headers


async def _plain(send: Send, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = (text + "\n").encode("utf-8")
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


def spool_file(spool_dir: Path, push_id: str) -> Path:
    return spool_dir / f"{push_id}.push"


def pending_pushes(spool_dir: Path) -> list[str]:
    """Push ids whose records were written but not yet ingested (oldest first)."""
    if not spool_dir.is_dir():
        return []
    files = sorted(spool_dir.glob("*.push"), key=lambda p: os.stat(p).st_mtime_ns)
    return [p.stem for p in files]
