"""A WS-Management / PowerShell Remoting (PSRP) server, answering in process.

The real client (pypsrp) talks to it exactly as it talks to Exchange's ``/PowerShell``
virtual directory: a WS-Management *Create* of a shell whose resource URI names the
session configuration (``http://schemas.microsoft.com/powershell/Microsoft.Exchange``)
and carries the PSRP ``SessionCapability`` + ``InitRunspacePool`` fragments, *Receive*
of the pool's and each pipeline's output, *Command* (a ``CreatePipeline`` message),
*Signal* (terminate / Ctrl+C) and *Delete*. The PSRP side of the conversation
(fragments, messages, runspace pool and pipeline state machines, CLIXML) is psrpcore's
``ServerRunspacePool``; this module adds the WS-Management envelopes (MS-WSMV), which are
small.

:class:`PowerShellServer` answers one HTTP request (:meth:`PowerShellServer.answer`:
path, headers and body in, a :class:`Reply` out) and opens no socket. The demo carries
pypsrp's requests to it with :class:`InProcessAdapter`, a requests transport adapter
mounted on pypsrp's session (Basic authentication checked as IIS does, nothing on the
network, no certificate); the tests run it behind a real HTTPS listener
(``tests/psrp_server.py``, which adds Negotiate/Kerberos).

Commands run in :class:`Runspace` subclasses (the Exchange and Lync cmdlets live in
:mod:`core.demo.exchange` and :mod:`core.demo.lync`). Like Exchange's remote endpoint, a
runspace is in *no-language* mode: a pipeline that carries script text (``AddScript``)
is refused with PowerShell's own error, as is an unknown command or parameter.

Faults are injectable per cmdlet (:meth:`PowerShellServer.fail`):

``error``
    the cmdlet writes an error record (its message given) and changes nothing;
``timeout``
    the cmdlet never finishes: every *Receive* waits the request's OperationTimeout and
    answers WS-Management's ``TimedOut`` fault, until the client stops the pipeline;
``drop``
    the cmdlet runs (its change is made) and the connection is then closed without an
    answer, as when a load balancer or the network drops it.

:attr:`PowerShellServer.calls` logs every pipeline run: the command name, its parameters
as received (values after CLIXML), and whether it carried script text.

Not modelled: WS-Management message encryption (HTTPS carries the privacy), more than
one command per pipeline, pipeline input, the *Disconnect*/*Reconnect* of a shell.
"""


from __future__ import annotations

import base64
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from psrpcore import ServerPipeline, ServerRunspacePool, StreamType
from psrpcore._payload import PSRPPayload
from psrpcore.types import ErrorCategory, ErrorCategoryInfo, NETException, PSInvocationState

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsman": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "wst": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "pwsh": "http://schemas.microsoft.com/powershell",
}
SHELL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
COMMAND_DONE = f"{SHELL}/CommandState/Done"
COMMAND_RUNNING = f"{SHELL}/CommandState/Running"
SIGNAL_TERMINATE = f"{SHELL}/signal/terminate"
SIGNAL_CTRL_C = "powershell/signal/crtl_c"  # sic: the code PowerShell and pypsrp use
TIMED_OUT = 2150858793  # ERROR_WSMAN_OPERATION_TIMEDOUT
RESOURCE_NOT_FOUND = 2150858752  # ERROR_WSMAN_RESOURCE_NOT_FOUND
RECEIVE_WAIT_CAP = 5.0  # seconds a Receive waits at most, whatever the client asks

for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)


