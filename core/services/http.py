"""A generic HTTP provisioning API, for any service that keeps its own user records.

Configuration (``[services.<key>]``, besides the client options of
:mod:`core.services.http_client`):

``user_path``
    Where a user's record is read (default ``"/users/{upn}"``, relative to ``url``).
``move_method`` / ``move_path``
    The call that re-homes a user (default ``PUT /users/{upn}``).
``move_body``
    The JSON body of that call, a table of strings with placeholders (default
    ``{ customer = "{destination}", upn = "{new_upn}", email = "{new_email}" }``).
``undo_path``
    Where the user is after the move, for the undo call made with the same method
    (default: ``move_path`` with ``{upn}`` read as the new UPN, i.e. the record
    follows its UPN). The undo body has the same keys as ``move_body`` with the
    values the record had when it was inspected.

``create_method`` / ``create_path`` / ``create_body``
    The call that creates a record for a user copied from a template (default
    ``POST /users`` with the body of ``move_body``'s default).
``delete_path``
    Where a copied user's record is, for the ``DELETE`` that undoes the copy
    (default: ``user_path`` with ``{upn}``/``{sam}``/``{email}`` read as the new
    user's).

Placeholders: ``{upn}`` ``{sam}`` ``{email}`` (the user now; for a copy, the
template), ``{new_upn}`` ``{new_sam}`` ``{new_email}`` (after the move; the new user),
``{source}`` ``{destination}`` (the customers' codes from the tenant map; for a copy
both are the customer). In paths they are percent-encoded. A call read back from the
journal runs only if it still fits these templates for the job's customers
(:meth:`HttpAdapter.foreign_call`).

``inspect`` reads the record (a problem if there is none) and checks that the new
UPN is not already another record's. ``perform`` and ``undo`` are idempotent: when
the record is no longer at the path they write to, they check whether it already
holds the values they would write. A copy's create that finds the record there
already (409) counts as done only if the record holds the values it would write; its
undo deletes the record only if it still holds them (anyone else's is left alone).
"""

from __future__ import annotations

import re
import string
from typing import Any
from urllib.parse import quote, unquote

from core.errors import ConfigError
from core.model import Customer
from core.plan import COLLISION, HTTP, SERVICE_MISSING, Problem, Step
from core.services.base import CopyContext, MoveContext, ServiceCopy, ServiceMove
from core.services.http_client import ApiAdapter, ServiceError
from core.text import plain

DEFAULT_USER_PATH = "/users/{upn}"
DEFAULT_MOVE_BODY = {"customer": "{destination}", "upn": "{new_upn}", "email": "{new_email}"}
DEFAULT_CREATE_PATH = "/users"
CREATE_RECORD = "create_record"
DELETE_RECORD = "delete_record"
PLACEHOLDERS = frozenset({"upn", "sam", "email", "new_upn", "new_sam", "new_email", "source", "destination"})


def _code(customer: Customer) -> str:
    return customer.code or customer.name


_CUSTOMER_PLACEHOLDERS = frozenset({"source", "destination"})
_ADDRESS_PLACEHOLDERS = frozenset({"upn", "email", "new_upn", "new_email"})


def _placeholders_fit(template: str, value: str, customers, *, path: bool) -> bool:
    """Whether ``value`` is ``template`` filled in for ``customers``: each customer
    placeholder one of their codes, each UPN/address in one of their domains."""
    names: list[str] = []
    pattern = ""
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        pattern += re.escape(literal)
        if name is not None:
            names.append(name)
            pattern += "([^/]*)" if path else "(.*)"
    match = re.fullmatch(pattern, value, re.DOTALL)
    if match is None:
        return False
    codes = {_code(c) for c in customers}
    domains = {d.casefold() for c in customers for d in c.domains}
    for name, raw in zip(names, match.groups()):
        found = unquote(raw) if path else raw
        if name in _CUSTOMER_PLACEHOLDERS and found not in codes:
            return False
        if name in _ADDRESS_PLACEHOLDERS and found and found.rpartition("@")[2].casefold() not in domains:
            return False
    return True


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


