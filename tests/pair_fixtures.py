"""The two-DC bed as pytest fixtures (see tests/samba_pair.py); only two-DC tests use them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.demo.seed import build_seed
from directory_fixtures import write_dc_config
from run_summary import add_summary_line
from samba_dc import SambaDCError
from samba_pair import SambaPair


@pytest.fixture(scope="session")
def samba_pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SambaPair]:
    pair = SambaPair(tmp_path_factory.mktemp("samba-pair"), build_seed())
    try:
        pair.run()
    except SambaDCError as exc:
        pytest.fail(f"the two test DCs did not start: {exc}", pytrace=False)
    timings = pair.timings
    add_summary_line(request.config, "samba_pair",
                     f"Two replicating Samba AD DCs ready in {timings['total']:.1f}s (DC1 provisioned, seeded and started "
                     f"{timings['dc1']:.1f}s; DC2 joined, started and replicating {timings['dc2']:.1f}s); {pair.root}")
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture(scope="session")
def pair_config_file(samba_pair: SambaPair, tmp_path_factory) -> Path:
    """A config naming both DCs (DC1 first), one CA file for the two; a resume or rollback
    waits 2 s at most for a DC to receive another's writes (the tests that wait longer
    say so)."""
    info = samba_pair.info()
    return write_dc_config(info.dc1, tmp_path_factory.mktemp("pair-config") / "pair.toml", urls=info.urls, ca_file=info.ca_file,
                           extra="replication_wait = 2\n")
