"""The demo's service side: every HTTP-backed service answered in process.

In demo mode there is no BlackBerry UEM and no provisioning API to call. A
:class:`DemoServices` holds one :class:`~core.demo.provisioning.ProvisioningBackend`
seeded from the same data as the demo directory (:func:`core.demo.seed.build_seed`),
and builds the session's adapters with their HTTP calls carried to it by an
:class:`httpx.MockTransport`, so nothing leaves the process:

- every customer with a ``blackberry``-adapter service and a UEM tenant in the tenant
  map has its own UEM (:class:`core.demo.uem.UemInstallation`, the same model the
  tests run one process of per tenant), at ``https://uem<n>.demo.invalid`` with the
  ``tenant_guid`` of the map, logged in to with the LOCAL provider as ``tenantry``
  (the password is the demo's own, given to the adapters in memory). It holds a
  directory-linked UEM user for each member of the customer's service group
  (username as ``username_from`` says, address, names and profile fields from the
  directory) and a UEM group per plan the customer offers (named as ``plan_groups``
  says) with the users on that plan. All of them share one company directory, as UEMs
  connected to one AD do;
- every member of an ``http``-adapter service's group (e.g. Hosted CRM) has a
  record in the generic API (``upn``, ``customer`` = the customer code, ``email``),
  found at the default ``user_path`` ``/users/{upn}``.

The client options of those services (``url``, credentials, ``ca_file``, timeouts)
are replaced: the URLs point at the in-process servers (``*.demo.invalid``, names that
never resolve); the generic API needs no credentials.

Hosted Exchange and Lync (the ``exchange_powershell`` and ``lync_powershell`` adapters
of :func:`core.demo.directory.demo_config`) run their cmdlets through pypsrp, the real
PowerShell remoting client, against :class:`core.demo.powershell.PowerShellServer` with
the Exchange and Lync sessions (:mod:`core.demo.exchange`, :mod:`core.demo.lync`)
executing them on the demo directory itself (an sp-admin connection to the same
in-process server), whose organisation, pool and stamped users
:mod:`core.demo.platform` loaded. pypsrp's requests are handed to the server by a
requests transport adapter mounted on its session: nothing listens on a port, no
certificate is made. Their endpoints are ``https://exchange.demo.invalid/PowerShell``
and ``https://lync.demo.invalid/OcsPowershell``, Basic as ``tenantry`` with the demo's
in-memory password. Nothing of it (psrpcore, pypsrp, requests, the server) is imported
or started until the first cmdlet runs — a plan that involves Exchange or Lync.

One backend per demo directory (``open_demo`` hands it to the Directory as
``services``), kept as long as the directory lives: every session opened on it sees
the services in the state earlier moves left them in, as it sees the directory.
:func:`demo_adapters` is what :meth:`core.session.Session.open` calls; it answers
``None`` for any directory but the embedded demo one.
"""

from __future__ import annotations

import dataclasses
import functools
import secrets
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from core.config import Config, ServiceConfig
from core.escape import child_dn
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
DEMO_UEM_ADMIN = "tenantry"
DEMO_UEM_PASSWORD_ENV = "TENANTRY_DEMO_UEM_PASSWORD"  # set only in the environ handed to the demo's adapters
DEMO_POWERSHELL = {"exchange_powershell": "https://exchange.demo.invalid/PowerShell",
                   "lync_powershell": "https://lync.demo.invalid/OcsPowershell"}  # never resolved: the transport answers

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
_USERNAME_ATTRIBUTE = {"upn": "userPrincipalName", "sam": "sAMAccountName"}


