"""The run pages in Chromium: run with parameters through the form, logs streaming live, permit, approve,
rerun (issue 13). Each test has repositories and pipelines of its own on the session's server."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.ci.helpers import make_repo, register, run, show, wait_state
from tests.conftest import Git, Server
from tests.web.test_pages import APPROVED

pytestmark = pytest.mark.slow

PARAMETERS = """trigger: none
parameters:
- name: flavour
  displayName: Flavour
  type: string
  default: vanilla
  values: [vanilla, chocolate]
- name: loud
  displayName: Shout it
  type: boolean
  default: false
- name: note
  type: string
  default: hello
steps:
- script: echo "flavour=${{ parameters.flavour }} loud=${{ parameters.loud }} note=${{ parameters.note }}"
  displayName: show parameters
"""
TALKER = """trigger: none
steps:
- script: |
    echo "first line"
    sleep 3
    echo "second line"
    sleep 5
  displayName: slow talker
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def pipeline(server: Server, git: Git, prefix: str, yaml: str) -> str:
    name = unique(prefix)
    make_repo(server, git, name, {"azure-pipelines.yml": yaml})
    register(server, name, name, "azure-pipelines.yml")
    return name


def run_state(page: Page) -> str:
    return str(page.locator("h1 .state").get_attribute("data-state"))


def open_step(page: Page, title: str) -> None:
    """Open a step's log (a collapsed <details>) by its title, as a person clicks it."""
    details = page.locator("details.step", has=page.locator(".title", has_text=title))
    if details.get_attribute("open") is None:
        details.locator("summary").click()


def test_run_with_parameters_through_the_form(page: Page, server: Server, git: Git) -> None:
    name = pipeline(server, git, "br-params", PARAMETERS)
    page.goto(f"{server.url}/pipelines/{name}")
    flavour, loud, note = page.get_by_label("Flavour"), page.get_by_label("Shout it"), page.get_by_label("note")
    expect(flavour).to_have_value("vanilla")  # defaults filled, `values:` as a select, a boolean as a checkbox
    expect(loud).not_to_be_checked()
    expect(note).to_have_value("hello")
    flavour.select_option("chocolate")
    loud.check()
    note.fill("<b>hi</b>")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r".*/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    assert wait_state(server, run_id)["parameters"] == {"flavour": "chocolate", "loud": True, "note": "<b>hi</b>"}
    expect(page.locator("h1 .state")).to_have_attribute("data-state", "succeeded")  # the page followed the run
    open_step(page, "show parameters")
    printed = page.locator(".ln .t", has_text=re.compile("^flavour="))
    expect(printed).to_have_text("flavour=chocolate loud=True note=<b>hi</b>")  # as text, not as HTML


def test_logs_stream_live_while_the_step_runs(page: Page, server: Server, git: Git) -> None:
    name = pipeline(server, git, "br-live", TALKER)
    run_id = run(server, name)["id"]
    page.goto(f"{server.url}/runs/{run_id}")
    first = page.locator(".ln .t", has_text=re.compile("^first line"))
    expect(first).to_be_visible()  # the running step opens by itself
    expect(page.locator("#live-status")).to_contain_text("live")
    page.evaluate("window.mlyardMarker = 42")  # gone if the page reloaded
    expect(page.locator(".ln .t", has_text=re.compile("^second line"))).to_be_visible()
    assert page.evaluate("window.mlyardMarker") == 42, "the second line came by reloading, not live"
    assert show(server, run_id)["state"] == "running"
    line = page.locator(".ln", has=page.locator(".t", has_text=re.compile("^second line")))
    anchor = str(line.get_attribute("id"))
    assert re.fullmatch(r"s[0-9a-f]{12}-L\d+", anchor)
    expect(page.locator("h1 .state")).to_have_attribute("data-state", "succeeded", timeout=30_000)
    page.goto(f"{server.url}/runs/{run_id}#{anchor}")  # a link to a line opens its step at the line
    expect(page.locator(f"#{anchor}")).to_be_visible()
    expect(page.locator(f"#{anchor} .t")).to_have_text("second line")


