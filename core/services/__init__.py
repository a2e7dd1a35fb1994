"""Service adapters, chosen per service by configuration (``[services.<key>] adapter``)."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from core.config import Config
from core.services.base import ServiceAdapter

if TYPE_CHECKING:
    import httpx

_ADAPTERS = {
    "exchange": ("core.services.directory_services", "ExchangeAdapter"),
    "ocs": ("core.services.directory_services", "OcsAdapter"),
    "blackberry": ("core.services.blackberry", "BlackBerryAdapter"),
    "http": ("core.services.http", "HttpAdapter"),
    "group": ("core.services.base", "ServiceAdapter"),
}
HTTP_ADAPTERS = frozenset({"blackberry", "http"})  # the adapters that call an HTTP API


def build_adapters(config: Config, *, transport: httpx.AsyncBaseTransport | None = None) -> dict[str, ServiceAdapter]:
    """One adapter per configured service, keyed by the service key.

    ``transport``, if given, carries every HTTP-backed adapter's calls instead of the
    network (the demo's in-process backend; an :class:`httpx.MockTransport` in tests).
    """
    adapters: dict[str, ServiceAdapter] = {}
    for key, entry in config.services.items():
        module, name = _ADAPTERS[entry.service.adapter]
        cls = getattr(import_module(module), name)
        extra: dict = {"transport": transport} if transport is not None and entry.service.adapter in HTTP_ADAPTERS else {}
        if entry.service.adapter == "blackberry":
            extra["tenants"] = config.tenants  # its UEM tenants come from the tenant map only
        adapters[key] = cls(entry.service, entry.options, config.layout, **extra)
    return adapters


async def close_adapters(adapters: dict[str, ServiceAdapter]) -> None:
    for adapter in adapters.values():
        await adapter.aclose()