class DemoServices:
    """The in-process service backend of one demo directory, and adapters that use it."""

    def __init__(self, config: Config, seed: Seed, connect: Callable[[], Any]):
        self._config, self._seed = config, seed
        self.connect = connect  # an operator's connection to the demo directory (the cmdlets' own)
        self._powershell = None
        self._powershell_lock = threading.Lock()
        self._password = secrets.token_urlsafe(16)  # the demo UEMs' and PowerShell endpoints' admin password, in memory only
        self.uems: dict[str, Any] = {}  # URL → UemInstallation, one per customer tenant
        self._directory: dict[str, dict[str, Any]] = {}  # the company directory every demo UEM shares

    @functools.cached_property
    def backend(self):
        """Built and seeded on first use: a session that never calls a service pays nothing."""
        from core.demo.provisioning import ProvisioningBackend

        backend = self.__dict__["backend"] = ProvisioningBackend()
        self._load(self._config, self._seed)
        return backend

    @functools.cached_property
    def transport(self):
        import httpx

        return httpx.MockTransport(self.answer)

    @property
    def powershell(self):
        """The demo's PowerShell remoting server (:class:`core.demo.powershell.PowerShellServer`),
        started on the first cmdlet (once, whichever endpoint's thread asks first)."""
        with self._powershell_lock:
            if self._powershell is None:
                self._powershell = self._start_powershell()
            return self._powershell

    def _start_powershell(self):
        """The server, the Exchange organisation and the Lync deployment
        :mod:`core.demo.platform` loaded, each tenant's address book and policy served."""
        from core.demo.exchange import ExchangeOrganization, ExchangeRunspace
        from core.demo.lync import LyncDeployment, LyncRunspace
        from core.demo.platform import CONFERENCING_POLICY, AddressBook, tenant_codes
        from core.demo.powershell import PowerShellServer

        conn = self.connect()
        org = ExchangeOrganization(conn, self._seed.base_dn, server_name="demo.example.net")
        codes = tenant_codes(self._seed)
        for code in codes:
            org.register(AddressBook.of(code))
        lync = LyncDeployment(conn, self._seed.base_dn, server_name="demo.example.net", lock=org.lock,
                              policies={"ConferencingPolicy": {CONFERENCING_POLICY.format(code=code) for code in codes}})
        endpoints = {urlsplit(url).path: runspace for url, runspace in
                     zip(DEMO_POWERSHELL.values(), (ExchangeRunspace(org), LyncRunspace(lync)))}
        return PowerShellServer(endpoints, username=DEMO_UEM_ADMIN, password=self._password, base_url="https://exchange.demo.invalid")

    @functools.cached_property
    def powershell_transport(self) -> _PowerShellTransport:
        return _PowerShellTransport(self)

    def uem(self, tenant_guid: str):
        """The demo UEM of the tenant ``tenant_guid`` (seeded on first use), else ``None``."""
        self.backend  # noqa: B018 — seeded on first use
        return next((u for u in self.uems.values() if u.srp_id == tenant_guid), None)

    def snapshot(self) -> dict[str, Any]:
        """The generic records and every demo UEM's users and groups (see ``UemInstallation.snapshot``)."""
        return {"records": self.backend.snapshot()["records"], "uems": {url: u.snapshot() for url, u in self.uems.items()}}

    def answer(self, request: httpx.Request) -> httpx.Response:
        """A request to a demo UEM goes to its installation, any other to the generic API."""
        import httpx

        from core.demo.uem import UemRequest

        self.backend  # noqa: B018 — seeded on first use
        origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        uem = self.uems.get(origin)
        if uem is None:
            return self.backend(request)
        reply = uem.handle(
            UemRequest(request.method, request.url.raw_path.decode("ascii"), {k.lower(): v for k, v in request.headers.items()}, request.content),
            base_url=origin,
        )
        headers = {**reply.headers, **({"Content-Type": reply.content_type} if reply.content_type else {})}
        return httpx.Response(reply.status, headers=headers, content=reply.content)

    def config(self, config: Config) -> Config:
        """``config`` with every HTTP-backed service pointed at the in-process servers: the
        generic API at the backend, each customer's UEM tenant at its demo UEM."""
        from core.demo.provisioning import GENERIC_PREFIX
        from core.services.http_client import CLIENT_OPTIONS
        from core.tenants import TenantMap

        from core.services.powershell import ENDPOINT_OPTIONS

        services, uem_keys = {}, set()
        for key, entry in config.services.items():
            adapter = entry.service.adapter
            if adapter in DEMO_POWERSHELL:
                options = {k: v for k, v in entry.options.items() if k not in ENDPOINT_OPTIONS - {"configuration_name"}}
                options.update(url=DEMO_POWERSHELL[adapter], username=DEMO_UEM_ADMIN, password_env=DEMO_UEM_PASSWORD_ENV)
                entry = ServiceConfig(entry.service, options)
            elif adapter in HTTP_ADAPTERS:
                options = {k: v for k, v in entry.options.items() if k not in CLIENT_OPTIONS}
                if adapter == "http":
                    options["url"] = DEMO_SERVICES_URL + GENERIC_PREFIX
                else:
                    uem_keys.add(key)
                entry = ServiceConfig(entry.service, options)
            services[key] = entry
        tenants = []
        for number, tenant in enumerate(config.tenants, 1):
            own = {k: self._demo_uem(number, table) for k, table in tenant.services.items() if k in uem_keys}
            tenants.append(dataclasses.replace(tenant, services={**tenant.services, **own}))
        return dataclasses.replace(config, services=services, tenants=TenantMap(tenants))

    @staticmethod
    def _demo_uem(number: int, table: Any) -> dict[str, str]:
        return {"url": f"https://uem{number}.demo.invalid", "tenant_guid": table.get("tenant_guid", ""),
                "username": DEMO_UEM_ADMIN, "password_env": DEMO_UEM_PASSWORD_ENV}

    def adapters(self, config: Config, *, transport: httpx.AsyncBaseTransport | None = None) -> dict[str, ServiceAdapter]:
        """The adapters of ``config``'s services, HTTP calls going to the in-process servers
        (or to ``transport``, e.g. a test's wrapper around :attr:`transport`)."""
        return build_adapters(
            self.config(config), transport=self.transport if transport is None else transport,
            environ={DEMO_UEM_PASSWORD_ENV: self._password}, powershell=self.powershell_transport,
        )

    # -- seeding -------------------------------------------------------------------------

    def _load(self, config: Config, seed: Seed) -> None:
        layout = config.layout
        http_services = [e for e in config.services.values() if e.service.adapter in HTTP_ADAPTERS]
        if not http_services:
            return
        groups = {e.dn: e for e in seed.groups()}
        users = {e.dn: e for e in seed.users()}
        demo = self.config(config)
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
                self._load_tenant(demo, service, customer, members, plans)

    def _load_tenant(self, demo: Config, service: ServiceConfig, customer: Customer, members: list[SeedEntry], plans: dict[str, set[str]]) -> None:
        from core.demo.uem import UemInstallation
        from core.services.blackberry import BlackBerryAdapter

        options = demo.services[service.service.key].options
        adapter = BlackBerryAdapter(service.service, options, demo.layout, tenants=demo.tenants)  # no client is built
        key = adapter.tenant_of(customer)
        if key is None:
            return
        table = demo.tenants.get(key).service(service.service.key)
        uem = self.uems.setdefault(table["url"], UemInstallation(table["tenant_guid"], directory=self._directory))
        uem.add_admin(DEMO_UEM_ADMIN, self._password)
        attribute = _USERNAME_ATTRIBUTE.get(options.get("username_from", "upn"), "userPrincipalName")
        groups = {dn: [adapter.group_for(plan) for plan, plan_members in plans.items() if dn in plan_members] for dn in (u.dn for u in members)}
        for plan in plans:
            uem.add_group(adapter.group_for(plan))
        for user in members:
            username = user.first(attribute)
            if not username:
                continue
            record: dict[str, Any] = {"username": username, "directoryId": f"AD:{uuid.uuid5(uuid.NAMESPACE_URL, user.dn)}"}
            if user.first("mail"):
                record["emailAddress"] = user.first("mail")
            for field, source in _PROFILE:
                value = user.first(source)
                if value:
                    record[field] = value
            uem.add_directory_user(record["directoryId"], username=username)
            uem.add_user(record, groups=tuple(groups[user.dn]))

    def _load_records(self, customer: Customer, members: list[SeedEntry]) -> None:
        for user in members:
            upn = user.first("userPrincipalName")
            if upn:
                self.backend.seed_record(upn, customer=customer.code or customer.name, email=user.first("mail") or "")


class _PowerShellTransport:
    """A requests transport adapter (what requests' ``Session.mount`` takes: ``send`` and
    ``close``) handing pypsrp's requests to the demo's PowerShell server, which it starts
    on the first one (:attr:`DemoServices.powershell`)."""

    def __init__(self, services: DemoServices) -> None:
        self._services = services

    def send(self, request: Any, **kwargs: Any) -> Any:
        from core.demo.powershell import InProcessAdapter

        return InProcessAdapter(self._services.powershell).send(request, **kwargs)

    def close(self) -> None:
        pass


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
