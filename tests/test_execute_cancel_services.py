"""Cancelling a move with an HTTP step in flight, on the real Samba DC and the customers' UEM
servers: the call finishes, then it is undone with every step before it."""

from __future__ import annotations

import pytest

from core import plan as p
from core.execute import CANCELLED
from core.move import MoveRequest
from move_fixtures import DESTINATION, remove_user, snapshot
from test_execute_cancel import Hold, cancel_while_held
from test_move_services import seeded_user, services_state, session  # noqa: F401  (the DC + UEM servers session)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_cancel_with_an_http_call_in_flight_lets_it_finish_then_undoes_it(session, provisioning_server, uem_servers):
    """On the real DC with BlackBerry: held on the UEM 'create user' call, cancelled; the
    call is made, then undone with every directory step before it."""
    server, d = provisioning_server, session.directory
    destination_uem = uem_servers[1]
    user = await seeded_user(session, server, uem_servers)
    try:
        before = (await snapshot(d, user.source, user.destination), services_state(server, uem_servers))
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        assert plan.ok, plan.problems
        create = next(i for i, s in enumerate(plan.steps) if s.action == p.HTTP and (s.request or {}).get("op") == "create_user")
        hold = Hold(create)
        events = await cancel_while_held(session.executor(before_step=hold), plan, session.operator, hold)

        assert ("step_done", create) in [(e.kind, e.index) for e in events]
        assert events[-1].status == "rolled_back" and events[-1].message == CANCELLED
        assert [e.index for e in events if e.kind == "step_undone"] == list(range(create, -1, -1))
        base = f"/{destination_uem.srp_id}/api/v1/users"
        calls = [(c["method"], c["path"]) for c in destination_uem.calls()]
        made = calls.index(("POST", base))  # the call in flight was made…
        assert any(m == "DELETE" and path.startswith(f"{base}/") for m, path in calls[made + 1:])  # …then undone
        assert (await snapshot(d, user.source, user.destination), services_state(server, uem_servers)) == before
    finally:
        await remove_user(d, user)
        server.reset()
