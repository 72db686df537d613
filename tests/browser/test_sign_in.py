"""Signing in and out in Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import sign_in
from tests.conftest import Server

pytestmark = pytest.mark.slow


def test_a_page_asks_for_a_token_then_opens(context: BrowserContext, server: Server) -> None:
    page = sign_in(context, server, "/repos")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Repositories")


def test_a_wrong_token_is_refused_with_a_message(context: BrowserContext, server: Server) -> None:
    page = context.new_page()
    page.goto(f"{server.url}/login")
    page.get_by_label("Token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".card.error")).to_be_visible()
    assert "/login" in page.url


def test_home_page_shows_the_signed_in_user(page: Page, server: Server) -> None:
    expect(page.locator("body")).to_contain_text(server.username)
