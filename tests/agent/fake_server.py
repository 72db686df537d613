"""A small real HTTP server that speaks the agent API of the mlyard server (claim with the agent token;
heartbeat, steps, logs, artifacts, tests and complete with the job token), for the runner tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

AGENT_TOKEN = "agent-token-1"


@dataclass
class FakeServer:
    """Queued jobs and everything the agent sent, per route."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    cancel: set[int] = field(default_factory=set)
    gone: set[int] = field(default_factory=set)
    expired: set[int] = field(default_factory=set)  # heartbeats answer 410 Gone
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    seen: list[tuple[int, str]] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    completed: dict[int, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[int, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, path: str, token: str, body: bytes) -> tuple[int, bytes, str]:
        with self.lock:
            if path == "/api/v1/agent/claim":
                if token != AGENT_TOKEN:
                    return 401, b'{"ok": false, "error": "bad token"}', "application/json"
                if not self.jobs:
                    return 204, b"", "application/json"
                spec = self.jobs.pop(0)
                self.tokens[spec["job_id"]] = spec["access_token"]
                return 200, json.dumps(spec).encode(), "application/json"
            parts = path.split("/")  # /api/v1/agent/jobs/<id>/<route>[/<name>]
            job_id = int(parts[5])
            if token != self.tokens.get(job_id):
                return 401, b'{"ok": false, "error": "not this job\'s token"}', "application/json"
            route = parts[6]
            self.seen.append((job_id, route))
            if job_id in self.gone:
                return 404, b'{"ok": false, "error": "no such job"}', "application/json"
            if route == "artifacts" and method == "GET":
                return 200, self.artifacts[parts[7]], "application/gzip"
            if route == "artifacts":
                self.artifacts[parts[7]] = body
                return 200, b'{"ok": true}', "application/json"
            data = json.loads(body) if body else None
            self.calls.append((route, "/".join(parts[7:]), data))
            if route == "complete":
                self.completed[job_id] = data
            if route == "heartbeat" and job_id in self.expired:
                return 410, b'{"ok": false, "error": "lease expired"}', "application/json"
            if route == "heartbeat":
                return 200, json.dumps({"cancel": job_id in self.cancel}).encode(), "application/json"
            return 200, b'{"ok": true}', "application/json"


def _handler(state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            status, payload, kind = state.answer(self.command, self.path, token, body)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve() -> Iterator[tuple[FakeServer, str]]:
    """Run a FakeServer on a free loopback port; yields it and its URL."""
    state = FakeServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
