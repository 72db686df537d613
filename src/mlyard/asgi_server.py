"""uvicorn's server without its ten wake-ups a second: an idle server, scoring process or MLflow server sleeps.

uvicorn's `Server.main_loop` wakes every 0.1 s to ask whether it should stop (`should_exit`, set by its signal
handler) and, every tenth time, to refresh the `Date` header. On this machine each wake-up of an idle process
costs ~0.3 ms of CPU: ~3 ms a second per process, for the mlyard server, every environment's MLflow server and
every scoring process and standby, all day. `QuietServer` waits instead until the next second (the `Date` header
is refreshed as often as before) or until a stop is asked (`handle_exit`, from uvicorn's signal handler: it wakes
the loop at once). A stop asked by setting `should_exit` directly is seen within the second.

This module imports uvicorn: import it where uvicorn is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType

import uvicorn

TICK_SECONDS = 1.0  # uvicorn's loop looks this often (it refreshes the Date header once a second: every 10 ticks)
TICKS_PER_SECOND = 10  # uvicorn's own tick is 0.1 s: `on_tick(counter)` refreshes the headers when counter % 10 == 0
COUNTER_WRAP = 864000  # = uvicorn's: the counter wraps once a day of ticks


class QuietServer(uvicorn.Server):
    """A `uvicorn.Server` whose main loop wakes once a second, or at once when a stop is asked."""

    _loop: asyncio.AbstractEventLoop | None = None
    _stop_asked: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_asked = asyncio.Event()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + TICKS_PER_SECOND) % COUNTER_WRAP
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_asked.wait(), TICK_SECONDS)
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        loop, stop_asked = self._loop, self._stop_asked
        if loop is not None and stop_asked is not None and not loop.is_closed():
            # a signal handler runs between two bytecodes of the loop's thread: wake its selector through its pipe
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stop_asked.set)
