"""Parts of the web UI without a server: README rendering, repository paths, slow reads in the background."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from mlyard.errors import InvalidInput, NotFound
from mlyard.services.repo_browse import MAX_PATH, check_path
from mlyard.web import markdown
from mlyard.web.slow import MAX_ENTRIES, MAX_RUNNING, Busy, Slow


def test_markdown_escapes_html_and_drops_script_links() -> None:
    html = markdown.render("# <img src=x onerror=alert(1)>\n\n[x](javascript:alert(1)) [y](JaVaScRiPt:alert(1))\n\n"
                           "<script>alert(2)</script>\n\n[d](data:text/html,hi) ![i](data:image/png;base64,AA==)",
                           repo="r", rev="main", folder="")  # fmt: skip
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html.lower() and 'href="data:' not in html


def test_markdown_points_relative_links_into_the_browser() -> None:
    html = markdown.render("[a](../b.md) [c](sub/) [out](../../x) [abs](/runs/1) [ext](https://example.com/) "
                           "![p](img/p.png)", repo="my repo", rev="feature/x", folder="docs")  # fmt: skip
    assert 'href="/repos/my%20repo/blob?ref=feature%2Fx&amp;path=b.md"' in html
    assert 'href="/repos/my%20repo/tree?ref=feature%2Fx&amp;path=docs/sub"' in html
    assert 'href="#"' in html and 'href="/runs/1"' in html and 'href="https://example.com/"' in html
    assert 'src="/repos/my%20repo/raw?ref=feature%2Fx&amp;path=docs/img/p.png"' in html


@pytest.mark.parametrize(
    "path", ["..", "../x", "a/../b", "a/./b", "a//b", "a\\b", "a\x00b", "a\nb", "x" * (MAX_PATH + 1)]
)
def test_paths_outside_the_repository_or_odd_are_refused(path: str) -> None:
    with pytest.raises(InvalidInput):
        check_path(path)


@pytest.mark.parametrize(("path", "expected"), [("", ""), ("/", ""), ("src/app.py", "src/app.py"), ("/src/", "src")])
def test_paths_are_normalised(path: str, expected: str) -> None:
    assert check_path(path) == expected


def test_a_slow_read_answers_loading_then_its_value() -> None:
    slow, release = Slow(ttl=60), threading.Event()

    def work() -> str:
        release.wait(10)
        return "done"

    ready, waited = slow.get("k", work)
    assert ready is False and waited >= 0
    assert slow.get("k", work)[0] is False  # one thread per key: still the first one
    release.set()
    deadline = time.monotonic() + 10
    while not slow.get("k", work)[0] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert slow.get("k", work) == (True, "done")


def test_a_slow_reads_error_is_raised_once_then_retried() -> None:
    slow, calls = Slow(ttl=60), []

    def work() -> None:
        calls.append(1)
        raise NotFound("model 'x' not found")

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if slow.get("k", work)[0]:
                break
        except NotFound as exc:
            assert "model 'x'" in exc.message
            break
        time.sleep(0.01)
    assert slow.get("k", work)[0] is False  # the failure was shown once: this request tries again
    _wait_for(lambda: len(calls) == 2)
    slow.drop("k")
    assert slow.get("k", work)[0] is False
    _wait_for(lambda: len(calls) == 3)


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def test_slow_reads_keep_a_bounded_number_of_results() -> None:
    slow = Slow(ttl=60)
    for key in range(MAX_ENTRIES * 2):
        slow.get(key, lambda: None)
        while not slow.get(key, lambda: None)[0]:
            time.sleep(0.001)
    assert len(slow._entries) <= MAX_ENTRIES


def test_slow_reads_running_at_once_are_bounded() -> None:
    slow, release = Slow(ttl=60), threading.Event()
    for key in range(MAX_RUNNING):
        assert slow.get(key, lambda: release.wait(10))[0] is False
    with pytest.raises(Busy, match="reload this page"):
        slow.get("one more", lambda: None)
    release.set()
