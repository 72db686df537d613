"""YAML is data, never a path: a pushed pipeline file whose text names a server file does not read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlyard.pipelines import PipelineError, compile_pipeline, load_pipeline
from tests.ci.helpers import make_repo
from tests.conftest import Git, Server

MARKER = "SERVER-FILE-MARKER-9c1e"


@pytest.mark.slow
def test_one_line_yaml_naming_a_server_file_is_not_read(server: Server, git: Git, tmp_path: Path) -> None:
    server_file = tmp_path / "server-only.yml"
    server_file.write_text(f"steps: {MARKER}\n", encoding="utf-8")
    make_repo(server, git, "yaml-path", {"ci.yml": str(server_file), "passwd.yml": "/etc/passwd"})
    with server.client() as api:
        for yaml_path in ("ci.yml", "passwd.yml"):
            body = {"name": f"yaml-path-{yaml_path[:-4]}", "repo": "yaml-path", "yaml": yaml_path}
            response = api.post("/api/v1/pipelines", json=body)
            assert response.status_code == 422, response.text
            assert MARKER not in response.text
            assert "root:" not in response.text
            assert f"{yaml_path}:1:1: a pipeline must be a mapping, got " in response.text


@pytest.mark.parametrize("link", ["absolute", "relative"])
def test_a_template_symlinked_outside_the_repository_is_not_read(tmp_path: Path, link: str) -> None:
    outside = tmp_path / "outside.yml"
    outside.write_text(f"steps:\n- script: echo {MARKER}\n", encoding="utf-8")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "main.yml").write_text("steps:\n- template: t.yml\n", encoding="utf-8")
    (repo / "t.yml").symlink_to(outside if link == "absolute" else Path("..") / "outside.yml")
    with pytest.raises(PipelineError) as caught:
        compile_pipeline(load_pipeline(repo / "main.yml"), repo_root=repo)
    expected = f"{repo / 'main.yml'}:2:3: steps[0].template: template 't.yml' is outside the repository"
    assert caught.value.errors == [expected]