class HttpAdapter(ApiAdapter):
    """Re-homes a user in a generic provisioning API with one call (see the module docstring)."""

    def __init__(self, service, options, layout, *, transport=None, environ=None):
        super().__init__(service, options, layout, transport=transport, environ=environ)
        where = f"services.{service.key}"
        self.user_path = self._template(where, "user_path", options.get("user_path", DEFAULT_USER_PATH), path=True)
        self.move_path = self._template(where, "move_path", options.get("move_path", self.user_path), path=True)
        self.undo_path = self._template(where, "undo_path", options.get("undo_path", self.move_path.replace("{upn}", "{new_upn}")), path=True)
        method = options.get("move_method", "PUT")
        if not isinstance(method, str) or method.upper() not in ("PUT", "POST", "PATCH"):
            raise ConfigError(f"{where}.move_method must be PUT, POST or PATCH, not {plain(repr(method))}.")
        self.move_method = method.upper()
        body = options.get("move_body", DEFAULT_MOVE_BODY)
        if not isinstance(body, dict) or not body:
            raise ConfigError(f"{where}.move_body must be a table of field = \"template\".")
        self.move_body = {str(k): self._template(where, f"move_body.{k}", v) for k, v in body.items()}
        create_method = options.get("create_method", "POST")
        if not isinstance(create_method, str) or create_method.upper() not in ("PUT", "POST"):
            raise ConfigError(f"{where}.create_method must be POST or PUT, not {plain(repr(create_method))}.")
        self.create_method = create_method.upper()
        self.create_path = self._template(where, "create_path", options.get("create_path", DEFAULT_CREATE_PATH), path=True)
        create_body = options.get("create_body", DEFAULT_MOVE_BODY)
        if not isinstance(create_body, dict) or not create_body:
            raise ConfigError(f"{where}.create_body must be a table of field = \"template\".")
        self.create_body = {str(k): self._template(where, f"create_body.{k}", v) for k, v in create_body.items()}
        new_user_path = self.user_path.replace("{upn}", "{new_upn}").replace("{sam}", "{new_sam}").replace("{email}", "{new_email}")
        self.delete_path = self._template(where, "delete_path", options.get("delete_path", new_user_path), path=True)

    @staticmethod
    def _template(where: str, name: str, value: Any, path: bool = False) -> str:
        if not isinstance(value, str) or (path and not value.startswith("/")):
            raise ConfigError(f"{where}.{name} must be {'a path starting with /' if path else 'a string'}, not {plain(repr(value))}.")
        try:
            unknown = _fields(value) - PLACEHOLDERS
        except ValueError:
            raise ConfigError(f"{where}.{name} has an unbalanced brace: {plain(value)!r}.") from None
        if unknown:
            raise ConfigError(f"{where}.{name} uses unknown placeholder {{{sorted(unknown)[0]}}} (known: {', '.join(sorted(PLACEHOLDERS))}).")
        return value

    # -- values -------------------------------------------------------------------------

    @staticmethod
    def _values(context: MoveContext) -> dict[str, str]:
        user = context.user
        return {
            "upn": user.upn or "",
            "sam": user.sam,
            "email": user.email or "",
            "new_upn": context.upn,
            "new_sam": context.sam,
            "new_email": context.email or "",
            "source": _code(context.source),
            "destination": _code(context.destination),
        }

    @staticmethod
    def _path(template: str, values: dict[str, str]) -> str:
        return template.format(**{k: quote(v, safe="@") for k, v in values.items()})

    async def _read(self, path: str) -> dict[str, Any] | None:
        response = await self.client.request("GET", path, allow=(404,))
        if response.status == 404:
            return None
        if not isinstance(response.body, dict):
            raise ServiceError(f"{self.service.display_name} sent a user record that is not a JSON object ({plain(path)}).", service=self.key)
        return response.body

    # -- preflight and plan ---------------------------------------------------------------

    async def inspect(self, context: MoveContext) -> tuple[dict[str, Any], list[Problem]]:
        name = self.service.display_name
        who = context.user.upn or context.user.sam
        values = self._values(context)
        record = await self._read(self._path(self.user_path, values))
        if record is None:
            return {}, [Problem(SERVICE_MISSING, f"{name} has no user {values['upn'] or values['sam']}.", who)]
        problems = []
        new_path = self._path(self.user_path, {**values, "upn": values["new_upn"], "sam": values["new_sam"], "email": values["new_email"]})
        if new_path != self._path(self.user_path, values) and await self._read(new_path) is not None:
            problems.append(Problem(COLLISION, f"{name} already has a user {values['new_upn']}.", who))
        return {"record": {k: record.get(k) for k in self.move_body}}, problems

    def plan_move(self, context: MoveContext) -> ServiceMove:
        who = context.user.upn or context.user.sam
        if "record" not in context.remote:
            return ServiceMove(problems=(Problem(SERVICE_MISSING, f"{self.service.display_name} was not inspected for {who}.", who),))
        values = self._values(context)
        after = {k: template.format(**values) for k, template in self.move_body.items()}
        before = dict(context.remote["record"])
        path, undo_path = self._path(self.move_path, values), self._path(self.undo_path, values)
        step = Step(
            user=who,
            action=HTTP,
            target=f"{self.key}: {self.move_method} {plain(path)}",
            before={k: plain(v) if isinstance(v, str) else v for k, v in before.items()},
            after=after,
            service=self.key,
            # "check": where the record is once this call has been made, to tell a
            # repeated call (after a crash) from a real failure.
            request={"method": self.move_method, "path": path, "json": after, "check": undo_path},
            undo_request={"method": self.move_method, "path": undo_path, "json": before, "check": path},
        )
        return ServiceMove(steps=(step,))

    # -- copy ----------------------------------------------------------------------------------

    @staticmethod
    def _copy_values(context: CopyContext) -> dict[str, str]:
        template, code = context.template, _code(context.customer)
        return {
            "upn": template.upn or "",
            "sam": template.sam,
            "email": template.email or "",
            "new_upn": context.upn,
            "new_sam": context.sam,
            "new_email": context.email or "",
            "source": code,
            "destination": code,
        }

    async def inspect_copy(self, context: CopyContext) -> tuple[dict[str, Any], list[Problem]]:
        values = self._copy_values(context)
        if await self._read(self._path(self.delete_path, values)) is not None:
            return {}, [Problem(COLLISION, f"{self.service.display_name} already has a user {values['new_upn']}.", context.upn)]
        return {}, []

    def plan_copy(self, context: CopyContext) -> ServiceCopy:
        values = self._copy_values(context)
        body = {k: template.format(**values) for k, template in self.create_body.items()}
        path, record = self._path(self.create_path, values), self._path(self.delete_path, values)
        step = Step(
            user=context.upn,
            action=HTTP,
            target=f"{self.key}: {self.create_method} {plain(path)}",
            before=None,
            after=body,
            service=self.key,
            request={"op": CREATE_RECORD, "method": self.create_method, "path": path, "json": body, "check": record},
            undo_request={"op": DELETE_RECORD, "method": "DELETE", "path": record, "json": body},
        )
        return ServiceCopy(steps=(step,))

    # -- the journal's calls, checked ----------------------------------------------------------

    def foreign_call(self, step: Step, customers) -> str | None:
        """A call (and its undo) must use this service's configured methods and paths, and
        every customer or identity placeholder in its path or body must be one of
        ``customers``' (their codes; UPNs and addresses in their domains, from the tenant map)."""
        paths = (self.move_path, self.undo_path, self.create_path, self.delete_path)
        methods = {self.move_method, self.create_method, "DELETE"}
        bodies = {**self.move_body, **self.create_body}
        for request in (step.request, step.undo_request):
            request = request or {}
            if request.get("method") not in methods:
                return f"uses the method {plain(str(request.get('method')))}, which this service is not configured with"
            for key in ("path", "check"):
                value = request.get(key)
                if value is None and key == "check":
                    continue
                if not isinstance(value, str) or not any(_placeholders_fit(t, value, customers, path=True) for t in paths):
                    return f"calls {plain(str(value))}, which is not a path of this service for a customer of this job"
            body = request.get("json") or {}
            if not isinstance(body, dict) or set(body) - set(bodies):
                return "sends a body this service is not configured with"
            for field, value in body.items():
                if isinstance(value, str) and value and not _placeholders_fit(bodies[field], value, customers, path=False):
                    return f"sends {plain(field)} = {plain(value)}, which is not a value of a customer of this job"
        return None

    # -- run ---------------------------------------------------------------------------------

    async def perform(self, step: Step) -> dict[str, Any] | None:
        return await self._run(step.request or {})

    async def undo(self, step: Step, result: dict[str, Any] | None) -> None:
        await self._run(step.undo_request or {})

    async def _run(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == CREATE_RECORD:
            return await self._create(request)
        if op == DELETE_RECORD:
            return await self._delete(request)
        return await self._call(request)

    def _holds(self, record: dict[str, Any] | None, body: dict[str, Any] | None) -> bool:
        return record is not None and all(str(record.get(k, "")).casefold() == str(v).casefold() for k, v in (body or {}).items())

    async def _create(self, request: dict[str, Any]) -> dict[str, Any]:
        """Create a copied user's record; one already there with the same values counts as done."""
        body = request.get("json")
        response = await self.client.request(request["method"], request["path"], json=body, idempotent=request["method"] == "PUT", allow=(409,))
        if response.status == 409:
            if not self._holds(await self._read(request["check"]), body):
                raise ServiceError(
                    f"{self.service.display_name} already has a record at {plain(request['check'])} that this job did not create.",
                    service=self.key, status=409,
                )
            return {"status": 200, "already": True}
        return {"status": response.status}

    async def _delete(self, request: dict[str, Any]) -> dict[str, Any]:
        """Delete a copied user's record, only if it still holds what the copy created."""
        path = request["path"]
        if not self._holds(await self._read(path), request.get("json")):
            return {"status": 404, "deleted": False}  # gone, or not ours: left alone
        response = await self.client.request("DELETE", path, idempotent=True, allow=(404,))
        return {"status": response.status, "deleted": response.status != 404}

    async def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        method, path, body = request["method"], request["path"], request.get("json")
        idempotent = method == "PUT"
        response = await self.client.request(method, path, json=body, idempotent=idempotent, allow=(404,))
        if response.status == 404:
            # Already done (a resumed job): the record is where the call puts it, with its values.
            check = request.get("check")
            record = await self._read(check) if check else None
            if record is None or any(record.get(k) != v for k, v in (body or {}).items()):
                raise ServiceError(f"{self.service.display_name} has no user at {plain(path)}.", service=self.key, status=404)
            return {"status": 200, "already": True}
        return {"status": response.status}
