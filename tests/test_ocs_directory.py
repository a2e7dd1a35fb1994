"""OCS 2007 R2 through the directory (adapter = "ocs"): a copy is homed like its template
(msRTCSIP-PrimaryHomeServer, msRTCSIP-OptionFlags), on the real Samba DC."""

from __future__ import annotations

import ldap3
import pytest

from core.copy import CopyRequest
from core.demo.lync import LyncDeployment
from move_fixtures import make_user, remove_user
from test_copy import copy_names, new_password, remove_copy, run
from test_move_services import session  # noqa: F401  (session: the fixture, adapter = "ocs")

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.dc]
POOL = "ocs-pool.example.net"


async def test_a_copy_gets_the_templates_home_server_and_option_flags(session, samba_dc, samba_admin):
    d = session.directory
    pools = LyncDeployment(samba_admin, samba_dc.base_dn)
    pools.install((POOL,))
    template = await make_user(d, services=("exchange", "ocs"))
    copy_dn = None
    try:
        assert samba_admin.modify(template.dn, {"msRTCSIP-PrimaryHomeServer": [(ldap3.MODIFY_REPLACE, [pools.pool_dn(POOL)])],
                                                "msRTCSIP-OptionFlags": [(ldap3.MODIFY_REPLACE, ["257"])]})
        password = new_password()
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, *copy_names(), services=("exchange", "ocs")), password)
        assert plan.ok, plan.problems
        copy_dn = plan.users[0].dn_after
        events, status = await run(session, plan, password)
        assert status == "done", [e.message for e in events]
        values = await d.values(copy_dn, ["msRTCSIP-PrimaryHomeServer", "msRTCSIP-OptionFlags", "msRTCSIP-UserEnabled"])
        assert [v.casefold() for v in values["msRTCSIP-PrimaryHomeServer"]] == [pools.pool_dn(POOL).casefold()]
        assert values["msRTCSIP-OptionFlags"] == ["257"] and values["msRTCSIP-UserEnabled"] == ["TRUE"]
    finally:
        await remove_copy(d, copy_dn)
        await remove_user(d, template)
