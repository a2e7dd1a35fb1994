"""Service adapters, chosen per service by configuration (``[services.<key>] adapter``)."""

from __future__ import annotations

from importlib import import_module

from core.config import Config
from core.services.base import ServiceAdapter

_ADAPTERS = {
    "exchange": ("core.services.directory_services", "ExchangeAdapter"),
    "ocs": ("core.services.directory_services", "OcsAdapter"),
    "blackberry": ("core.services.blackberry", "BlackBerryAdapter"),
    "http": ("core.services.http", "HttpAdapter"),
    "group": ("core.services.base", "ServiceAdapter"),
}


def build_adapters(config: Config) -> dict[str, ServiceAdapter]:
    """One adapter per configured service, keyed by the service key."""
    adapters: dict[str, ServiceAdapter] = {}
    for key, entry in config.services.items():
        module, name = _ADAPTERS[entry.service.adapter]
        cls = getattr(import_module(module), name)
        adapters[key] = cls(entry.service, entry.options, config.layout)
    return adapters


async def close_adapters(adapters: dict[str, ServiceAdapter]) -> None:
    for adapter in adapters.values():
        await adapter.aclose()