class CmdletError(Exception):
    """Raised by a cmdlet: becomes an error record (message, category, error id)."""

    def __init__(self, message: str, category: ErrorCategory = ErrorCategory.InvalidOperation, error_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.category = category
        self.error_id = error_id or category.name


@dataclass(frozen=True)
class Call:
    command: str
    parameters: dict[str, Any]
    script: bool = False


@dataclass
class _Failure:
    kind: str  # error | timeout | drop
    message: str
    times: int


Cmdlet = Callable[[dict[str, Any]], list[Any]]


class Runspace:
    """The commands a session configuration offers: ``cmdlets`` maps each name to a
    function of its named parameters (values as deserialized) returning its output."""

    configuration = "Microsoft.PowerShell"

    def cmdlets(self) -> dict[str, Cmdlet]:
        return {}


@dataclass
class _Pipeline:
    psrp: ServerPipeline
    done: bool = False
    hung: bool = False


@dataclass
class _Shell:
    pool: ServerRunspacePool
    resource_uri: str
    lock: threading.Condition = field(default_factory=threading.Condition)
    out: dict[uuid.UUID | None, bytearray] = field(default_factory=dict)
    pipelines: dict[uuid.UUID, _Pipeline] = field(default_factory=dict)

    def drain(self) -> None:
        """Route what the pool has to send into per-target buffers (pool or pipeline)."""
        while (payload := self.pool.data_to_send()) is not None:
            self.out.setdefault(payload.pipeline_id, bytearray()).extend(payload.data)
        self.lock.notify_all()

    def feed(self, data: bytes, pipeline_id: uuid.UUID | None = None) -> list[Any]:
        self.pool.receive_data(PSRPPayload(data, StreamType.default, pipeline_id))
        events = []
        while (event := self.pool.next_event()) is not None:
            events.append(event)
        return events


class _Fault(Exception):
    def __init__(self, code: int, subcode: str, reason: str, status: int = 500) -> None:
        super().__init__(reason)
        self.code, self.subcode, self.reason, self.status = code, subcode, reason, status


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, headers, body; ``drop`` closes the connection instead."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    drop: bool = False


class PowerShellServer:
    """The server: ``endpoints`` maps a URL path (``/PowerShell``) to its runspace; Basic
    authentication as ``username``/``password`` (see :meth:`authorized`)."""

    def __init__(self, endpoints: dict[str, Runspace], *, username: str = "", password: str = "",
                 base_url: str = "https://localhost") -> None:
        self.endpoints = {path.lower(): runspace for path, runspace in endpoints.items()}
        self.username, self.password = username, password
        self.base_url = base_url  # where the shells it creates are addressed
        self.calls: list[Call] = []
        self.requests = 0  # HTTP requests answered (the round trips)
        self.authorizations: list[str] = []  # every Authorization header seen (credential hygiene tests)
        self._failures: dict[str, _Failure] = {}
        self._shells: dict[str, _Shell] = {}
        self._basic = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    def received(self, authorization: str) -> None:
        """Count one request and keep its Authorization header."""
        self.requests += 1
        self.authorizations.append(authorization)

    def authorized(self, authorization: str) -> bool:
        """Whether ``authorization`` is the Basic credential the server expects."""
        return authorization == self._basic

    def answer(self, path: str, content_type: str, payload: bytes) -> Reply:
        """Answer one authenticated POST of a WS-Management envelope."""
        if not content_type.startswith("application/soap+xml"):
            return Reply(415)
        envelope = ET.fromstring(payload)
        action = _text(envelope.find("s:Header", NS), "wsa:Action")
        message_id = _text(envelope.find("s:Header", NS), "wsa:MessageID")
        try:
            body, drop = self.handle(path.split("?", 1)[0], envelope)
        except _Fault as fault:
            return Reply(fault.status, _envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", message_id, _fault_body(fault)))
        if drop:
            return Reply(0, drop=True)
        return Reply(200, _envelope(_response_action(action), message_id, body))

    # -- test controls -------------------------------------------------------------------

    def fail(self, command: str, kind: str = "error", message: str = "", times: int = 1) -> None:
        """The next ``times`` runs of ``command`` fail the ``kind`` way (see the module doc)."""
        if kind not in ("error", "timeout", "drop"):
            raise ValueError(kind)
        self._failures[command.lower()] = _Failure(kind, message or f"{command} failed (injected).", times)

    def reset(self) -> None:
        self.calls.clear()
        self._failures.clear()
        self.requests = 0
        self.authorizations.clear()

    def forget_shells(self) -> None:
        """Drop every session, as a server does with idle ones (Exchange after 15 minutes)."""
        self._shells.clear()

    def open_shells(self) -> int:
        return len(self._shells)

    def _take_failure(self, command: str) -> _Failure | None:
        failure = self._failures.get(command.lower())
        if failure is None:
            return None
        failure.times -= 1
        if failure.times <= 0:
            del self._failures[command.lower()]
        return failure

    # -- WS-Management actions -------------------------------------------------------------

    def handle(self, path: str, envelope: ET.Element) -> tuple[ET.Element | None, bool]:
        """Answer one envelope: (response body, drop the connection instead)."""
        header = envelope.find("s:Header", NS)
        body = envelope.find("s:Body", NS)
        action = _text(header, "wsa:Action")
        resource_uri = _text(header, "wsman:ResourceURI")
        runspace = self.endpoints.get(path.lower())
        if runspace is None or resource_uri != f"http://schemas.microsoft.com/powershell/{runspace.configuration}":
            raise _Fault(RESOURCE_NOT_FOUND, "w:DestinationUnreachable",
                         f"The WS-Management service cannot process the request. The resource URI ({resource_uri}) "
                         "was not found in the WS-Management catalog.")
        timeout = _seconds(_text(header, "wsman:OperationTimeout"))
        verb = action.rsplit("/", 1)[-1]
        if verb == "Create":
            return self._create(body, resource_uri), False
        shell_id = ""
        for selector in header.findall("wsman:SelectorSet/wsman:Selector", NS):
            if selector.get("Name") == "ShellId":
                shell_id = (selector.text or "").upper()
        shell = self._shells.get(shell_id)
        if shell is None:
            raise _Fault(2150858843, "w:InvalidSelectors", "The request for the Windows Remote Shell with ShellId "
                         f"{shell_id} failed because the shell was not found on the server.")
        if verb == "Receive":
            return self._receive(shell, body, timeout)
        if verb == "Command":
            return self._command(runspace, shell, body)
        if verb == "Send":
            return self._send(shell, body), False
        if verb == "Signal":
            return self._signal(shell, body), False
        if verb == "Delete":
            with shell.lock:
                shell.pool.begin_close()
                for pipe in list(shell.pipelines.values()):
                    if pipe.psrp.state == PSInvocationState.Running:
                        pipe.psrp.stop()
                    pipe.psrp.close()
                shell.pipelines.clear()
                shell.pool.close()
            self._shells.pop(shell_id, None)
            return None, False
        raise _Fault(2150858770, "w:ActionNotSupported", f"The action {action} is not supported by the service.")

    def _create(self, body: ET.Element, resource_uri: str) -> ET.Element:
        shell_xml = body.find("rsp:Shell", NS)
        creation = shell_xml.find("pwsh:creationXml", NS) if shell_xml is not None else None
        if creation is None or not creation.text:
            raise _Fault(2150858882, "w:InvalidParameter", "The creationXml of the PowerShell shell is missing.")
        shell_id = (shell_xml.get("ShellId") or str(uuid.uuid4())).upper()
        shell = _Shell(ServerRunspacePool(), resource_uri)
        with shell.lock:
            shell.feed(base64.b64decode(creation.text))
            shell.drain()
        self._shells[shell_id] = shell
        created = ET.Element(f"{{{NS['s']}}}Body")
        resource = ET.SubElement(created, f"{{{NS['wst']}}}ResourceCreated")
        ET.SubElement(resource, f"{{{NS['wsa']}}}Address").text = f"{self.base_url}/"
        params = ET.SubElement(resource, f"{{{NS['wsa']}}}ReferenceParameters")
        ET.SubElement(params, f"{{{NS['wsman']}}}ResourceURI").text = resource_uri
        selectors = ET.SubElement(params, f"{{{NS['wsman']}}}SelectorSet")
        ET.SubElement(selectors, f"{{{NS['wsman']}}}Selector", Name="ShellId").text = shell_id
        out = ET.SubElement(created, f"{{{NS['rsp']}}}Shell")
        ET.SubElement(out, f"{{{NS['rsp']}}}ShellId").text = shell_id
        ET.SubElement(out, f"{{{NS['rsp']}}}ResourceUri").text = resource_uri
        ET.SubElement(out, f"{{{NS['rsp']}}}Owner").text = self.username
        ET.SubElement(out, f"{{{NS['rsp']}}}InputStreams").text = "stdin pr"
        ET.SubElement(out, f"{{{NS['rsp']}}}OutputStreams").text = "stdout"
        return created

    def _command(self, runspace: Runspace, shell: _Shell, body: ET.Element) -> tuple[ET.Element, bool]:
        line = body.find("rsp:CommandLine", NS)
        command_id = (line.get("CommandId") or str(uuid.uuid4())).upper()
        pipeline_id = uuid.UUID(command_id)
        arguments = b"".join(base64.b64decode(a.text or "") for a in line.findall("rsp:Arguments", NS))
        drop = False
        with shell.lock:
            pipe = _Pipeline(ServerPipeline(shell.pool, pipeline_id))
            shell.pipelines[pipeline_id] = pipe
            shell.feed(arguments, pipeline_id)
            drop = self._run(runspace, pipe)
            shell.drain()
        answer = ET.Element(f"{{{NS['s']}}}Body")
        response = ET.SubElement(answer, f"{{{NS['rsp']}}}CommandResponse")
        ET.SubElement(response, f"{{{NS['rsp']}}}CommandId").text = command_id
        return answer, drop

    def _run(self, runspace: Runspace, pipe: _Pipeline) -> bool:
        """Run the pipeline's command; True when the connection must drop afterwards."""
        psrp = pipe.psrp
        psrp.start()
        commands = psrp.metadata.commands if psrp.metadata is not None else []
        drop = False
        try:
            if len(commands) != 1:
                raise CmdletError("The test server runs one command per pipeline.", ErrorCategory.NotImplemented)
            command = commands[0]
            if command.is_script:
                self.calls.append(Call(str(command.command_text), {}, script=True))
                raise CmdletError(
                    "The syntax is not supported by this runspace. This can occur if the runspace is in no-language mode.",
                    ErrorCategory.ParserError, "ScriptsNotAllowed")
            name = str(command.command_text)
            parameters: dict[str, Any] = {}
            for pname, value in command.parameters:
                if pname is None:
                    raise CmdletError(f"A positional parameter cannot be found that accepts argument '{value}'.",
                                      ErrorCategory.InvalidArgument, "PositionalParameterNotFound")
                parameters[str(pname)] = value
            self.calls.append(Call(name, dict(parameters)))
            cmdlets = {k.lower(): v for k, v in runspace.cmdlets().items()}
            cmdlet = cmdlets.get(name.lower())
            if cmdlet is None:
                raise CmdletError(
                    f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable "
                    "program. Check the spelling of the name, or if a path was included, verify that the path is "
                    "correct and try again.", ErrorCategory.ObjectNotFound, "CommandNotFoundException")
            failure = self._take_failure(name)
            if failure is not None and failure.kind == "timeout":
                pipe.hung = True
                return False
            if failure is not None and failure.kind == "error":
                raise CmdletError(failure.message)
            for value in cmdlet(parameters):
                psrp.write_output(value)
            drop = failure is not None and failure.kind == "drop"
        except CmdletError as exc:
            psrp.write_error(NETException(Message=exc.message),
                             ErrorCategoryInfo(Category=exc.category, Reason=exc.error_id),
                             fully_qualified_error_id=exc.error_id)
        except Exception as exc:  # noqa: BLE001 - as PowerShell does, a cmdlet's exception is an error record
            psrp.write_error(NETException(Message=f"{type(exc).__name__}: {exc}"),
                             ErrorCategoryInfo(Category=ErrorCategory.NotSpecified, Reason=type(exc).__name__),
                             fully_qualified_error_id=type(exc).__name__)
        psrp.complete()
        pipe.done = True
        return drop

    def _receive(self, shell: _Shell, body: ET.Element, timeout: float) -> tuple[ET.Element, bool]:
        stream = body.find("rsp:Receive/rsp:DesiredStream", NS)
        command_id = stream.get("CommandId") if stream is not None else None
        target = uuid.UUID(command_id) if command_id else None
        with shell.lock:
            pipe = shell.pipelines.get(target) if target else None
            if target is not None and pipe is None:
                raise _Fault(2150858843, "w:InvalidSelectors", f"The command {command_id} was not found in the shell.")
            if not shell.out.get(target):
                shell.lock.wait_for(lambda: bool(shell.out.get(target)), timeout=min(timeout, RECEIVE_WAIT_CAP))
            data = bytes(shell.out.pop(target, b""))
            if not data:
                raise _Fault(TIMED_OUT, "w:TimedOut", "The WS-Management service cannot complete the operation "
                             "within the time specified in OperationTimeout.")
            done = pipe is not None and pipe.done
        answer = ET.Element(f"{{{NS['s']}}}Body")
        response = ET.SubElement(answer, f"{{{NS['rsp']}}}ReceiveResponse")
        attrs = {"Name": "stdout"} | ({"CommandId": command_id} if command_id else {})
        ET.SubElement(response, f"{{{NS['rsp']}}}Stream", attrs).text = base64.b64encode(data).decode()
        if command_id:
            ET.SubElement(response, f"{{{NS['rsp']}}}CommandState", CommandId=command_id,
                          State=COMMAND_DONE if done else COMMAND_RUNNING)
        return answer, False

    def _send(self, shell: _Shell, body: ET.Element) -> ET.Element:
        stream = body.find("rsp:Send/rsp:Stream", NS)
        command_id = stream.get("CommandId")
        with shell.lock:
            shell.feed(base64.b64decode(stream.text or ""), uuid.UUID(command_id) if command_id else None)
            shell.drain()
        answer = ET.Element(f"{{{NS['s']}}}Body")
        ET.SubElement(answer, f"{{{NS['rsp']}}}SendResponse")
        return answer

    def _signal(self, shell: _Shell, body: ET.Element) -> ET.Element:
        signal = body.find("rsp:Signal", NS)
        code = _text(signal, "rsp:Code")
        target = uuid.UUID(signal.get("CommandId"))
        with shell.lock:
            pipe = shell.pipelines.get(target)
            if pipe is not None:
                if code == SIGNAL_CTRL_C and pipe.psrp.state == PSInvocationState.Running:
                    pipe.psrp.stop()  # a Stopped state message goes to the client
                    pipe.done = True
                elif code == SIGNAL_TERMINATE:
                    if pipe.psrp.state == PSInvocationState.Running:
                        pipe.psrp.stop()
                    pipe.psrp.close()
                    del shell.pipelines[target]
                    shell.out.pop(target, None)
            shell.drain()
        answer = ET.Element(f"{{{NS['s']}}}Body")
        ET.SubElement(answer, f"{{{NS['rsp']}}}SignalResponse")
        return answer


def _text(parent: ET.Element | None, path: str) -> str:
    node = parent.find(path, NS) if parent is not None else None
    return (node.text or "").strip() if node is not None else ""


def _seconds(value: str) -> float:
    """``PT20S`` / ``PT20.000S`` → 20.0 (what pypsrp and WinRM send)."""
    if value.startswith("PT") and value.endswith("S"):
        try:
            return float(value[2:-1])
        except ValueError:
            pass
    return 20.0


def _envelope(action: str, relates_to: str, body: ET.Element | None) -> bytes:
    envelope = ET.Element(f"{{{NS['s']}}}Envelope")
    header = ET.SubElement(envelope, f"{{{NS['s']}}}Header")
    ET.SubElement(header, f"{{{NS['wsa']}}}Action").text = action
    ET.SubElement(header, f"{{{NS['wsa']}}}MessageID").text = f"uuid:{str(uuid.uuid4()).upper()}"
    ET.SubElement(header, f"{{{NS['wsa']}}}To").text = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
    ET.SubElement(header, f"{{{NS['wsa']}}}RelatesTo").text = relates_to
    envelope.append(body if body is not None else ET.Element(f"{{{NS['s']}}}Body"))
    return ET.tostring(envelope, encoding="utf-8")


def _fault_body(fault: _Fault) -> ET.Element:
    body = ET.Element(f"{{{NS['s']}}}Body")
    node = ET.SubElement(body, f"{{{NS['s']}}}Fault")
    code = ET.SubElement(node, f"{{{NS['s']}}}Code")
    ET.SubElement(code, f"{{{NS['s']}}}Value").text = "s:Receiver"
    ET.SubElement(ET.SubElement(code, f"{{{NS['s']}}}Subcode"), f"{{{NS['s']}}}Value").text = fault.subcode
    ET.SubElement(ET.SubElement(node, f"{{{NS['s']}}}Reason"), f"{{{NS['s']}}}Text").text = fault.reason
    detail = ET.SubElement(ET.SubElement(node, f"{{{NS['s']}}}Detail"), f"{{{NS['f']}}}WSManFault",
                           Code=str(fault.code), Machine="tenantry-test")
    ET.SubElement(detail, f"{{{NS['f']}}}Message").text = fault.reason
    return body


def _response_action(action: str) -> str:
    return f"{action}Response"  # WS-Transfer and MS-WSMV alike


CONTENT_TYPE = "application/soap+xml;charset=UTF-8"


class InProcessAdapter(requests.adapters.BaseAdapter):
    """A requests transport adapter that hands every request to ``server`` in this
    process: mounted on pypsrp's session, it replaces the network (and TLS) only; the
    client's own envelopes, authentication header and error handling are unchanged. A
    ``drop`` fault is a :class:`requests.ConnectionError`, as a dropped socket is."""

    def __init__(self, server: PowerShellServer) -> None:
        super().__init__()
        self.server = server

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, verify: Any = True,
             cert: Any = None, proxies: Any = None) -> requests.Response:
        authorization = request.headers.get("Authorization") or ""
        self.server.received(authorization)
        body = request.body or b""
        if self.server.authorized(authorization):
            reply = self.server.answer(urlsplit(request.url).path, request.headers.get("Content-Type") or "",
                                       body.encode() if isinstance(body, str) else bytes(body))
        else:
            reply = Reply(401, headers={"WWW-Authenticate": 'Basic realm="WSMAN"'})
        if reply.drop:
            raise requests.ConnectionError("Connection aborted: the server closed the connection without an answer.",
                                           request=request)
        response = requests.Response()
        response.status_code = reply.status
        response.reason = {200: "OK", 401: "Unauthorized", 415: "Unsupported Media Type"}.get(reply.status, "Error")
        response.headers = requests.structures.CaseInsensitiveDict(
            {"Content-Type": CONTENT_TYPE, "Content-Length": str(len(reply.body)), **reply.headers})
        response._content = reply.body
        response.encoding = "utf-8"
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass
