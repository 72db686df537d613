"""A deployment's page (health, counters, the last hour's traffic) and its monitoring page (the report of
`mlyard deployments monitor`, loaded in the background) against a real deployed model."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest

from mlyard.monitoring.profile import log_profile, profile_frame
from tests.browser.conftest import chromium_path
from tests.conftest import TLS, Server
from tests.web.helpers import log_in_env, register, signed_in

pytestmark = [pytest.mark.slow, pytest.mark.long]  # a deployment: a scoring server loads the model
MODEL = "web-served"
REQUESTS = 40


def send(url: str, rows: np.ndarray) -> None:
    body = {"dataframe_split": {"columns": ["a", "b"], "data": rows.tolist()}}
    assert httpx.post(f"{url}/invocations", json=body, timeout=30, verify=TLS).status_code == 200


@pytest.fixture(scope="module")
def deployed(server: Server) -> Iterator[dict]:
    registered = log_in_env(server)
    register(registered, MODEL, 1)
    rng = np.random.default_rng(0)
    log_profile(profile_frame(pd.DataFrame({"a": rng.uniform(0, 1, 2000), "b": rng.uniform(0, 1, 2000)})),
                run_id=registered.logged[0].run_id, tracking_uri=registered.uri)  # fmt: skip
    found = json.loads(server.cli("deployments", "create", MODEL, "--env", "dev", "--version", "1", "--json").stdout)
    rng = np.random.default_rng(1)
    for _ in range(REQUESTS):  # feature a shifted far from its training range, b as in training
        send(found["url"], np.column_stack([rng.uniform(5, 6, 10), rng.uniform(0, 1, 10)]))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if httpx.get(f"{found['url']}/health", timeout=10, verify=TLS).json()["inference_log"]["written"] >= REQUESTS:
            break
        time.sleep(0.1)
    yield found
    server.cli("deployments", "delete", MODEL, "--env", "dev", check=False)


def test_the_deployment_page_shows_health_and_traffic(server: Server, deployed: dict) -> None:
    with signed_in(server) as web:
        page = web.get(f"/deployments/dev/{MODEL}").text
    assert deployed["scoring_uri"] in page and "/health: ok" in page
    assert re.search(rf"Requests answered since start</th><td class=\"num\">{REQUESTS}<", page), page
    assert re.search(rf"Requests</th><td class=\"num\">{REQUESTS}<", page)  # the last hour, from the inference table
    assert re.search(r"Latency p50 / p99</th><td class=\"num\">[0-9.]+ ms / [0-9.]+ ms", page)


def test_the_monitoring_page_loads_then_flags_the_shifted_feature(server: Server, deployed: dict) -> None:
    with signed_in(server) as web:
        first = web.get(f"/deployments/dev/{MODEL}/monitoring?window=1h")
        assert first.status_code == 200 and "<h1>Loading…</h1>" in first.text and 'http-equiv="refresh"' in first.text
        deadline = time.monotonic() + 60
        page = first.text
        while "<h1>Loading…</h1>" in page and time.monotonic() < deadline:  # (every page's top bar says "Loading")
            time.sleep(0.5)
            page = web.get(f"/deployments/dev/{MODEL}/monitoring?window=1h").text
    assert "Drift in a" in page and 'http-equiv="refresh"' not in page and "<h1>Loading…</h1>" not in page
    rows = re.findall(r'<tr class="(drifted|)"><th scope="row">(\w+)</th>', page)
    assert {name for _, name in rows} >= {"a", "b"}
    assert {name for kind, name in rows if kind} == {"a"}
    assert re.search(r"Latency p99</th><td class=\"num\">[0-9.]+ ms", page)
    assert f"mlyard deployments monitor {MODEL} --env dev --window 1h" in page


def test_the_monitoring_page_reloads_itself_in_a_browser_until_the_report_is_there(
    server: Server, deployed: dict
) -> None:
    """In Chromium (with scripts): the loading page must reload itself, not only without scripts."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_context().new_page()
            page.goto(f"{server.url}/login?next=/deployments/dev/{MODEL}/monitoring%3Fwindow%3D6h")
            page.get_by_label("Token").fill(server.token)
            page.get_by_role("button", name="Sign in").click()
            expect(page.locator("h1")).to_have_text("Loading…")  # a new window: read in the background
            expect(page.locator("body")).to_contain_text("Drift in a", timeout=60_000)
        finally:
            browser.close()
