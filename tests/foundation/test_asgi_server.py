"""mlyard.asgi_server: uvicorn's server, awake once a second instead of ten times, and stopped by SIGTERM at once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

# A real uvicorn server on a free loopback port, its main loop counted: it answers a request, idles, then
# SIGTERM (sent by a thread, as mlyard.serving's stop_with does) stops it: its main loop ends and says what it
# counted (uvicorn then raises the signal again: the process ends by it). `uvicorn` says which class serves.
PROGRAM = """
import json, os, signal, sys, threading, time, urllib.request
import uvicorn
from mlyard.asgi_server import QuietServer

async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

base = uvicorn.Server if sys.argv[1] == "uvicorn" else QuietServer
ticks = []
stopped = []

class Counted(base):
    async def on_tick(self, counter):
        ticks.append(counter)
        return await super().on_tick(counter)

    async def main_loop(self):
        await super().main_loop()
        answer, before = stopped[0]
        print(json.dumps({"answer": answer, "idle_ticks": before, "ticks_after_stop": len(ticks) - before,
                          "date_refreshes": sum(1 for t in ticks if t % 10 == 0),
                          "woken": bool(getattr(self, "_stop_asked", None) and self._stop_asked.is_set())}),
              flush=True)

config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
server = Counted(config)

def drive():
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    answer = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
    time.sleep(2.5)
    before = len(ticks)
    stopped.append((answer, before))
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=drive, daemon=True).start()
server.run()  # then uvicorn raises the SIGTERM it caught again: the process ends by it
"""


def run(kind: str) -> dict[str, int | str]:
    out = subprocess.run([sys.executable, "-c", PROGRAM, kind], capture_output=True, text=True, timeout=60)
    assert out.returncode == -signal.SIGTERM, out.stderr
    return dict(json.loads(out.stdout))


def test_the_quiet_server_wakes_once_a_second_and_stops_at_once_on_sigterm() -> None:
    quiet, plain = run("quiet"), run("uvicorn")
    assert quiet["answer"] == plain["answer"] == "ok"
    # ~2.5 s of idling: uvicorn's loop ran ~25 times, the quiet one ~3 times, each time refreshing the Date header
    # (uvicorn refreshes it once every ten of its ticks: as often)
    assert plain["idle_ticks"] >= 15, plain
    assert 1 <= int(quiet["idle_ticks"]) <= 5, quiet
    assert quiet["date_refreshes"] == int(quiet["idle_ticks"]) + int(quiet["ticks_after_stop"])
    # SIGTERM woke the loop (not its next second): one more look, which found the stop
    assert quiet["woken"] is True and quiet["ticks_after_stop"] == 1, quiet
