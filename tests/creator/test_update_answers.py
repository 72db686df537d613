"""The answers file of a project is data: read with bounds, `_commit` a plain revision, `_src_path` replaceable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlyard.errors import InvalidInput, NotFound
from mlyard.scaffold.update import ANSWERS_MAX_BYTES, read_answers, set_src_path

GOOD = "# header kept\n_commit: 1a2b3c4\n_src_path: http://x/git/ml-project-template.git\nrepo_name: p\ndemo: false\n"


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / ".copier-answers.yml").write_text(text)
    return tmp_path


def test_read_answers(tmp_path: Path) -> None:
    answers = read_answers(write(tmp_path, GOOD), where="p (master)")
    assert answers.commit == "1a2b3c4" and answers.src_path == "http://x/git/ml-project-template.git"
    assert dict(answers.values) == {"repo_name": "p", "demo": False}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("_commit: --upload-pack=touch x\nrepo_name: p\n", "p (master): .copier-answers.yml has no valid _commit"),
        ("repo_name: p\n", "has no valid _commit (the template revision the project was rendered from"),
        ("- a\n- b\n", "p (master): .copier-answers.yml must be a mapping of at most 200 named answers"),
        ("_commit: [unclosed\n", "p (master): .copier-answers.yml:2:1 is not valid YAML"),
        ("x: '" + "a" * ANSWERS_MAX_BYTES + "'\n", "p (master): .copier-answers.yml is larger than 64 KiB"),
    ],
)
def test_bad_answers_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_answers(write(tmp_path, text), where="p (master)")
    assert message in caught.value.message


def test_no_answers_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as caught:
        read_answers(tmp_path, where="p (master)")
    assert caught.value.message.startswith("p (master) has no .copier-answers.yml: it was not rendered")
    assert "add .copier-answers.yml to it (see docs/creator.md, 'Projects without answers')" in caught.value.message


def test_set_src_path_keeps_the_rest_of_the_file(tmp_path: Path) -> None:
    project = write(tmp_path, GOOD)
    set_src_path(project, "clone of template", answers=read_answers(project, where="p"))
    text = (project / ".copier-answers.yml").read_text()
    assert text == GOOD.replace("http://x/git/ml-project-template.git", "clone of template")


@pytest.mark.parametrize("src", ["_src_path: |\n  a\n  b\n", "", "_src_path: a\n_src_path: b\n"])
def test_set_src_path_on_odd_files(tmp_path: Path, src: str) -> None:
    project = write(tmp_path, f"_commit: abc\n{src}repo_name: p\n")
    set_src_path(project, "t", answers=read_answers(project, where="p"))
    data = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert data == {"_commit": "abc", "_src_path": "t", "repo_name": "p"}


@pytest.mark.parametrize("sha", ["2911420", "0123456", "1e10000"])
def test_a_commit_of_digits_is_read_as_written(tmp_path: Path, sha: str) -> None:
    """YAML reads `_commit: 2911420` as a number (`0123456` as octal): the sha is the text as written, and the
    rewritten answers keep it a string."""
    project = write(tmp_path, f"_commit: {sha}\n_src_path: old\nrepo_name: p\n")
    answers = read_answers(project, where="p (master)")
    assert answers.commit == sha
    set_src_path(project, "http://x/git/t.git", answers=answers)
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == sha
