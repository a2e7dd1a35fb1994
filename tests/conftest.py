"""Shared fixtures. Each block below has an owner; add new fixtures in a block of your own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


# =====================================================================================
# BEGIN samba_dc block (owner: tests/samba_dc.py) ----------------------------------
#
# samba_dc     session-scoped: a real Samba AD DC (one per xdist worker: samba_dc.worker_address) on 389/636 and its KDC on :88, loaded with
#              core.demo.seed.build_seed(); yields tests.samba_dc.DCInfo.
# samba_dc_server  the SambaDC behind it, to stop, freeze or restart it (tests/dc_outage.py).
# samba_admin  a bound Administrator connection (LDAPS, verified), closed afterwards.
#
# Tests that use them carry @pytest.mark.dc. The DC is shared by the whole session:
# a test that changes it must create its own objects and delete them again.
# The timings of provision/schema/seed/start appear in the terminal summary.
# =====================================================================================

from run_summary import add_summary_line, pytest_configure  # noqa: E402,F401
from samba_dc import DCInfo, SambaDC, SambaDCError, throwaway_credentials  # noqa: E402

from core.demo.seed import build_seed  # noqa: E402


def _dc_line(dc: SambaDC) -> str:
    parts = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in dc.timings.items())
    return (f"Samba AD DC ready in {sum(dc.timings.values()):.1f}s ({parts}); "
            f"{len(dc.seed.entries)} seed entries; {dc.targetdir}")


@pytest.fixture(scope="session")
def samba_dc_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaDC]:
    """The session's DC itself, started (tests that stop, freeze or restart it)."""
    seed = build_seed()
    dc = SambaDC(tmp_path_factory.mktemp("samba-dc"), seed=seed, **throwaway_credentials(seed))
    try:
        dc.run()
    except SambaDCError as exc:
        error = str(exc)
    else:
        error = None
        add_summary_line(request.config, "samba_dc", _dc_line(dc))
    if error is not None:
        dc.stop()
        pytest.fail(f"the Samba test DC did not start: {error}", pytrace=False)
    try:
        yield dc
    finally:
        dc.stop()


@pytest.fixture(scope="session")
def samba_dc(samba_dc_server: SambaDC) -> DCInfo:
    return samba_dc_server.info()


@pytest.fixture
def samba_admin(samba_dc: DCInfo):
    conn = samba_dc.connect()
    try:
        yield conn
    finally:
        conn.unbind()


# END samba_dc block -------------------------------------------------------------------


# =====================================================================================
# BEGIN directory block (owner: tests/directory_fixtures.py, tests/strict_run.py) -----
# dc_directory / demo_directory: the project's Directory on the test DC / the demo.
# directory: parametrised over both, for tests that must hold for the two alike.
# A skipped test fails the run (strict_run).
# =====================================================================================

from directory_fixtures import (  # noqa: E402,F401
    dc_config_file,
    dc_directory,
    demo_directory,
    directory,
    sp_password,
)
from provisioning_server import provisioning_server  # noqa: E402,F401
from uem_server import uem_processes, uem_servers, uem_third, uem_third_process  # noqa: E402,F401
from strict_run import pytest_sessionfinish, pytest_terminal_summary  # noqa: E402,F401

# END directory block -------------------------------------------------------------------


# =====================================================================================
# BEGIN samba_pair block (owner: tests/samba_pair.py, tests/pair_fixtures.py) --------
#
# samba_pair   session-scoped, only for the two-DC tests: DC1 (provisioned and seeded
#              like samba_dc) and DC2 joined to it, replicating; yields the
#              tests.samba_pair.SambaPair (crash/freeze/restart a DC, hold/replicate).
#              Addresses: TENANTRY_TEST_DC1_ADDRESS / TENANTRY_TEST_DC2_ADDRESS.
# Its start-up time appears in the terminal summary.
# =====================================================================================

from pair_fixtures import pair_config_file, samba_pair  # noqa: E402,F401

# END samba_pair block -------------------------------------------------------------------
