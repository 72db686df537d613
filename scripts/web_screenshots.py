"""Regenerate the screenshots of docs/web.md: quickstart in a scratch home, then Chromium on the main pages.

    .venv/bin/python scripts/web_screenshots.py [--out docs/web] [--home DIR]

Uses Debian's `chromium` through Playwright (`executable_path`; Playwright's own browser download is not
needed). It runs `mlyard quickstart --exit` in a new home (about a minute), starts that home's server on a
free port, signs in with the home's token and saves one PNG per page listed in PAGES. Pages that answer an
error are reported and skipped, so the script also shows which page is broken.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright


@dataclass(frozen=True)
class Shot:
    name: str  # the PNG's file name, without .png
    path: str  # the page, with {model}, {run}, {pipeline} and {repo} filled from the quickstart home
    caption: str


PAGES = (
    Shot("home", "/", "Home: pipelines by folder and the latest runs"),
    Shot("pipeline", "/pipelines/{pipeline}", "A pipeline's runs"),
    Shot("run", "/runs/{run}", "A run: stages, jobs, steps, tests and the log"),
    Shot("models", "/models?env=dev", "Models of an environment"),
    Shot("model", "/models/dev/{model}", "A model: versions, lineage, promotion history with rollback"),
    Shot("deployment", "/deployments/dev/{model}", "A deployment: scoring URI, health, the last hour's traffic"),
    Shot("monitoring", "/deployments/dev/{model}/monitoring?window=24h", "Drift and quality of a deployment"),
    Shot("repo", "/repos/{repo}", "A repository"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mlyard(home: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLYARD_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "mlyard", *args], env=env, capture_output=True, text=True, timeout=timeout, check=True
    )


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no Chromium on PATH: apt-get install chromium")


def wait_healthy(url: str, proc: subprocess.Popen[bytes], deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the server at {url} did not become healthy")


def fill(api: httpx.Client) -> dict[str, str]:
    """The values PAGES' paths name: the demo's code CI/CD pipeline, the latest run, the demo repository."""
    pipelines = api.get("/api/v1/pipelines").json()
    runs = api.get("/api/v1/runs", params={"limit": 1}).json()
    repos = api.get("/api/v1/repos").json()
    if not (pipelines and runs and repos):
        raise SystemExit("the home has no pipeline, run or repository: run quickstart in it first")
    names = [p["name"] for p in pipelines]
    pipeline = next((name for name in names if name.endswith("-deploy-code")), names[0])
    demo = pipeline.removesuffix("-deploy-code")  # the demo project, repo and model
    return {"pipeline": pipeline, "run": str(runs[0]["id"]), "repo": demo, "model": demo}


def shoot(page: Page, url: str, out: Path) -> int:
    answer = page.goto(url)
    page.wait_for_load_state("networkidle")
    for _ in range(60):  # a slow read answers "Loading…" and reloads itself until the result is there
        if not page.locator(".slow-read").count():
            break
        page.wait_for_timeout(500)
        page.wait_for_load_state("networkidle")
    page.screenshot(path=str(out), full_page=False)
    return answer.status if answer else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "web")
    parser.add_argument("--home", type=Path, help="an existing quickstart home to use (default: a new one)")
    args = parser.parse_args()
    scratch = None if args.home else tempfile.mkdtemp(prefix="mlyard-shots-")
    home = args.home or Path(scratch or "") / "home"
    port = free_port()
    if not args.home:
        print("quickstart in a scratch home (about a minute)...", flush=True)
        mlyard(home, "quickstart", "--home", str(home), "--port", str(port), "--exit", "--json")
    config = json.loads((home / "cli.json").read_text())
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlyard", "server", "--port", str(port)],
        env={**os.environ, "MLYARD_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_healthy(url, server)
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {config['token']}"}, timeout=60)
        values = fill(api)
        args.out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            page = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
            page.goto(f"{url}/login")
            page.get_by_label("Token").fill(config["token"])
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_load_state("networkidle")
            for shot in PAGES:
                target = args.out / f"{shot.name}.png"
                status = shoot(page, url + shot.path.format(**values), target)
                print(f"{status}  {shot.path:<24} -> {target.name}  ({shot.caption})")
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
