"""Models and repositories in Chromium: comparing two versions, rolling Production back, browsing a
repository at a branch (its files, a file, the README, the commits)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Server
from tests.web.helpers import log_in_env, make_browse_repo, register

pytestmark = pytest.mark.slow

MODEL = "browser-model"
REPO = "browser-repo"


def stage(server: Server, name: str, version: int, to: str) -> None:
    with server.client() as api:
        answer = api.post(f"/api/v1/models/{name}/versions/{version}/stage?env=dev", json={"stage": to})
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def model(server: Server) -> str:
    """Three versions: v1 then v2 promoted to Production, v3 in Staging."""
    register(log_in_env(server), MODEL)
    for version, to in ((1, "Production"), (2, "Production"), (3, "Staging")):
        stage(server, MODEL, version, to)
    return MODEL


@pytest.fixture(scope="module")
def repo(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_browse_repo(server, tmp_path_factory.mktemp("browser-repo"), REPO)


def test_compare_two_versions(page: Page, server: Server, model: str) -> None:
    page.get_by_role("link", name="Models", exact=True).click()
    page.get_by_role("link", name=MODEL).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(MODEL)
    page.locator('select[name="a"]').select_option("1")
    page.locator('select[name="b"]').select_option("3")
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(r"/compare\?a=1&b=3$"))
    accuracy = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="accuracy"))
    expect(accuracy).to_contain_text("0.7")
    expect(accuracy).to_contain_text("0.9")
    expect(accuracy).to_contain_text("+0.2")
    expect(page.get_by_role("row").filter(has_text="labels")).to_contain_text("pattern-2")


def test_roll_production_back(page: Page, server: Server, model: str) -> None:
    page.goto(f"{server.url}/models/dev/{MODEL}")
    expect(page.locator("dl.props")).to_contain_text("v2")
    page.get_by_placeholder("optional").fill("v2 <b>misbehaves</b>")
    page.get_by_role("button", name="Roll back to v1").click()
    expect(page).to_have_url(f"{server.url}/models/dev/{MODEL}")
    history = page.locator("table.history")
    expect(history.get_by_role("row").nth(1)).to_contain_text("rollback")
    expect(history).to_contain_text("v2 <b>misbehaves</b>")  # shown as text, not markup
    expect(page.locator("dl.props dd").first).to_have_text("v1")
    with server.client() as api:
        assert api.get(f"/api/v1/models/{MODEL}?env=dev").json()["production"] == 1


def test_browse_a_repository(page: Page, server: Server, repo: dict[str, str]) -> None:
    page.get_by_role("link", name="Repos", exact=True).click()
    page.get_by_role("link", name=REPO, exact=True).click()
    readme = page.locator("section.readme")
    expect(readme.get_by_role("heading", level=1)).to_have_text("Demo <script>alert('readme')</script>")
    expect(readme.locator("table")).to_be_visible()
    readme.get_by_role("link", name="the app").click()
    expect(page.locator("table.code")).to_contain_text("print('second')")
    page.get_by_role("link", name="Files").click()
    page.locator('select[name="ref"]').select_option("feature/x")
    page.get_by_role("button", name="Go").click()
    page.get_by_role("link", name="feature.txt").click()
    expect(page.locator("table.code")).to_contain_text("only on the branch")
    page.get_by_role("link", name="Commits").click()
    commits = page.locator("table.commits")
    expect(commits).to_contain_text("feature work")
    expect(commits).to_contain_text("second <commit>")
    commits.get_by_role("row").filter(has_text="second <commit>").get_by_role("link").click()
    expect(page.locator("table.changes")).to_contain_text("src/app.py")
