"""The PowerShell remoting server of :mod:`core.demo.powershell` behind a real HTTP(S)
listener on loopback, for the tests: pypsrp connects to it over TCP (and TLS with a
throwaway CA) as it connects to Exchange's ``/PowerShell`` virtual directory.

Basic authentication on every request — or, given a keytab, Negotiate / Kerberos as IIS
and http.sys do it (a ``401`` offering ``Negotiate``, the client's GSS token in
``Authorization``, the acceptor's answer in ``WWW-Authenticate``, the connection
authenticated from then on; the ticket is checked by the GSS-API acceptor against the
keytab exported from the Samba DC). ``drop`` faults close the socket without an answer.
"""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from core.demo.powershell import CmdletError, PowerShellServer, Reply, Runspace

__all__ = ["CmdletError", "PsrpServer", "Runspace"]


class PsrpServer(PowerShellServer):
    """:class:`PowerShellServer` listening on ``address`` (an ephemeral port)."""

    def __init__(self, endpoints: dict[str, Runspace], *, username: str = "", password: str = "",
                 certfile: str | None = None, keyfile: str | None = None, address: str = "127.0.0.1",
                 keytab: str | None = None) -> None:
        self.keytab = keytab  # Negotiate/Kerberos with this service keytab (else Basic)
        self.principals: list[str] = []  # the Kerberos clients authenticated, one per connection
        self.httpd = ThreadingHTTPServer((address, 0), _handler(self))
        self.httpd.daemon_threads = True
        if certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if certfile else "http"
        self.address = address
        self.port = self.httpd.server_address[1]
        super().__init__(endpoints, username=username, password=password, base_url=f"{self.scheme}://{address}:{self.port}")
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="psrp-server", daemon=True)

    def start(self) -> PsrpServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(server: PsrpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        client: str | None = None  # the Kerberos principal this connection authenticated as

        def _authenticated(self) -> bool:
            """Basic on every request; Negotiate once per connection (answers the 401s itself)."""
            header = self.headers.get("Authorization") or ""
            if server.keytab is None:
                if server.authorized(header):
                    return True
                self._reply(Reply(401, headers={"WWW-Authenticate": 'Basic realm="WSMAN"'}))
                return False
            if self.client is not None:
                return True
            scheme, _, token = header.partition(" ")
            if scheme.lower() not in ("negotiate", "kerberos") or not token:
                self._reply(Reply(401, headers={"WWW-Authenticate": "Negotiate"}))
                return False
            import gssapi  # the kerberos extra: only a Kerberos test needs it

            try:
                credentials = gssapi.Credentials(usage="accept", store={"keytab": server.keytab})
                context = gssapi.SecurityContext(creds=credentials, usage="accept")
                answer = context.step(base64.b64decode(token))
            except (gssapi.exceptions.GSSError, ValueError):
                self.close_connection = True
                self._reply(Reply(401, headers={"WWW-Authenticate": "Negotiate"}))
                return False
            if not context.complete:
                self._reply(Reply(401, headers={"WWW-Authenticate": f"{scheme} " + base64.b64encode(answer or b"").decode()}))
                return False
            self.client = str(context.initiator_name)
            server.principals.append(self.client)
            self._mutual = f"{scheme} " + base64.b64encode(answer).decode() if answer else None
            return True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

        def setup(self) -> None:
            super().setup()
            # headers and body go out in two writes: without this, Nagle's algorithm and the
            # client's delayed ACK add ~40 ms to every round trip (a real IIS does not)
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length)
            server.received(self.headers.get("Authorization") or "")
            if not self._authenticated():
                return
            reply = server.answer(self.path, self.headers.get("Content-Type") or "", payload)
            if reply.drop:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            mutual = getattr(self, "_mutual", None) if reply.status == 200 else None
            if mutual:  # the acceptor's last token, once
                self._mutual = None
                reply = Reply(reply.status, reply.body, {**reply.headers, "WWW-Authenticate": mutual})
            self._reply(reply)

        def _reply(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
            self.send_header("Content-Length", str(len(reply.body)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(reply.body)

    return Handler
