"""The API client (`mlyard.client`) against a real server: keep-alive, threads, errors, streams."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlyard.client import Client
from mlyard.errors import AuthenticationError, InvalidInput, NotFound, ServerUnavailable
from tests.ci.helpers import make_repo, register, run
from tests.conftest import Git, Server, free_port


def test_requests_share_one_kept_alive_connection(server: Server) -> None:
    with Client(server.url, server.token) as api:
        assert api.get("/api/v1/me")["username"] == server.username
        first = api._local.connection.sock.getsockname()
        for _ in range(5):
            api.get("/api/v1/repos")
        assert api._local.connection.sock.getsockname() == first


def test_threads_each_get_a_connection_and_the_right_answers(server: Server) -> None:
    names = [f"client-thread-{i}" for i in range(8)]
    with Client(server.url, server.token) as api:

        def create_then_show(name: str) -> str:
            api.post("/api/v1/repos", {"name": name})
            return str(api.get(f"/api/v1/repos/{name}")["name"])

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(create_then_show, names)) == names
        assert len(api._open) >= 2
    assert not api._open  # close() closed every thread's connection


def test_http_errors_become_the_servers_errors(server: Server) -> None:
    with Client(server.url, server.token) as api:
        with pytest.raises(NotFound, match="no-such-repo"):
            api.get("/api/v1/repos/no-such-repo")
        with pytest.raises(InvalidInput) as bad:
            api.post("/api/v1/repos", {"name": "Bad Name"})
        assert "lower-case letters" in bad.value.message
        api.get("/api/v1/me")  # the connection is still usable after error answers
    with Client(server.url, "myp_wrong") as api, pytest.raises(AuthenticationError, match="MLYARD_TOKEN"):
        api.get("/api/v1/me")


def test_query_parameters_are_encoded_and_none_dropped(server: Server) -> None:
    with Client(server.url, server.token) as api:
        api.post("/api/v1/repos", {"name": "client-params"})
        assert api.get("/api/v1/repos/client-params/events", limit=None) == []


def test_a_server_that_is_not_running() -> None:
    with Client(f"http://127.0.0.1:{free_port()}", "t") as api, pytest.raises(ServerUnavailable) as err:
        api.get("/api/v1/me")
    assert "cannot reach the mlyard server" in err.value.message and "mlyard server" in err.value.message


def test_not_an_http_url() -> None:
    with pytest.raises(InvalidInput, match="not an http:// or https:// URL"):
        Client("127.0.0.1:8765", "t")


@pytest.fixture
def forgetful_server() -> Iterator[tuple[str, list[int]]]:
    """A plain HTTP peer that answers one request per connection, then closes it without saying so
    (no `Connection: close`), as any server does to a kept-alive connection that sat idle too long."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted.append(1)
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                if request:
                    body = b'{"n": %d}' % len(accepted)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    stop.set()
    thread.join()
    listener.close()


def test_a_kept_alive_connection_closed_by_the_server_is_replaced(forgetful_server: tuple[str, list[int]]) -> None:
    url, accepted = forgetful_server
    with Client(url, "t") as api:
        assert api.get("/a") == {"n": 1}
        assert api.get("/b") == {"n": 2}  # the stale connection failed; the request went again on a new one
        assert api.get("/c") == {"n": 3}
    assert len(accepted) == 3


def test_stream_lines_follows_a_running_log_to_its_end(server: Server, git: Git) -> None:
    yaml = """trigger: none
steps:
  - script: for i in 1 2 3; do echo "tick $i"; sleep 0.3; done
    displayName: ticks
"""
    make_repo(server, git, "client-stream", {"azure-pipelines.yml": yaml})
    register(server, "client-stream", "client-stream", "azure-pipelines.yml")
    queued = run(server, "client-stream")
    with Client(server.url, server.token) as api:
        lines = list(api.stream_lines(f"/api/v1/runs/{queued['id']}/logs", follow="true"))
        assert api.get(f"/api/v1/runs/{queued['id']}")["state"] == "succeeded"  # the stream ended with the run
        with pytest.raises(NotFound):
            list(api.stream_lines("/api/v1/runs/999999/logs", follow="true"))
    ticks = [line for line in lines if "tick " in line and "echo" not in line]
    assert [t.rsplit(" ", 2)[-2:] for t in ticks] == [["tick", "1"], ["tick", "2"], ["tick", "3"]]
