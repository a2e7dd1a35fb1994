"""The directory's connection status: ``lost`` when the domain controller goes away,
``available`` again when it answers, on the real Samba AD DC (its samba process stopped
and started again) and on the demo directory (always available)."""

from __future__ import annotations

import asyncio

import pytest

from core.directory.pool import AVAILABLE, LOST
from core.errors import DirectoryUnavailable
from dc_outage import dc_outage  # noqa: F401
from move_fixtures import make_user, remove_user

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.dc
async def test_the_status_follows_the_dc_away_and_back(dc_directory, dc_outage):
    user = await make_user(dc_directory, services=())
    changes: list[str] = []
    stop_watching = dc_directory.connection.watch(changes.append)
    try:
        # several pooled connections, all of them about to die with the DC
        assert all(await asyncio.gather(*(dc_directory.probe() for _ in range(3))))
        assert dc_directory.connection.state == AVAILABLE and len(dc_directory.pool._slots) > 1
        before = await dc_directory.customers(search="Globex", with_services=False)

        await dc_outage.stop()
        with pytest.raises(DirectoryUnavailable, match="cannot be reached"):
            await dc_directory.customers(search="Globex", with_services=False)
        assert dc_directory.connection.state == LOST and changes == [LOST]
        assert "cannot be reached" in dc_directory.connection.reason
        assert await dc_directory.probe() is False
        back = asyncio.create_task(dc_directory.connection.wait_available())
        retrying = asyncio.create_task(dc_directory.reconnect(first=0.1, longest=0.5))
        await asyncio.sleep(0.3)  # a few probes fail meanwhile
        assert not back.done() and not retrying.done() and changes == [LOST]

        await dc_outage.start()
        await asyncio.wait_for(retrying, timeout=30)
        assert back.done() and dc_directory.connection.state == AVAILABLE and changes == [LOST, AVAILABLE]
        # writes first: whichever pooled connection one gets was re-opened after the loss
        for title in ("After the outage", "Tester") * len(dc_directory.pool._slots):
            await dc_directory.modify(user.dn, {"title": (["Tester" if title != "Tester" else "After the outage"], [title])})
        assert (await dc_directory.user(user.dn)).attribute("title") == ("Tester",)
        assert await dc_directory.customers(search="Globex", with_services=False) == before
    finally:
        stop_watching()
        await dc_outage.start()
        await remove_user(dc_directory, user)


async def test_the_demo_directory_is_always_available(demo_directory):
    assert await demo_directory.probe() is True
    assert demo_directory.connection.state == AVAILABLE and not demo_directory.connection.lost
    await asyncio.wait_for(demo_directory.connection.wait_available(), timeout=1)
    await demo_directory.reconnect()  # nothing to wait for