def test_permit_a_run_that_waits_for_a_service_connection(page: Page, server: Server, git: Git) -> None:
    connection = unique("br-conn")
    with server.client() as api:
        api.post("/api/v1/connections", json={"name": connection, "settings": {"WORKSPACE_URI": "file:///ws"}}
                 ).raise_for_status()  # fmt: skip
    name = pipeline(server, git, "br-permit", f"""trigger: none
steps:
- task: AzureCLI@2
  inputs:
    azureSubscription: {connection}
    scriptType: bash
    scriptLocation: inlineScript
    inlineScript: echo "workspace=$WORKSPACE_URI"
""")
    run_id = run(server, name)["id"]
    assert wait_state(server, run_id, {"waiting"})["waiting_for"] == [f"connection:{connection}"]
    page.goto(f"{server.url}/runs/{run_id}")
    expect(page.get_by_text(f"waits for permission to use connection:{connection}")).to_be_visible()
    page.get_by_role("button", name="Permit").click()
    expect(page.locator("h1 .state")).to_have_attribute("data-state", "succeeded", timeout=60_000)
    assert wait_state(server, run_id)["state"] == "succeeded"


def test_approve_a_deployment_from_its_run_page(page: Page, server: Server, git: Git) -> None:
    name = pipeline(server, git, "br-approve", APPROVED)  # a deployment job on the environment `test`
    with server.client() as api:
        api.post(f"/api/v1/pipelines/{name}/permissions", json={"resource": "environment:test"}).raise_for_status()
        api.patch("/api/v1/environments/test", json={"approval_required": True}).raise_for_status()
    try:
        run_id = run(server, name)["id"]
        page.goto(f"{server.url}/runs/{run_id}")
        expect(page.get_by_text("A deployment waits for approval.")).to_be_visible()  # the page reloads to it
        page.get_by_label("Comment").fill("ship it <now>")
        page.get_by_role("button", name="Approve").click()
        expect(page.locator("h1 .state")).to_have_attribute("data-state", "succeeded", timeout=60_000)
        expect(page.locator("#main")).to_contain_text(f"approved by {server.username}: ship it <now>")
    finally:  # the session's server is shared: leave the environment as it was
        with server.client() as api:
            api.patch("/api/v1/environments/test", json={"approval_required": False}).raise_for_status()


def test_rerun_queues_the_same_commit_and_parameters(page: Page, server: Server, git: Git) -> None:
    name = pipeline(server, git, "br-rerun", PARAMETERS)
    first = wait_state(server, run(server, name, parameters={"note": "again"})["id"])
    page.goto(f"{server.url}/runs/{first['id']}")
    page.get_by_role("button", name="Rerun").click()
    page.wait_for_url(re.compile(rf".*/runs/(?!{first['id']}$)\d+$"))
    second = wait_state(server, int(page.url.rsplit("/", 1)[1]))
    assert second["parameters"] == first["parameters"] == {"flavour": "vanilla", "loud": False, "note": "again"}
    assert (second["source_version"], second["source_branch"]) == (first["source_version"], first["source_branch"])
    assert second["reason"] == "Manual" and second["state"] == "succeeded"


def test_a_failed_run_says_why_with_the_step_s_lines(page: Page, server: Server, git: Git) -> None:
    name = pipeline(server, git, "br-fail", """trigger: none
steps:
- script: |
    echo "loading data.csv"
    echo "KeyError: 'label' column is missing" >&2
    exit 3
  displayName: train
""")
    run_id = wait_state(server, run(server, name)["id"])["id"]
    page.goto(f"{server.url}/runs/{run_id}")
    summary = page.locator("section.summary")
    expect(summary).to_contain_text("KeyError: 'label' column is missing")
    expect(summary).to_contain_text("exited with code")
    summary.get_by_role("link", name=re.compile("train")).click()  # to the failing step, open at the top
    expect(page.locator("details.step[open] .title", has_text="train")).to_be_visible()


def test_runs_list_filters_with_the_keyboard(page: Page, server: Server, git: Git) -> None:
    failing = pipeline(server, git, "br-list-fail", "trigger: none\nsteps:\n- script: exit 1\n")
    passing = pipeline(server, git, "br-list-pass", "trigger: none\nsteps:\n- script: echo ok\n")
    bad, good = (wait_state(server, run(server, name)["id"])["id"] for name in (failing, passing))
    page.goto(f"{server.url}/runs")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_label("State").select_option("failed")
    page.get_by_label("State").press("Tab")  # on to Reason, Requested by, then the Filter button
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Filter")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/runs\?.*state=failed"))
    expect(page.get_by_role("link", name=f"#{bad}", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=f"#{good}", exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="Clear filters")).to_be_visible()
