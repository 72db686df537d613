"""Start-up imports with the cyclic garbage collector paused (mlyard.imports), and the processes that use it."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlyard.imports import collector_paused


def test_the_collector_is_off_inside_then_the_objects_are_frozen_and_it_is_on_again(collector: None) -> None:
    gc.enable()
    gc.unfreeze()
    with collector_paused():
        assert not gc.isenabled()
        made = [[n] for n in range(1000)]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(made)


def test_a_collector_that_was_off_stays_off(collector: None) -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_it_is_restored_when_the_block_fails(collector: None) -> None:
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("import failed")
    assert gc.isenabled()


def test_a_scoring_zygote_imports_with_the_collector_paused(tmp_path: Path) -> None:
    """The warm pool's zygote (mlyard.serving.server.zygote): its imports see the collector off, and it ends
    with it on and their objects frozen (here the pool's end of its control socket is closed: it exits 0)."""
    (tmp_path / "gc_probe.py").write_text("import gc, sys\nprint('during', gc.isenabled(), file=sys.stderr)\n")
    code = ("import gc, os, sys\n"
            "from mlyard.serving import server\n"
            "server.WARM_MODULES = ('gc_probe',)\n"
            "import socket\n"
            "pool, zygote = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
            "pool.close()\n"
            "code = server.zygote(zygote.detach())\n"
            "print('after', gc.isenabled(), gc.get_freeze_count() > 0, code, file=sys.stderr)\n")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = subprocess.run([sys.executable, "-c", code], input=b"", capture_output=True, env=env, timeout=60)
    lines = done.stderr.decode().split("\n")
    assert "during False" in lines, done.stderr.decode()
    assert "after True True 0" in lines, done.stderr.decode()
