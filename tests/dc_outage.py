"""Taking the shared test DC away for a moment: its samba process stopped, then started
again on the same database and ports.

The DC is shared by the whole session, so the ``dc_outage`` fixture starts it again when
the test ends, whatever happened, and has the session's ``dc_directory`` answer once (so
the next test's first call, a write maybe, finds its connections re-opened). While the DC
is down, this run keeps the address lock (tests/samba_dc.py), so another test run
waiting for the ports cannot take them in between and answer in its place.
"""

from __future__ import annotations

import asyncio

import pytest_asyncio

from samba_dc import SambaDC


class Outage:
    def __init__(self, dc: SambaDC) -> None:
        self.dc = dc

    @property
    def down(self) -> bool:
        return self.dc.process is None

    async def stop(self) -> None:
        await asyncio.to_thread(self._stop)

    async def start(self) -> None:
        """Start it again (returns once LDAPS answers)."""
        if self.down:
            await asyncio.to_thread(self.dc.start)

    def _stop(self) -> None:
        """Stop the samba process (every connection to it drops), keeping the address."""
        lock, self.dc._address_lock = self.dc._address_lock, None  # stop() would release it
        try:
            self.dc.stop()
        finally:
            self.dc._address_lock = lock


@pytest_asyncio.fixture(loop_scope="session")
async def dc_outage(samba_dc_server, dc_directory):
    outage = Outage(samba_dc_server)
    try:
        yield outage
    finally:
        await outage.start()
        await dc_directory.probe()
