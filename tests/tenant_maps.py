"""Tenant maps for adapter tests, read by the configuration's own reader (core.tenants)."""

from __future__ import annotations

from typing import Any

from core.tenants import TenantMap, parse_tenants


def tenant_map(entries: dict[str, dict[str, Any]]) -> TenantMap:
    """``{customer DN or GUID: {service key: settings}}`` → the TenantMap the config would hold."""
    services = {key: key for entry in entries.values() for key in entry}
    return parse_tenants(entries, "test", services)
