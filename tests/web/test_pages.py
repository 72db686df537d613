"""The web UI against a real server: signing in with a token, the pages, escaping, masking, headers."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.ci.helpers import make_repo, register, run, wait_state
from tests.conftest import TLS, Git, Server, make_git
from tests.foundation.test_auth import make_token

pytestmark = pytest.mark.slow

PIPELINE = """trigger: none
steps:
- script: |
    echo "<script>alert('x')</script>"
    echo "password is $DB_PASSWORD"
    echo "##vso[task.logissue type=warning]look <here>"
  displayName: greet
  env:
    DB_PASSWORD: $(DB_PASSWORD)
"""
SECRET = "s3cret-Web-Value"


def browser(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60, follow_redirects=False, verify=TLS)


@contextmanager
def sign_in(server: Server, token: str | None = None) -> Iterator[httpx.Client]:
    with browser(server) as web:
        answer = web.post("/login", data={"token": token or server.token, "next": "/"})
        assert answer.status_code == 303, answer.text
        yield web


@pytest.fixture(scope="module")
def demo_run(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A finished run whose log holds HTML and a secret."""
    git = make_git(tmp_path_factory.mktemp("web-git"))
    make_repo(server, git, "web-ui", {"azure-pipelines.yml": PIPELINE})
    register(server, "web-ui", "web-ui", "azure-pipelines.yml", folder="web/demo")
    with server.client() as api:
        api.put("/api/v1/pipelines/web-ui/variables/DB_PASSWORD", json={"value": SECRET, "secret": True})
    doc = wait_state(server, run(server, "web-ui")["id"])
    assert doc["state"] == "succeeded"
    yield int(doc["id"])


def test_pages_need_a_signed_in_browser(server: Server) -> None:
    with browser(server) as web:
        answer = web.get("/runs/1?step=x")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=%2Fruns%2F1%3Fstep%3Dx"
        form = web.get(answer.headers["location"])
        assert form.status_code == 200 and 'name="token"' in form.text and 'value="/runs/1?step=x"' in form.text
        assert web.get("/health").status_code == 200
        assert web.get("/static/mlyard.css").headers["content-type"].startswith("text/css")


def test_sign_in_sets_an_httponly_strict_cookie_and_goes_to_next(server: Server) -> None:
    with browser(server) as web:
        answer = web.post("/login", data={"token": server.token, "next": "/repos"})
        assert answer.status_code == 303 and answer.headers["location"] == "/repos"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        page = web.get("/repos")
        assert page.status_code == 200 and "infrastructure" in page.text and server.username in page.text
        out = web.post("/logout")
        assert out.status_code == 303 and web.get("/repos").status_code == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example"])
def test_sign_in_never_redirects_off_the_server(server: Server, target: str) -> None:
    with browser(server) as web:
        answer = web.post("/login", data={"token": server.token, "next": target})
        assert answer.status_code == 303 and answer.headers["location"] == "/"


