"""Service adapters, chosen per service by configuration (``[services.<key>] adapter``)."""

from __future__ import annotations

from importlib import import_module
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from core.config import Config
from core.services.base import ServiceAdapter

if TYPE_CHECKING:
    import httpx

_ADAPTERS = {
    "exchange": ("core.services.directory_services", "ExchangeAdapter"),
    "exchange_powershell": ("core.services.exchange", "ExchangePowerShellAdapter"),
    "ocs": ("core.services.directory_services", "OcsAdapter"),
    "lync_powershell": ("core.services.lync", "LyncPowerShellAdapter"),
    "blackberry": ("core.services.blackberry", "BlackBerryAdapter"),
    "http": ("core.services.http", "HttpAdapter"),
    "group": ("core.services.base", "ServiceAdapter"),
}
HTTP_ADAPTERS = frozenset({"blackberry", "http"})  # the adapters that call an HTTP API
CMDLET_ADAPTERS = frozenset({"exchange_powershell", "lync_powershell"})  # the adapters that run cmdlets over PowerShell remoting


def build_adapters(
    config: Config, *, transport: httpx.AsyncBaseTransport | None = None, environ: Mapping[str, str] | None = None,
    powershell: Any = None,
) -> dict[str, ServiceAdapter]:
    """One adapter per configured service, keyed by the service key.

    ``transport``, if given, carries every HTTP-backed adapter's calls instead of the
    network (the demo's in-process backend; an :class:`httpx.MockTransport` in tests);
    ``powershell``, if given, carries the cmdlet adapters' WS-Management requests (a
    requests transport adapter: the demo's in-process PowerShell server); ``environ``, if
    given, is where they all read their secrets instead of ``os.environ``.
    """
    adapters: dict[str, ServiceAdapter] = {}
    for key, entry in config.services.items():
        module, name = _ADAPTERS[entry.service.adapter]
        cls = getattr(import_module(module), name)
        extra: dict = {}
        if entry.service.adapter in HTTP_ADAPTERS:
            extra.update({k: v for k, v in (("transport", transport), ("environ", environ)) if v is not None})
        if entry.service.adapter in CMDLET_ADAPTERS:
            extra.update({k: v for k, v in (("transport", powershell), ("environ", environ)) if v is not None})
        if entry.service.adapter in ("blackberry", *CMDLET_ADAPTERS):
            extra["tenants"] = config.tenants  # their per-customer settings come from the tenant map
        adapters[key] = cls(entry.service, entry.options, config.layout, **extra)
    return adapters


async def close_adapters(adapters: dict[str, ServiceAdapter]) -> None:
    for adapter in adapters.values():
        await adapter.aclose()
