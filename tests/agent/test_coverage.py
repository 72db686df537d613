"""PublishCodeCoverageResults@1 and @2 with Cobertura (and JaCoCo) reports: read on the agent, stored by
the server, shown by `mlyard runs show` and the run page.

Sources: "PublishCodeCoverageResults@2 - Publish code coverage results v2 task" (summaryFileLocation
required, minimatch patterns; failIfCoverageEmpty default false) and "PublishCodeCoverageResults@1"
(codeCoverageTool Cobertura | JaCoCo, default JaCoCo); the Cobertura samples follow coverage.py's
`coverage xml` output and Cobertura 1.9's coverage-04.dtd, the JaCoCo one JaCoCo's report.dtd.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlyard.agent.coverage import CoverageError, read_report, summarize_coverage
from mlyard.protocol import FAILED, SUCCEEDED, SUCCEEDED_WITH_ISSUES, CoverageSummary
from tests.agent.conftest import DATA, Runner, job, script, step
from tests.conftest import Git, Server, start_server

SAMPLES = DATA / "coverage"


@pytest.mark.parametrize(
    ("name", "fmt", "counts"),
    [("coverage.xml", "Cobertura", (8, 10, 1, 2)), ("legacy-cobertura.xml", "Cobertura", (3, 4, 1, 4)),
     ("jacoco.xml", "JaCoCo", (6, 8, 3, 4))],
)  # fmt: skip
def test_reports(name: str, fmt: str, counts: tuple[int, int, int, int]) -> None:
    found, read = read_report(SAMPLES / name)
    assert found == fmt
    assert (read.lines_covered, read.lines_valid, read.branches_covered, read.branches_valid) == counts


def test_reports_add_up_and_rates() -> None:
    summary = summarize_coverage([SAMPLES / "coverage.xml", SAMPLES / "legacy-cobertura.xml"], "Cobertura")
    assert (summary.format, summary.lines_covered, summary.lines_valid) == ("Cobertura", 11, 14)
    assert summary.line_rate == pytest.approx(11 / 14) and summary.branch_rate == pytest.approx(2 / 6)
    assert CoverageSummary("Cobertura").line_rate is None


def test_wrong_format_is_named() -> None:
    with pytest.raises(CoverageError) as caught:
        read_report(SAMPLES / "jacoco.xml", "Cobertura")
    assert str(caught.value) == (f"{SAMPLES / 'jacoco.xml'}: not a Cobertura XML file (root element <report>, "
                                 "expected <coverage>)")  # fmt: skip


def _writer(*names: str) -> str:
    files = [f"cat > cov/{name} <<'REPORT'\n{(SAMPLES / name).read_text()}\nREPORT" for name in names]
    return "mkdir -p cov\n" + "\n".join(files)


def test_publish_code_coverage_tasks(run: Runner) -> None:
    spec = job(
        script("write", _writer("coverage.xml", "jacoco.xml")),
        step("v2", "PublishCodeCoverageResults@2",
             inputs={"summaryFileLocation": "$(System.DefaultWorkingDirectory)/**/coverage.xml"}),
        step("v1", "PublishCodeCoverageResults@1", inputs={"codeCoverageTool": "Cobertura",
                                                          "summaryFileLocation": "cov/coverage.xml",
                                                          "reportDirectory": "cov/html"}),
        step("v1default", "PublishCodeCoverageResults@1", inputs={"summaryFileLocation": "cov/jacoco.xml"}),
        step("v1wrong", "PublishCodeCoverageResults@1", inputs={"summaryFileLocation": "cov/coverage.xml"}),
        step("missing", "PublishCodeCoverageResults@2", inputs={"summaryFileLocation": "**/nothing.xml"},
             condition="always()"),
        step("strict", "PublishCodeCoverageResults@2", inputs={"summaryFileLocation": "**/nothing.xml",
                                                              "failIfCoverageEmpty": "true"}, condition="always()"),
        step("required", "PublishCodeCoverageResults@2", condition="always()"),
    )  # fmt: skip
    _, rec = run(spec)
    assert [rec.result(name) for name in ("v2", "v1", "v1default")] == [SUCCEEDED] * 3
    assert [(c.format, c.lines_covered, c.lines_valid, c.branches_covered, c.branches_valid) for c in rec.coverage] == [
        ("Cobertura", 8, 10, 1, 2), ("Cobertura", 8, 10, 1, 2), ("JaCoCo", 6, 8, 3, 4),
    ]  # fmt: skip
    published = "Publishing Cobertura code coverage from 1 file(s): lines 80.0% (8/10), branches 50.0% (1/2)"
    assert published in rec.logs["v2"]
    assert any(line.startswith("reportDirectory is not used") for line in rec.logs["v1"])
    assert rec.result("v1wrong") == FAILED  # codeCoverageTool defaults to JaCoCo, as in Azure
    assert "not a JaCoCo XML file (root element <coverage>, expected <report>)" in rec.issues("v1wrong")[0][1]
    assert rec.result("missing") == SUCCEEDED_WITH_ISSUES
    assert rec.issues("missing")[0][1].startswith("no code coverage files matched '**/nothing.xml' in ")
    assert rec.result("strict") == FAILED
    assert rec.issues("required") == [
        ("error", "input summaryFileLocation is required: the path or pattern of the coverage XML files")
    ]


@pytest.fixture
def agentless(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path, "--agents", "0")
    yield srv
    srv.stop()


@pytest.mark.slow
def test_the_server_stores_and_shows_coverage(agentless: Server, git: Git) -> None:
    from tests.agent.test_remote_agent import agent_token
    from tests.ci.helpers import make_repo, register, run
    from tests.web.test_pages import sign_in

    server = agentless
    make_repo(server, git, "cov", {"ci.yml": "trigger: none\nsteps:\n- bash: echo tested\n"})
    register(server, "cov", "cov", "ci.yml")
    run_id = run(server, "cov")["id"]
    with server.client(agent_token(server)) as agent:
        claimed = agent.post("/api/v1/agent/claim", json={"agent": "cov-1", "wait": 20})
        assert claimed.status_code == 200, claimed.text
    spec = claimed.json()
    prefix = f"/api/v1/agent/jobs/{spec['job_id']}"
    first = CoverageSummary("Cobertura", 8, 10, 1, 2, files=["cov/coverage.xml"]).to_dict()
    second = CoverageSummary("JaCoCo", 6, 8, 3, 4).to_dict()
    with server.client(spec["access_token"]) as api:
        answers = [api.post(f"{prefix}/coverage", json=body) for body in (first, second)]
        bad = api.post(f"{prefix}/coverage", json={**first, "lines_covered": 11})
        api.post(f"{prefix}/complete", json={"result": "succeeded"})
    assert [answer.status_code for answer in answers] == [200, 200], [a.text for a in answers]
    assert bad.status_code == 400 and "covered counts must be between 0 and the valid counts" in bad.text
    shown = json.loads(server.cli("runs", "show", str(run_id), "--json").stdout)
    assert shown["coverage"] == {"lines_covered": 14, "lines_valid": 18, "branches_covered": 4, "branches_valid": 6,
                                 "line_rate": pytest.approx(14 / 18), "branch_rate": pytest.approx(4 / 6),
                                 "reports": 2}  # fmt: skip
    assert "coverage: lines 77.8% (14/18), branches 66.7% (4/6)" in server.cli("runs", "show", str(run_id)).stdout
    with sign_in(server) as web:
        page = web.get(f"/runs/{run_id}")
    assert '<h2 id="coverage">Code coverage</h2>\n<p>lines 77.8% (14/18), branches 66.7% (4/6)' in page.text
