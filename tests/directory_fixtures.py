"""Fixtures that open the project's Directory on the test DC and on the demo directory."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import pytest_asyncio

from core.config import load
from core.directory import connect

PASSWORD_ENV = "TENANTRY_TEST_BIND_PASSWORD"


def operator(samba_dc, rights_prefix: str):
    return next(o for o in samba_dc.seed.operators if o.rights.startswith(rights_prefix))


def dead_url() -> str:
    """An ldaps:// URL on a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"ldaps://127.0.0.1:{port}"


def write_dc_config(samba_dc, path: Path, *, urls=None, user=None, ca_file=None, extra: str = "", tenants: str | None = None,
                    receive_timeout: float = 10) -> Path:
    """A config file for the test DC, binding as ``user`` (the SP administrator by default),
    with the seed's tenant map (``tenants`` replaces it, e.g. an attack's edited one)."""
    user = user or operator(samba_dc, "sp_admin").upn
    urls = urls or [samba_dc.ldaps_url]
    path.write_text(
        "[directory]\n"
        f"urls = {list(urls)!r}\n".replace("'", '"')
        + f'base_dn = "{samba_dc.base_dn}"\n'
        f'bind_user = "{user}"\n'
        f'password_env = "{PASSWORD_ENV}"\n'
        f'ca_file = "{ca_file or samba_dc.ca_file}"\n'
        f"connect_timeout = 3\nreceive_timeout = {receive_timeout:g}\npage_size = 500\n" + extra
        + "\n" + (samba_dc.seed.tenants_toml() if tenants is None else tenants),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def dc_config_file(samba_dc, tmp_path_factory) -> Path:
    return write_dc_config(samba_dc, tmp_path_factory.mktemp("config") / "dc.toml")


@pytest.fixture(scope="session")
def sp_password(samba_dc) -> str:
    return samba_dc.operator_passwords[operator(samba_dc, "sp_admin").name]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dc_directory(dc_config_file, sp_password):
    directory = await connect(load(dc_config_file), sp_password)
    yield directory
    await directory.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def demo_directory():
    """The demo directory with the directory-only Exchange and OCS adapters, as the DC's
    test configuration has them, so that the same tests run on both (the demo's own
    cmdlet adapters are tested in test_demo_powershell.py)."""
    import dataclasses

    from core.config import DEFAULT_SERVICES, ServiceConfig
    from core.demo.directory import demo_config, open_demo

    services = {key: ServiceConfig(service) for key, service in DEFAULT_SERVICES.items()}
    directory = await open_demo(dataclasses.replace(demo_config(), services=services))
    yield directory
    await directory.close()


@pytest.fixture(params=["demo", "dc"])
def directory(request):
    """The same tests over the embedded demo directory and the real Samba AD DC."""
    return request.getfixturevalue(f"{request.param}_directory")
