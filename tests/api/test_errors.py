"""The 500s of issue 10 answer 4xx in the API's one error shape: concurrent creates of one name (409),
numbers past 64 bits in paths and queries, non-finite token lifetimes; the OpenAPI route works; API
answers carry security headers (and the web UI keeps its own)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import TLS, Server

pytestmark = pytest.mark.slow

PARALLEL = 20
HUGE = "99999999999999999999999"


def race(server: Server, path: str, body: dict[str, Any]) -> list[httpx.Response]:
    """POST the same body from PARALLEL threads at once, each on its own connection."""
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(PARALLEL)

    def post() -> None:
        with server.client() as api:
            barrier.wait()
            answers.append(api.post(path, json=body))

    threads = [threading.Thread(target=post) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


CREATES: list[tuple[str, Callable[[str], dict[str, Any]], str]] = [
    ("/api/v1/repos", lambda name: {"name": name}, "repository {name!r} already exists"),
    ("/api/v1/users", lambda name: {"username": name}, "user {name!r} already exists"),
    ("/api/v1/tokens", lambda name: {"name": name, "scopes": ["repo:read"]}, "already has a token named {name!r}"),
    ("/api/v1/variable-groups", lambda name: {"name": name}, "variable group {name!r} already exists"),
    ("/api/v1/connections", lambda name: {"name": name}, "service connection {name!r} already exists"),
]
ENVIRONMENTS = ("/api/v1/environments", lambda name: {"name": name}, "environment {name!r} already exists")


@pytest.mark.parametrize(("path", "body", "message"), CREATES, ids=[c[0].rsplit("/", 1)[1] for c in CREATES])
def test_concurrent_creates_of_one_name_answer_one_201_and_409s(
    server: Server, path: str, body: Callable[[str], dict[str, Any]], message: str
) -> None:
    check_race(server, path, body, message)


def test_concurrent_creates_of_one_environment_answer_one_201_and_409s(server: Server) -> None:
    """Environments cannot be deleted: the shared server keeps this one (the tests that list its environments
    expect `init`'s three first, and others after them)."""
    check_race(server, *ENVIRONMENTS)


def check_race(server: Server, path: str, body: Callable[[str], dict[str, Any]], message: str) -> None:
    name = f"race-{uuid.uuid4().hex[:8]}"
    answers = race(server, path, body(name))
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * (PARALLEL - 1), [a.text for a in answers if a.status_code not in (201, 409)]
    for answer in answers:
        if answer.status_code == 409:
            doc = answer.json()
            assert doc["ok"] is False and doc["status"] == 409
            assert message.format(name=name) in doc["error"]


def test_concurrent_pipeline_registrations_answer_409(server: Server) -> None:
    name = f"race-{uuid.uuid4().hex[:8]}"
    with server.client() as api:
        assert api.post("/api/v1/repos", json={"name": name}).status_code == 201
    answers = race(server, "/api/v1/pipelines", {"name": name, "repo": name, "yaml": "ci.yml"})
    assert sorted(a.status_code for a in answers) == [201] + [409] * (PARALLEL - 1)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"/api/v1/runs/{HUGE}", "path.run_id"),
        (f"/api/v1/runs/{HUGE}/logs", "path.run_id"),
        (f"/api/v1/runs/{HUGE}/artifacts", "path.run_id"),
        (f"/api/v1/jobs/{HUGE}", "path.job_id"),
        (f"/api/v1/repos/any/events?after={HUGE}", "query.after"),
    ],
)
def test_numbers_past_64_bits_are_422(server: Server, path: str, field: str) -> None:
    with server.client() as api:
        response = api.get(path)
    assert response.status_code == 422
    assert response.json()["error"] == (
        f"invalid request: {field}: Input should be less than or equal to 9223372036854775807"
    )


def test_revoking_a_token_id_past_64_bits_is_404(server: Server) -> None:
    with server.client() as api:
        response = api.delete(f"/api/v1/tokens/{HUGE}")
    assert response.status_code == 404
    assert response.json()["error"] == f"no token '{HUGE}'; list them with `mlyard tokens list`"


def test_web_run_page_with_a_huge_id_is_404(server: Server) -> None:
    with httpx.Client(base_url=server.url, cookies={"mlyard_token": server.token}, verify=TLS) as web:
        response = web.get(f"/runs/{HUGE}")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("expires_in", "problem"),
    [
        ("nan", "use a number with d, h, m or s, e.g. 30d or 12h"),
        ("inf", "use a number with d, h, m or s, e.g. 30d or 12h"),
        ("-inf", "use a number with d, h, m or s, e.g. 30d or 12h"),
        ("1e308d", "at most 3650d; omit it for a token that does not expire"),
        ("99999999999s", "at most 3650d; omit it for a token that does not expire"),
        ("0h", "it must be positive"),
    ],
)
def test_token_lifetimes_that_are_not_finite_are_422(server: Server, expires_in: str, problem: str) -> None:
    with server.client() as api:
        response = api.post("/api/v1/tokens", json={"name": "never", "scopes": ["repo:read"], "expires_in": expires_in})
    assert response.status_code == 422
    assert response.json()["error"] == f"invalid request: expires_in: invalid duration {expires_in!r}: {problem}"


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_deployment_sizes_must_be_finite(server: Server, value: str) -> None:
    body = '{"env": "dev", "model": "m", "cpu": ' + value + "}"  # as Python's JSON parser reads NaN and Infinity
    with server.client() as api:
        response = api.post("/api/v1/deployments", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid request: cpu: Input should be a finite number"


def test_openapi_schema_is_served_with_a_token(server: Server) -> None:
    with server.client() as api:
        response = api.get("/api/v1/openapi.json")
    assert response.status_code == 200, response.text
    schema = response.json()
    assert schema["info"]["title"] == "mlyard"
    assert "/api/v1/runs/{run_id}" in schema["paths"]
    with server.client(token="") as anonymous:
        refused = anonymous.get("/api/v1/openapi.json")
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")


API_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


@pytest.mark.parametrize(
    ("path", "token", "status"),
    [("/api/v1/me", None, 200), ("/api/v1/me", "", 401), ("/api/v1/nowhere", None, 404), ("/health", "", 200)],
)
def test_api_answers_carry_security_headers(server: Server, path: str, token: str | None, status: int) -> None:
    with server.client(token) as api:
        response = api.get(path)
    assert response.status_code == status
    assert {k: response.headers.get(k) for k in API_HEADERS} == API_HEADERS


def test_web_pages_keep_their_own_headers(server: Server) -> None:
    with httpx.Client(base_url=server.url, verify=TLS) as web:
        page = web.get("/login")
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'; style-src 'self'")
    assert page.headers["referrer-policy"] == "same-origin"