def test_bad_tokens_and_foreign_sites_are_refused(server: Server) -> None:
    with browser(server) as web:
        wrong = web.post("/login", data={"token": "myp_not-a-token"})
        assert wrong.status_code == 401 and "invalid token" in wrong.text.lower() and "set-cookie" not in wrong.headers
        agent_only = web.post("/login", data={"token": make_token(server, "agent", name="web-agent")})
        assert agent_only.status_code == 401 and "repo:read" in agent_only.text
        foreign = web.post("/login", data={"token": server.token}, headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403 and "set-cookie" not in foreign.headers


def test_a_revoked_token_signs_the_browser_out_at_once(server: Server) -> None:
    token = make_token(server, "repo:read", name="web-revoked")
    with sign_in(server, token) as web:
        assert web.get("/").status_code == 200
        with server.client(token) as api:
            token_id = api.get("/api/v1/me").json()["token_id"]
        with server.client() as admin:
            assert admin.delete(f"/api/v1/tokens/{token_id}").status_code == 200
        assert web.get("/").status_code == 303


def test_run_page_escapes_html_masks_secrets_and_links_steps(server: Server, demo_run: int) -> None:
    with sign_in(server) as web:
        page = web.get(f"/runs/{demo_run}")
        assert page.status_code == 200
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text and "<script>" not in page.text
        assert "password is ***" in page.text and SECRET not in page.text
        assert "warning: look &lt;here&gt;" in page.text
        assert 'http-equiv="refresh"' not in page.text  # finished: no auto-refresh
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert page.headers["x-frame-options"] == "DENY"
        greet = page.text.split('<span class="title">greet</span>')[1].split("</details>")[0]
        assert "password is ***" in greet and "Checkout self" not in greet
        assert "open>" not in page.text.split('<span class="title">greet</span>')[0].rsplit("<details", 1)[1]
        linked = web.get(f"/runs/{demo_run}", params={"step": "greet"}).text  # an older link to a step: open it
        assert "open>" in linked.split('<span class="title">greet</span>')[0].rsplit("<details", 1)[1]


def test_home_pipeline_and_repo_pages_list_what_exists(server: Server, demo_run: int) -> None:
    with sign_in(server) as web:
        home = web.get("/")
        assert 'href="/pipelines/web-ui"' in home.text and "web/demo" in home.text
        assert f'href="/runs/{demo_run}"' in home.text
        pipeline = web.get("/pipelines/web-ui")
        assert pipeline.status_code == 200 and f"#{demo_run}" in pipeline.text
        repo = web.get("/repos/web-ui")
        assert repo.status_code == 200 and f"git clone {server.url}/git/web-ui.git" in repo.text
        assert "master" in repo.text and 'href="/pipelines/web-ui"' in repo.text


def test_unknown_things_are_404_pages(server: Server) -> None:
    with sign_in(server) as web:
        for path in ("/runs/999999", "/runs/abc", "/pipelines/no-such", "/repos/no-such", "/models?env=no-such"):
            answer = web.get(path)
            assert answer.status_code == 404, path
            assert answer.headers["content-type"].startswith("text/html") and "Not found" in answer.text


def test_models_page_shows_the_registry_and_deployments_of_an_environment(server: Server) -> None:
    with sign_in(server) as web:
        page = web.get("/models", params={"env": "test"})
        assert page.status_code == 200
        assert "no registered models in test" in page.text and "nothing deployed in test" in page.text
        assert 'href="/models?env=prod"' in page.text


def test_a_running_run_page_refreshes_itself(server: Server, git: Git) -> None:
    make_repo(server, git, "web-slow", {"azure-pipelines.yml": "trigger: none\nsteps:\n- script: sleep 3\n"})
    register(server, "web-slow", "web-slow", "azure-pipelines.yml")
    run_id = run(server, "web-slow")["id"]
    with sign_in(server) as web:
        deadline = time.monotonic() + 30
        page = web.get(f"/runs/{run_id}")
        while 'http-equiv="refresh"' not in page.text and time.monotonic() < deadline:
            time.sleep(0.1)
            page = web.get(f"/runs/{run_id}")
        assert 'http-equiv="refresh"' in page.text
        wait_state(server, run_id)
        assert 'http-equiv="refresh"' not in web.get(f"/runs/{run_id}").text


# -- buttons ----------------------------------------------------------------------------------------
SLEEPY = "trigger: none\nsteps:\n- script: echo started; sleep 60\n"
APPROVED = """trigger: none
jobs:
- deployment: Ship
  environment: test
  strategy:
    runOnce:
      deploy:
        steps:
        - script: echo "shipping to $(Environment.Name)"
"""


def form_token(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, "no form on the page"
    return match.group(1)


def test_run_a_pipeline_then_cancel_it_from_the_browser(server: Server, git: Git) -> None:
    make_repo(server, git, "web-sleepy", {"azure-pipelines.yml": SLEEPY})
    register(server, "web-sleepy", "web-sleepy", "azure-pipelines.yml")
    with sign_in(server) as web:
        queued = web.post("/pipelines/web-sleepy/run", data={"csrf": form_token(web.get("/pipelines/web-sleepy").text)})
        assert queued.status_code == 303 and queued.headers["location"].startswith("/runs/")
        run_id = int(queued.headers["location"].rsplit("/", 1)[1])
        assert wait_state(server, run_id, {"running"})["reason"] == "Manual"
        page = web.get(f"/runs/{run_id}")
        assert "Cancel run" in page.text
        canceled = web.post(f"/runs/{run_id}/cancel", data={"csrf": form_token(page.text)})
        assert canceled.status_code == 303 and canceled.headers["location"] == f"/runs/{run_id}"
        assert wait_state(server, run_id)["state"] == "canceled"
        assert "Cancel run" not in web.get(f"/runs/{run_id}").text


def test_buttons_need_our_form_token_and_the_scope(server: Server, git: Git) -> None:
    make_repo(server, git, "web-guarded", {"azure-pipelines.yml": SLEEPY})
    register(server, "web-guarded", "web-guarded", "azure-pipelines.yml")
    with sign_in(server) as web:
        token = form_token(web.get("/pipelines/web-guarded").text)
        assert web.post("/pipelines/web-guarded/run", data={}).status_code == 403
        assert web.post("/pipelines/web-guarded/run", data={"csrf": "0" * 64}).status_code == 403
        foreign = web.post("/pipelines/web-guarded/run", data={"csrf": token}, headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
    with sign_in(server, make_token(server, "repo:read", name="web-reader")) as reader:
        own = form_token(reader.get("/pipelines/web-guarded").text)
        refused = reader.post("/pipelines/web-guarded/run", data={"csrf": own})
        assert refused.status_code == 403 and "pipelines:run" in refused.text
    with browser(server) as anonymous:
        assert anonymous.post("/pipelines/web-guarded/run", data={"csrf": token}).status_code == 303  # to sign-in
    with server.client() as api:
        assert api.get("/api/v1/runs", params={"pipeline": "web-guarded"}).json() == []  # nothing was queued


def test_permit_then_approve_a_deployment_from_the_browser(server: Server, git: Git) -> None:
    with server.client() as api:
        api.patch("/api/v1/environments/test", json={"approval_required": True}).raise_for_status()
    try:
        _permit_then_approve(server, git)
    finally:  # the session's server is shared: leave the environment as it was
        with server.client() as api:
            api.patch("/api/v1/environments/test", json={"approval_required": False}).raise_for_status()


def _permit_then_approve(server: Server, git: Git) -> None:
    make_repo(server, git, "web-ship", {"azure-pipelines.yml": APPROVED})
    register(server, "web-ship", "web-ship", "azure-pipelines.yml")
    run_id = run(server, "web-ship")["id"]
    with sign_in(server) as web:
        waiting = wait_state(server, run_id, {"waiting"})
        assert waiting["waiting_for"] == ["environment:test"]
        page = web.get(f"/runs/{run_id}")
        assert "environment:test" in page.text and 'http-equiv="refresh"' not in page.text
        assert web.post(f"/runs/{run_id}/permit", data={"csrf": form_token(page.text)}).status_code == 303
        deadline = time.monotonic() + 30
        while "waits for approval" not in (page := web.get(f"/runs/{run_id}")).text:
            assert time.monotonic() < deadline, page.text
            time.sleep(0.1)
        decision = {"csrf": form_token(page.text), "decision": "approve", "comment": "looks good"}
        decided = web.post(f"/runs/{run_id}/approval", data=decision)
        assert decided.status_code == 303
        done = wait_state(server, run_id)
        assert done["state"] == "succeeded"
        assert "approved by admin: looks good" in web.get(f"/runs/{run_id}").text


def test_the_api_reference_is_a_page_that_works_offline(server: Server) -> None:
    with browser(server) as anonymous:
        assert anonymous.get("/docs").status_code == 303
    with sign_in(server) as web:
        page = web.get("/docs")
        assert page.status_code == 200 and "cdn" not in page.text.lower()
        assert "<code>/api/v1/repos/{name}/events</code>" in page.text
        assert 'id="schema-RepoCreate"' in page.text and 'href="/api/v1/openapi.json"' in page.text


# -- issue 13: pages a team uses all day ---------------------------------------------------------------
FAILING = """trigger: none
steps:
- script: |
    echo "loading data.csv"
    echo "KeyError: 'label' <column>" >&2
    exit 3
  displayName: train
"""
TWO_STAGES = """trigger: none
stages:
- stage: First
  jobs:
  - job: Talk
    steps:
    - script: |
        echo "one"
        sleep 2
        echo "two <b>"
      displayName: talk
- stage: Second
  jobs:
  - job: Later
    steps:
    - script: echo "three"
"""
CHOICES = """trigger: none
parameters:
- name: size
  type: string
  default: small
  values: [small, large]
- name: dry
  type: boolean
  default: true
steps:
- script: echo "size=${{ parameters.size }} dry=${{ parameters.dry }}"
"""


def test_unknown_web_paths_are_html_404_pages_and_api_paths_keep_json(server: Server) -> None:
    with sign_in(server) as web:
        for path in ("/deployments", "/no/such/page"):
            page = web.get(path)
            assert page.status_code == 404 and page.headers["content-type"].startswith("text/html"), path
            assert "Not found" in page.text and 'href="/runs"' in page.text  # with the navigation
            assert page.headers["content-security-policy"].startswith("default-src 'none'")
        api = web.get("/api/v1/no-such-route")
        assert api.status_code == 404 and api.headers["content-type"].startswith("application/json")
        assert api.json()["ok"] is False and api.json()["status"] == 404
        button = web.get("/runs/1/cancel")  # a button's address opened as a link
        assert button.status_code == 405 and "use the button" in button.text
        assert button.headers["content-type"].startswith("text/html")
        wrong_method = web.delete("/api/v1/me")
        assert wrong_method.status_code == 405 and wrong_method.json()["status"] == 405
        assert '<a href="/runs" aria-current="page">Runs</a>' in web.get("/runs").text
    with browser(server) as anonymous:
        assert anonymous.get("/deployments").status_code == 404  # no page, signed in or not


def test_a_failed_run_page_shows_the_failing_step_s_lines(server: Server, git: Git) -> None:
    make_repo(server, git, "web-failing", {"azure-pipelines.yml": FAILING})
    register(server, "web-failing", "web-failing", "azure-pipelines.yml")
    run_id = wait_state(server, run(server, "web-failing")["id"])["id"]
    with sign_in(server) as web:
        page = web.get(f"/runs/{run_id}").text
        summary = page.split('<section class="card error summary"')[1].split("</section>")[0]
        assert "KeyError: &#39;label&#39; &lt;column&gt;" in summary and "loading data.csv" in summary
        assert "exited with code" in summary and "echo &#34;loading" not in summary  # the output, not the script
        assert 'class="ln k-error"' in summary and re.search(r'href="#s[0-9a-f]{12}-L\d+"', summary)


def test_runs_list_filters_and_pages(server: Server, git: Git) -> None:
    make_repo(server, git, "web-list", {"azure-pipelines.yml": CHOICES})
    register(server, "web-list", "web-list", "azure-pipelines.yml")
    first, second = (wait_state(server, run(server, "web-list")["id"])["id"] for _ in range(2))
    with sign_in(server) as web:
        page = web.get("/runs", params={"pipeline": "web-list", "per_page": 1}).text
        assert f'href="/runs/{second}"' in page and f'href="/runs/{first}"' not in page
        older = re.search(r'href="/runs\?([^"]+)" rel="next"', page)
        assert older, "no link to older runs"
        page = web.get("/runs?" + older.group(1).replace("&amp;", "&")).text
        assert f'href="/runs/{first}"' in page and f'href="/runs/{second}"' not in page
        assert 'rel="next"' not in page and "Newest runs" in page
        filtered = {
            "state": ("succeeded", True), "reason": ("Manual", True), "requested_for": (server.username, True),
            "branch": ("master", True),
        }  # fmt: skip
        for name, (value, found) in filtered.items():
            text = web.get("/runs", params={"pipeline": "web-list", name: value}).text
            assert (f'href="/runs/{first}"' in text) is found, name
        assert f'href="/runs/{first}"' not in web.get("/runs", params={"pipeline": "web-list", "branch": "dev"}).text
        assert f'href="/runs/{first}"' not in web.get("/runs", params={"pipeline": "web-list", "state": "failed"}).text
        bad = web.get("/runs", params={"state": "sleeping"})
        assert bad.status_code == 400 and "unknown state" in bad.text
        assert web.get("/runs", params={"branch": "x" * 300}).status_code == 400


def test_run_form_has_typed_parameters_and_refuses_bad_values(server: Server, git: Git) -> None:
    make_repo(server, git, "web-form", {"azure-pipelines.yml": CHOICES})
    register(server, "web-form", "web-form", "azure-pipelines.yml")
    with sign_in(server) as web:
        page = web.get("/pipelines/web-form").text
        select = '<select id="p-1" name="param.size"><option selected>small</option><option>large</option></select>'
        assert select in page
        assert 'type="checkbox" id="p-2" name="param.dry" value="true" checked' in page
        refused = web.post("/pipelines/web-form/run", data={"csrf": form_token(page), "param.size": "huge"})
        assert refused.status_code == 400 and "huge" in refused.text
        queued = web.post("/pipelines/web-form/run", data={"csrf": form_token(page), "param.size": "large"})
        run_id = int(queued.headers["location"].rsplit("/", 1)[1])
        assert wait_state(server, run_id)["parameters"] == {"size": "large", "dry": False}  # unchecked: false


def test_live_events_send_each_new_line_once_then_end(server: Server, git: Git) -> None:
    make_repo(server, git, "web-live", {"azure-pipelines.yml": TWO_STAGES})
    register(server, "web-live", "web-live", "azure-pipelines.yml")
    run_id = run(server, "web-live")["id"]
    wait_state(server, run_id, {"running"})
    with sign_in(server) as web:
        deadline = time.monotonic() + 30
        while "Checkout self" not in (page := web.get(f"/runs/{run_id}").text):  # the first job started
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert 'data-live="/runs/' in page
        assert 'data-state="notStarted"' in page and ">not started<" in page  # the second stage's job
        followed = re.findall(r'id="(s[0-9a-f]{12})" data-cursor="(\d+)"', page)
        cursors = ",".join(f"{sid}.{offset}" for sid, offset in followed)
        stream = ""
        banner = re.search(r'data-banner="([0-9a-f]+)"', page)
        assert banner
        with web.stream("GET", f"/runs/{run_id}/live", params={"at": cursors, "b": banner.group(1)}) as answer:
            assert answer.headers["content-type"].startswith("text/event-stream")
            for chunk in answer.iter_text():
                stream += chunk
                if "event: end" in stream or "event: reload" in stream:
                    break
        # the output line "two <b>", not the script's own `echo "two <b>"` the page may show already
        shown = page.count('<span class="t">two &lt;b&gt;</span>') + stream.count('"two <b>"')
        assert shown == 1, stream
        assert "event: state" in stream
        assert web.get(f"/runs/{run_id}/live", params={"at": "nonsense"}).text.startswith(("retry", "event: reload"))
    with browser(server) as anonymous:
        assert anonymous.get(f"/runs/{run_id}/live").status_code == 401


def test_artifacts_download_and_test_results_on_the_run_page(server: Server, git: Git) -> None:
    artifacts = (Path(__file__).resolve().parents[1] / "data" / "ci" / "artifacts.yml").read_text()
    make_repo(server, git, "web-arts", {"a.yml": artifacts})
    register(server, "web-arts", "web-arts", "a.yml")
    run_id = wait_state(server, run(server, "web-arts")["id"])["id"]
    with sign_in(server) as web:
        page = web.get(f"/runs/{run_id}").text
        assert "1 passed" in page and "1 failed" in page and "1 skipped" in page
        assert "tests.test_a.test_bad" in page and "assert 1 == 2" in page
        assert f'href="/runs/{run_id}/artifacts/pkg" download' in page
        download = web.get(f"/runs/{run_id}/artifacts/pkg")
        assert download.status_code == 200 and download.content[:2] == b"\x1f\x8b"  # gzip
        assert "attachment" in download.headers["content-disposition"]
        missing = web.get(f"/runs/{run_id}/artifacts/nope")
        assert missing.status_code == 404 and "Not found" in missing.text
    with browser(server) as anonymous:
        assert anonymous.get(f"/runs/{run_id}/artifacts/pkg").status_code == 303
