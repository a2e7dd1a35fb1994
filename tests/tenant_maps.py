"""Tenant maps for adapter tests, read by the configuration's own reader."""

from __future__ import annotations

from typing import Any


class _Tenant:
    def __init__(self, key: str, services: dict[str, Any]):
        self.key, self.services = key, services

    def service(self, key: str):
        return self.services.get(key)


class _Map:
    def __init__(self, tenants):
        self._by_key = {t.key: t for t in tenants}

    def for_customer(self, customer):
        return self._by_key.get(customer.dn)

    def get(self, key):
        return self._by_key.get(key)


def tenant_map(entries: dict[str, dict[str, Any]]):
    return _Map(_Tenant(k, v) for k, v in entries.items())
