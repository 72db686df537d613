"""The models, deployments and repository pages against a real server: content, escaping, 404s, the rollback
button's form token and scope, and paths in URLs treated as data (no `..`, bounded, binary/large files)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import TLS, Server
from tests.foundation.test_auth import make_token
from tests.web.helpers import BIG, Registered, log_in_env, make_browse_repo, register, signed_in

pytestmark = pytest.mark.slow

MODEL = "web-pages"
REPO = "web-browse"


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html
    return found.group(1)


def stage(server: Server, name: str, version: int, to: str) -> None:
    with server.client() as api:
        answer = api.post(f"/api/v1/models/{name}/versions/{version}/stage?env=dev", json={"stage": to, "reason": "t"})
    assert answer.status_code == 200, answer.text


def production(server: Server, name: str) -> int | None:
    with server.client() as api:
        return api.get(f"/api/v1/models/{name}?env=dev").json()["production"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def registered(server: Server) -> Registered:
    return log_in_env(server)


@pytest.fixture(scope="module")
def model(server: Server, registered: Registered) -> str:
    tags = {2: {"run_url": f"{server.url}/mlyard/_build/results?buildId=5", "test_status": "passed",
                "note": "<script>alert('tag')</script>",
                "deploy_run_url": f"{server.url}/mlyard/_build/results?buildId=6"}}  # fmt: skip
    register(registered, MODEL, tags=tags)
    stage(server, MODEL, 1, "Production")
    stage(server, MODEL, 2, "Production")
    stage(server, MODEL, 3, "Staging")
    return MODEL


@pytest.fixture(scope="module")
def repo(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_browse_repo(server, tmp_path_factory.mktemp("browse"), REPO)


# -- models -----------------------------------------------------------------------------------------
def test_the_model_pages_show_versions_stages_and_lineage(server: Server, model: str) -> None:
    with signed_in(server) as web:
        listing = web.get("/models?env=dev")
        assert listing.status_code == 200 and f'href="/models/dev/{MODEL}"' in listing.text
        page = web.get(f"/models/dev/{MODEL}")
        assert page.status_code == 200
        assert 'href="/runs/5"' in page.text and "passed" in page.text  # model CI's run, from the version's run_url
        assert "Roll back to v1" in page.text  # Production is v2, promoted after v1
        assert page.text.count("stage-production") >= 2 and "stage-staging" in page.text
        version = web.get(f"/models/dev/{MODEL}/versions/2")
        assert version.status_code == 200
        assert "&lt;script&gt;alert(&#39;tag&#39;)&lt;/script&gt;" in version.text and "<script>" not in version.text
        assert "pattern-1" in version.text and "accuracy" in version.text  # parameters and metrics of its run
        assert re.search(r"Promoted</td>\s*<td>.*by admin", version.text)
        assert re.search(r'Deployed</td><td>pipeline run <a href="/runs/6">', version.text)  # model CD's run


def test_two_versions_side_by_side(server: Server, model: str) -> None:
    with signed_in(server) as web:
        page = web.get(f"/models/dev/{MODEL}/compare?a=1&b=2")
    assert page.status_code == 200
    assert "pattern-0" in page.text and "pattern-1" in page.text
    row = r'accuracy</th>\s*<td class="num">0\.7</td><td class="num">0\.8</td>\s*<td class="num">\+0\.1'
    assert re.search(row, page.text), page.text


@pytest.mark.parametrize("path", [
    "/models?env=nowhere", "/models/nowhere/x", f"/models/dev/{MODEL}-absent", f"/models/dev/{MODEL}/versions/9",
    f"/models/dev/{MODEL}/versions/0", f"/models/dev/{MODEL}/versions/x", f"/models/dev/{MODEL}/compare?a=1&b=99",
    "/deployments/dev/absent", "/deployments/dev/absent/monitoring",
])  # fmt: skip
def test_unknown_models_versions_and_deployments_are_404_pages(server: Server, model: str, path: str) -> None:
    with signed_in(server) as web:
        page = web.get(path)
    assert page.status_code == 404, page.text
    assert "Not found" in page.text and "Traceback" not in page.text


def test_a_bad_monitoring_window_says_what_to_give(server: Server) -> None:
    with signed_in(server) as web:
        page = web.get("/deployments/dev/absent/monitoring?window=<b>1y")
    assert page.status_code == 400 and "e.g. 30m, 24h or 7d" in page.text and "<b>1y" not in page.text


def test_rollback_needs_the_form_token_and_the_scope(server: Server, registered: Registered) -> None:
    name = register(registered, f"{MODEL}-rollback", 2)
    stage(server, name, 1, "Production")
    stage(server, name, 2, "Production")
    reader = make_token(server, "repo:read", name="web-models-reader")
    with signed_in(server, reader) as web:
        csrf = form_token(web.get(f"/models/dev/{name}").text)
        answer = web.post(f"/models/dev/{name}/rollback", data={"csrf": csrf})
        assert answer.status_code == 403 and "pipelines:run" in answer.text
    with signed_in(server) as web:
        assert web.post(f"/models/dev/{name}/rollback", data={"csrf": "0" * 64}).status_code == 403
        other_site = web.post(f"/models/dev/{name}/rollback", headers={"Origin": "https://evil.example"},
                              data={"csrf": form_token(web.get(f"/models/dev/{name}").text)})  # fmt: skip
        assert other_site.status_code == 403
        assert production(server, name) == 2
        csrf = form_token(web.get(f"/models/dev/{name}").text)
        done = web.post(f"/models/dev/{name}/rollback", data={"csrf": csrf, "reason": "<i>bad</i>"})
        assert done.status_code == 303 and done.headers["location"] == f"/models/dev/{name}"
        assert production(server, name) == 1
        page = web.get(f"/models/dev/{name}").text
        assert "&lt;i&gt;bad&lt;/i&gt;" in page and "rollback" in page and "Roll back to" not in page


def test_a_new_environment_is_shown_without_creating_its_store(server: Server) -> None:
    """The first model page of an environment used to create its MLflow store (seconds of MLflow migrations)."""
    with server.client() as api:
        created = api.post("/api/v1/environments", json={"name": "webfresh"})
        assert created.status_code == 201, created.text
        db = Path(created.json()["mlflow_tracking_uri"].removeprefix("sqlite:///"))
    with signed_in(server) as web:
        page = web.get("/models?env=webfresh")
        assert page.status_code == 200 and "no registered models in webfresh" in page.text
        assert web.get("/models/webfresh/anything").status_code == 404
    assert not db.exists()


# -- repositories -----------------------------------------------------------------------------------
def test_the_readme_is_rendered_safely(server: Server, repo: dict[str, str]) -> None:
    with signed_in(server) as web:
        page = web.get(f"/repos/{REPO}")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Demo &lt;script&gt;alert('readme')&lt;/script&gt;</h1>" in html
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts == ['<script src="/static/mlyard.js" defer>'], scripts  # the UI's own script only
    assert 'href="javascript' not in html and "&lt;b&gt;bold?&lt;/b&gt;" in html
    assert f'href="/repos/{REPO}/blob?ref=master&amp;path=src/app.py"' in html
    assert f'href="/repos/{REPO}/tree?ref=master&amp;path=docs"' in html
    assert 'href="#"' in html  # a link out of the repository goes nowhere
    assert f'src="/repos/{REPO}/raw?ref=master&amp;path=docs/logo.png"' in html
    assert "<table>" in html and "README.md" in html and "src/" in html


def test_the_tree_at_a_branch_a_tag_and_a_commit(server: Server, repo: dict[str, str]) -> None:
    with signed_in(server) as web:
        branch = web.get(f"/repos/{REPO}/tree?ref={quote('feature/x', safe='')}")
        assert branch.status_code == 200 and "feature.txt" in branch.text
        assert "feature.txt" not in web.get(f"/repos/{REPO}/tree?ref=master").text
        assert web.get(f"/repos/{REPO}/tree?ref=v1").status_code == 200
        at_commit = web.get(f"/repos/{REPO}/tree?ref={repo['feature']}&path=src")
        assert at_commit.status_code == 200 and "app.py" in at_commit.text
        file = web.get(f"/repos/{REPO}/blob?ref={repo['second']}&path=src/app.py")
        assert file.status_code == 200 and "print(&#39;second&#39;)" in file.text and 'id="L1"' in file.text


def test_big_and_binary_files_are_offered_for_download(server: Server, repo: dict[str, str]) -> None:
    with signed_in(server) as web:
        big = web.get(f"/repos/{REPO}/blob?path=data/big.txt")
        assert big.status_code == 200 and "too large to show" in big.text and "x" * 1000 not in big.text
        binary = web.get(f"/repos/{REPO}/blob?path=docs/logo.png")
        assert binary.status_code == 200 and "binary file" in binary.text
        raw = web.get(f"/repos/{REPO}/raw?path=data/big.txt")
        assert raw.status_code == 200 and len(raw.content) == BIG
        assert raw.headers["content-disposition"].startswith("attachment")
        assert raw.headers["content-type"] == "application/octet-stream"
        image = web.get(f"/repos/{REPO}/raw?path=docs/logo.png")
        assert image.headers["content-type"] == "image/png" and image.headers["content-disposition"] == "inline"
    with httpx.Client(base_url=server.url, verify=TLS) as anonymous:
        assert anonymous.get(f"/repos/{REPO}/raw?path=data/big.txt").status_code == 303


@pytest.mark.parametrize("query", [
    "path=../etc/passwd", "path=src/../../x", "path=%2e%2e/x", "path=src/./app.py", "path=src//app.py",
    "path=src%5capp.py", "path=src%00", "path=" + "a/" * 600,
])  # fmt: skip
def test_paths_are_data(server: Server, repo: dict[str, str], query: str) -> None:
    with signed_in(server) as web:
        for view in ("tree", "blob", "raw", "commits"):
            page = web.get(f"/repos/{REPO}/{view}?{query}")
            assert page.status_code == 400, (view, query, page.status_code)
            assert "passwd" not in page.text.replace("../etc/passwd", "") and "Traceback" not in page.text


@pytest.mark.parametrize("path", [
    f"/repos/{REPO}/tree?ref=nope", f"/repos/{REPO}/tree?ref=..%2F..%2Fx", f"/repos/{REPO}/tree?ref=--output%3Dx",
    f"/repos/{REPO}/tree?ref=a%20b", f"/repos/{REPO}/tree?path=absent", f"/repos/{REPO}/blob?path=src",
    f"/repos/{REPO}/tree?path=README.md", f"/repos/{REPO}/commit/zzz", f"/repos/{REPO}/commit/{'0' * 40}",
    "/repos/absent-repo", "/repos/absent-repo/blob?path=x",
])  # fmt: skip
def test_unknown_revisions_and_paths_are_404(server: Server, repo: dict[str, str], path: str) -> None:
    with signed_in(server) as web:
        page = web.get(path)
    assert page.status_code == 404, (path, page.status_code, page.text[-400:])
    assert "Traceback" not in page.text


def test_commits_a_commit_and_the_push_events(server: Server, repo: dict[str, str]) -> None:
    with signed_in(server) as web:
        commits = web.get(f"/repos/{REPO}/commits").text
        assert "second &lt;commit&gt;" in commits and "first commit" in commits and "feature work" not in commits
        of_readme = web.get(f"/repos/{REPO}/commits?path=README.md").text
        assert "first commit" in of_readme and "second &lt;commit&gt;" not in of_readme
        one = web.get(f"/repos/{REPO}/commit/{repo['second']}").text
        assert "modified" in one and "src/app.py" in one and "second &lt;commit&gt;" in one
        branches = web.get(f"/repos/{REPO}/branches").text
        assert "feature/x" in branches and "(default)" in branches and "feature work" in branches
        assert branches.count("update") + branches.count("create") >= 2
