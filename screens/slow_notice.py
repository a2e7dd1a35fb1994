"""A "still working…" notice shown only while slow work is still under way.

Textual runs a ``set_timer`` callback through the message queue (``call_next``), so a
timer stopped after it fired can still run its callback later — on a busy machine after
the work finished, overwriting the result with "searching…". The notice is a no-op once
stopped, whenever the queued callback comes.
"""

from __future__ import annotations

from typing import Callable

from textual.message_pump import MessagePump


class SlowNotice:
    """Calls ``show`` if the work outlasts ``delay`` seconds and has not ended by then."""

    def __init__(self, owner: MessagePump, delay: float, show: Callable[[], None]) -> None:
        self._show = show
        self._live = True
        self._timer = owner.set_timer(delay, self._fire)

    def _fire(self) -> None:
        if self._live:
            self._show()

    def stop(self) -> None:
        self._live = False
        self._timer.stop()
