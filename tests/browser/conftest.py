"""Chromium driven by Playwright against a real server (issue 13: the web UI tested in a real browser).

Playwright's own browser download cannot work offline, so the tests use Debian's Chromium through
`executable_path`: its `chromium-headless-shell` package (`.ci/run` installs it), the headless-only build that
Playwright itself runs headless tests with (about a fifth less CPU than the full browser for the same tests),
or else the full `chromium`. Without either the browser tests fail with what to install, instead of being
skipped silently.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.conftest import Server


def chromium_path() -> str:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no Chromium on PATH: install Debian's `chromium-headless-shell` package "
                "(apt-get install chromium-headless-shell)")


# Module scope, not session: Playwright's sync API runs an asyncio loop in the thread while it is open, and
# in-process tests that call asyncio.run() later in the same xdist worker would fail ("cannot be called from
# a running event loop").
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
    yield browser
    browser.close()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    ctx = chromium.new_context(viewport={"width": 1280, "height": 860})
    ctx.set_default_timeout(20_000)
    yield ctx
    ctx.close()


def sign_in(context: BrowserContext, server: Server, next_path: str = "/") -> Page:
    """Sign in through the login form, as a person would, and land on `next_path`."""
    page = context.new_page()
    page.goto(f"{server.url}{next_path}")
    page.get_by_label("Token").fill(server.token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}{next_path}")
    return page


@pytest.fixture
def page(context: BrowserContext, server: Server) -> Page:
    """A page signed in to the session's server, on the home page."""
    return sign_in(context, server)
