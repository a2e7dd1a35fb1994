"""The demo's service side: every HTTP-backed service answered in process.

In demo mode there is no BlackBerry UEM and no provisioning API to call. A
:class:`DemoServices` holds one :class:`~core.demo.provisioning.ProvisioningBackend`
seeded from the same data as the demo directory (:func:`core.demo.seed.build_seed`),
and builds the session's adapters with their HTTP calls carried to it by an
:class:`httpx.MockTransport`, so nothing leaves the process:

- every customer providing a ``blackberry``-adapter service is a UEM tenant, with
  the id the tenant map gives it (``tenant_guid``), holding a UEM user for each member of the customer's service group
  (username as ``username_from`` says, address, names and profile fields from the
  directory) and a UEM group per plan the customer offers (named as
  ``plan_groups`` says) with the users on that plan;
- every member of an ``http``-adapter service's group (e.g. Hosted CRM) has a
  record in the generic API (``upn``, ``customer`` = the customer code, ``email``),
  found at the default ``user_path`` ``/users/{upn}``.

The client options of those services (``url``, credentials, ``ca_file``, timeouts)
are replaced: the URL points at the backend (``https://services.demo.invalid``, a
name that never resolves), and no credentials are needed.

One backend per demo directory (``open_demo`` hands it to the Directory as
``services``), kept as long as the directory lives: every session opened on it sees
the services in the state earlier moves left them in, as it sees the directory.
:func:`demo_adapters` is what :meth:`core.session.Session.open` calls; it answers
``None`` for any directory but the embedded demo one.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any

from core.config import Config, ServiceConfig
from core.directory.escape import child_dn
from core.model import Customer
from core.services import HTTP_ADAPTERS, build_adapters

# core.session imports this module for every session: what only the demo needs
# (httpx, the adapters, the backend) is imported when a demo session opens.
if TYPE_CHECKING:
    import httpx

    from core.demo.seed import Seed, SeedEntry
    from core.directory import Directory
    from core.services.base import ServiceAdapter

__all__ = ["DEMO_SERVICES_URL", "DemoServices", "demo_adapters", "demo_services", "is_demo"]

DEMO_SERVICES_URL = "https://services.demo.invalid"  # never resolved: the transport answers

# UEM profile field ← directory attribute (besides username and emailAddress).
_PROFILE = (
    ("displayName", "displayName"),
    ("firstName", "givenName"),
    ("lastName", "sn"),
    ("company", "company"),
    ("title", "title"),
    ("department", "department"),
    ("officePhoneNumber", "telephoneNumber"),
    ("streetAddress", "streetAddress"),
    ("city", "l"),
    ("postalCode", "postalCode"),
    ("country", "co"),
)
_USERNAME_ATTRIBUTE = {"upn": "userPrincipalName", "sam": "sAMAccountName", "email": "mail"}


class DemoServices:
    """The in-process service backend of one demo directory, and adapters that use it."""

    def __init__(self, config: Config, seed: Seed):
        self._config, self._seed = config, seed

    @functools.cached_property
    def backend(self):
        """Built and seeded on first use: a session that never calls a service pays nothing."""
        from core.demo.provisioning import ProvisioningBackend

        backend = self.__dict__["backend"] = ProvisioningBackend()
        self._load(self._config, self._seed)
        return backend

    @functools.cached_property
    def transport(self):
        return self.backend.transport()

    def config(self, config: Config) -> Config:
        """``config`` with every HTTP-backed service pointed at the backend, without credentials."""
        from core.demo.provisioning import GENERIC_PREFIX
        from core.services.http_client import CLIENT_OPTIONS

        services = {}
        for key, entry in config.services.items():
            adapter = entry.service.adapter
            if adapter in HTTP_ADAPTERS:
                options = {k: v for k, v in entry.options.items() if k not in CLIENT_OPTIONS}
                options["url"] = DEMO_SERVICES_URL + (GENERIC_PREFIX if adapter == "http" else "")
                entry = ServiceConfig(entry.service, options)
            services[key] = entry
        return dataclasses.replace(config, services=services)

    def adapters(self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None) -> dict[str, ServiceAdapter]:
        """The adapters of ``config``'s services, HTTP calls going to the backend
        (or to ``transport``, e.g. a test's wrapper around :attr:`backend`)."""
        return build_adapters(self.config(config), transport=self.transport if transport is None else transport)

    # -- seeding -------------------------------------------------------------------------

    def _load(self, config: Config, seed: Seed) -> None:
        layout = config.layout
        http_services = [e for e in config.services.values() if e.service.adapter in HTTP_ADAPTERS]
        if not http_services:
            return
        groups = {e.dn: e for e in seed.groups()}
        users = {e.dn: e for e in seed.users()}
        for entry in seed.customers():
            services_dn = f"{layout.services_ou},{entry.dn}"
            tenant = config.tenants.for_customer(Customer(name=entry.first("ou") or "", dn=entry.dn))
            customer = Customer(name=entry.first("ou") or "", dn=entry.dn, code=tenant.code if tenant else None)
            for service in http_services:
                name = service.service.display_name
                group = groups.get(child_dn("CN", name, services_dn))
                if group is None:
                    continue  # the customer does not provide this service
                members = [users[dn] for dn in group.attributes.get("member", ()) if dn in users]
                if service.service.adapter == "http":
                    self._load_records(customer, members)
                    continue
                plans = {}
                for plan in service.service.plans:
                    plan_group = groups.get(child_dn("CN", layout.plan_group_format.format(service=name, plan=plan), services_dn))
                    if plan_group is not None:
                        plans[plan] = set(plan_group.attributes.get("member", ()))
                self._load_tenant(config, service, customer, members, plans)

    def _load_tenant(self, config: Config, service: ServiceConfig, customer: Customer, members: list[SeedEntry], plans: dict[str, set[str]]) -> None:
        from core.services.blackberry import BlackBerryAdapter

        adapter = BlackBerryAdapter(service.service, service.options, config.layout, tenants=config.tenants)  # no client is built
        tenant = adapter.tenant_for(customer)
        if tenant is None:
            return
        attribute = _USERNAME_ATTRIBUTE.get(service.options.get("username_from", "upn"), "userPrincipalName")
        uem_users, usernames = [], {}
        for user in members:
            username = user.first(attribute)
            if not username:
                continue
            record: dict[str, Any] = {"username": username}
            if user.first("mail"):
                record["emailAddress"] = user.first("mail")
            for field, source in _PROFILE:
                value = user.first(source)
                if value:
                    record[field] = value
            uem_users.append(record)
            usernames[user.dn] = username
        uem_groups = {
            adapter.group_for(plan): [usernames[dn] for dn in plan_members if dn in usernames] for plan, plan_members in plans.items()
        }
        self.backend.seed_tenant(tenant, users=uem_users, groups=uem_groups)

    def _load_records(self, customer: Customer, members: list[SeedEntry]) -> None:
        for user in members:
            upn = user.first("userPrincipalName")
            if upn:
                self.backend.seed_record(upn, customer=customer.code or customer.name, email=user.first("mail") or "")


# -- the demo directory's services ------------------------------------------------------

def demo_services(directory: Directory) -> DemoServices | None:
    """The service backend :func:`core.demo.directory.open_demo` gave ``directory``, else ``None``."""
    return directory.services if isinstance(directory.services, DemoServices) else None


def is_demo(directory: Directory) -> bool:
    return demo_services(directory) is not None


def demo_adapters(directory: Directory) -> dict[str, ServiceAdapter] | None:
    """Adapters for a session on the demo directory (HTTP calls answered in process);
    ``None`` for any other directory."""
    services = demo_services(directory)
    return None if services is None else services.adapters(directory.config)
