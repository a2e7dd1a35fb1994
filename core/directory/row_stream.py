"""The rows of a local index — every customer, the open customer's users — read in a
child process and handed over in batches.

Reading 5,000 customers or 10,000 users costs the console seconds of CPU (ldap3
decodes every entry in Python) and tens of megabytes of response objects: in a thread
of the console that CPU holds the GIL and keys wait, and the heap it leaves stays with
the console. So the read runs in a child process (``python -m
core.directory.row_stream``) that sends compact rows back in batches, each with its
search key already folded; the console only unpickles them between two keys.

- **The first window at once, sorted.** Where the DC lists the virtual list view
  control (VLV, ``2.16.840.1.113730.3.4.9``) and server-side sort
  (``1.2.840.113556.1.4.473``) in its rootDSE's ``supportedControl``, the users are
  read in VLV windows sorted by display name: the first window is the table's first
  rows, and the DC says how many users there are (``loading n of N``). Elsewhere (or
  when a window is refused) a simple-paged search does it, its first page small. The
  customers are one paged search of the customer OUs (their services from one search
  of the service groups first).
- **Where the DC stood.** The child reads the DC's identity and ``highestCommittedUSN``
  before the rows, so the console's refresh (:mod:`core.customer_index`,
  :mod:`core.user_index`) asks only for what changed after them, on the same DC.
- **Credentials.** The job — configuration and password — goes to the child over its
  stdin pipe, never in its arguments or environment (the configured password variable
  is removed from the environment it inherits).
- **Lifetime.** The console kills the child when the read is cancelled (the screen
  closed, the console quits); the child also exits by itself as soon as its stdin
  reaches end of file, which happens when the console dies in any way.

A directory that lives in the console's process (the demo) runs the same readers
(:func:`read_rows`) on a pooled connection instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import struct
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, BinaryIO, Iterator

from core import errors
from core.directory import ops
from core.directory.layout import Layout
from core.directory.pinned import ChangePoint
from core.directory.pool import ConnectionFactory
from core.errors import DirectoryError, TenantryError
from core.escape import dn_key
from core.local_search import search_key
from core.model import Customer, User

if TYPE_CHECKING:
    from core.config import Config

VLV_REQUEST = "2.16.840.1.113730.3.4.9"
VLV_RESPONSE = "2.16.840.1.113730.3.4.10"
SORT_REQUEST = "1.2.840.113556.1.4.473"
SORT_ATTRIBUTE = "displayName"
_HEADER = struct.Struct(">I")


USERS = "users"
CUSTOMERS = "customers"


@dataclass(frozen=True)
class RowBatch:
    """Rows as they arrive; the first batch also says where the DC stood and, when the
    DC told (VLV), how many rows the read will give in all."""

    rows: list[User] | list[Customer]
    keys: list[str] | None = None  # each row's folded search key (``LocalRows.key``), when computed already
    total: int | None = None
    point: ChangePoint | None = None


@dataclass(frozen=True)
class Job:
    """What the child needs: sent over its stdin, never on its command line."""

    config: Config
    password: str | None
    kind: str  # USERS | CUSTOMERS
    base: str  # the customer's users OU; the hosting OU for the customers
    first: int  # rows in the first batch
    page: int  # rows in each later batch

    @property
    def what(self) -> str:
        """What is read, as a sentence names it."""
        return f"the users below {self.base}" if self.kind == USERS else "the customers"


# -- BER, just enough for the two request controls and the VLV response ------------------

def _ber(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _integer(value: int, tag: int = 0x02) -> bytes:
    return _ber(tag, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def sort_control(attribute: str) -> tuple[str, bool, bytes]:
    """RFC 2891 ``SortKeyList`` of one key, ascending (critical: unsorted is no use)."""
    return SORT_REQUEST, True, _ber(0x30, _ber(0x30, _ber(0x04, attribute.encode())))


def vlv_control(offset: int, after: int, count: int, context: bytes | None) -> tuple[str, bool, bytes]:
    """A VLV request for the window of ``after + 1`` entries at ``offset`` (1-based)."""
    target = _ber(0xA0, _integer(offset) + _integer(count))  # byOffset [0]
    body = _integer(0) + _integer(after) + target + (_ber(0x04, context) if context else b"")
    return VLV_REQUEST, True, _ber(0x30, body)


def _elements(data: bytes) -> Iterator[tuple[int, bytes]]:
    i = 0
    while i < len(data):
        tag, first = data[i], data[i + 1]
        i += 2
        if first & 0x80:
            size = first & 0x7F
            length = int.from_bytes(data[i:i + size], "big")
            i += size
        else:
            length = first
        yield tag, data[i:i + length]
        i += length


def vlv_response(value: bytes) -> tuple[int, int, int, bytes | None]:
    """``(targetPosition, contentCount, result code, contextID)`` of a VLV response."""
    (tag, body), = _elements(value)
    if tag != 0x30:
        raise ValueError("not a VLV response")
    parts = list(_elements(body))
    numbers = [int.from_bytes(content, "big", signed=True) for _tag, content in parts[:3]]
    context = parts[3][1] if len(parts) > 3 and parts[3][0] == 0x04 else None
    return numbers[0], numbers[1], numbers[2], context


# -- the child ---------------------------------------------------------------------------------

def _send(out: BinaryIO, message: tuple) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_HEADER.pack(len(data)) + data)
    out.flush()


def _vlv_window(conn: Any, job: Job, attributes: list[str], offset: int, size: int, context: bytes | None):
    """The ``size`` users from ``offset`` (1-based) in display-name order, how many
    there are in all, and the DC's context for the next window."""
    doing = f"a sorted window of {job.what}"
    entries, controls = ops.search_with_controls(
        conn, job.base, Layout.user_filter(None), "one", attributes,
        [sort_control(SORT_ATTRIBUTE), vlv_control(offset, size - 1, 0, context)], doing,
    )
    raw = (controls.get(VLV_RESPONSE) or {}).get("value")
    if not isinstance(raw, bytes):
        raise DirectoryError(f"The domain controller answered {doing} without its VLV response.")
    _position, total, code, context = vlv_response(raw)
    if code != 0:
        raise DirectoryError(f"The domain controller refused {doing} (VLV result {code}).")
    return entries, total, context


def _where_the_dc_stands(conn: Any) -> tuple[ChangePoint | None, set[str]]:
    """The DC's change point (``None`` where it publishes none) and the controls it offers."""
    root = ops.read(conn, "", ["dsServiceName", "highestCommittedUSN", "supportedControl"])
    server = root.first("dsServiceName") if root else None
    usn = root.first("highestCommittedUSN") if root else None
    point = None
    if server and usn and usn.isdigit():
        settings = ops.read(conn, server, ["invocationId"])
        point = ChangePoint(server, (settings.first("invocationId") if settings else None) or "", int(usn))
    return point, set(root.get("supportedControl")) if root else set()


def _paged(conn: Any, job: Job, search_filter: str, scope: str, attributes: list[str]) -> Iterator[list[ops.Entry]]:
    """A paged search of ``job.base``, its first page ``job.first`` entries, then ``job.page``."""
    cookie: bytes | None = None
    size = job.first
    while True:
        entries, cookie = ops.search_page(conn, job.base, search_filter, scope, attributes, size, cookie)
        yield entries
        if not cookie:
            return
        size = job.page


def read_users(job: Job, conn: Any) -> Iterator[RowBatch]:
    """Every user of ``job.base``, a batch at a time (the first says where the DC stood)."""
    layout = Layout(job.config)
    attributes = [*layout.user_list_attributes, "objectGUID"]
    point, offered = _where_the_dc_stands(conn)

    def batch(entries: list[ops.Entry], total: int | None = None) -> RowBatch:
        rows = [layout.user_row(entry) for entry in entries]
        return RowBatch(rows, [search_key(Layout.user_searched(row)) for row in rows], total, point if first else None)

    first = True
    sent = 0
    if {VLV_REQUEST, SORT_REQUEST} <= offered:
        context, total, size = None, None, job.first
        try:
            while total is None or sent < total:
                entries, total, context = _vlv_window(conn, job, attributes, sent + 1, size, context)
                if not entries:
                    break
                yield batch(entries, total)
                first, sent, size = False, sent + len(entries), job.page
        except DirectoryError:
            if sent:
                raise  # a window refused halfway: the console says so and keeps what it has
        else:
            if sent or total == 0:
                return
    for entries in _paged(conn, job, Layout.user_filter(None), "one", attributes):
        yield batch(entries)
        first = False


def read_customers(job: Job, conn: Any) -> Iterator[RowBatch]:
    """Every customer below ``job.base`` with its services, a batch at a time (the
    first says where the DC stood)."""
    layout = Layout(job.config)
    point, _offered = _where_the_dc_stands(conn)
    groups = [entry.dn for page in _paged(conn, job, layout.service_groups_filter(), "sub", ["1.1"]) for entry in page]
    services = layout.groups_by_customer(groups)
    for entries in _paged(conn, job, layout.marked(layout.names.customer_marker), "sub", layout.customer_attributes):
        rows = [layout.customer_from(entry, services.get(dn_key(entry.dn), ())) for entry in entries]
        yield RowBatch(rows, [search_key(Layout.customer_searched(row)) for row in rows], None, point)
        point = None


def read_rows(job: Job, conn: Any) -> Iterator[RowBatch]:
    """The rows ``job`` asks for, read on ``conn`` (in the child, or in this process)."""
    return (read_users if job.kind == USERS else read_customers)(job, conn)


def _read_into(job: Job, out: BinaryIO) -> None:
    conn = ConnectionFactory(job.config.directory, job.password).open()
    try:
        for batch in read_rows(job, conn):
            _send(out, ("rows", batch))
        _send(out, ("done",))
    finally:
        conn.unbind()


def _exit_with_the_console() -> None:
    """End this process as soon as stdin reaches end of file: the console is gone."""
    sys.stdin.buffer.read()
    os._exit(0)


def child_main() -> None:
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the pipe
    stdin = sys.stdin.buffer
    (size,) = _HEADER.unpack(stdin.read(_HEADER.size))
    job: Job = pickle.loads(stdin.read(size))
    threading.Thread(target=_exit_with_the_console, daemon=True).start()
    try:
        _read_into(job, out)
    except TenantryError as error:
        _send(out, ("error", type(error).__name__, str(error)))
    except BrokenPipeError:
        os._exit(0)
    except Exception as error:  # noqa: BLE001 -- one sentence to the console, never a traceback
        _send(out, ("error", "DirectoryError", f"Reading {job.what} failed unexpectedly ({type(error).__name__})."))


# -- the console's side ------------------------------------------------------------------------

def _error(name: str, sentence: str) -> TenantryError:
    kind = getattr(errors, name, None)
    if not (isinstance(kind, type) and issubclass(kind, TenantryError)):
        kind = DirectoryError
    return kind(sentence)


def child_environment(config: Config) -> dict[str, str]:
    """The console's environment without the variables that hold passwords."""
    secret = {config.directory.password_env, config.directory.operator_password_env}
    return {k: v for k, v in os.environ.items() if k not in secret}


async def stream_rows(job: Job) -> AsyncIterator[RowBatch]:
    """The rows ``job`` asks for, from a child process, a batch at a time. Closing the
    iterator (or cancelling its reader) kills the child."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.directory.row_stream",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        env=child_environment(job.config),
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        process.stdin.write(_HEADER.pack(len(data)) + data)  # stdin stays open: its end ends the child
        await process.stdin.drain()
        while True:
            try:
                (size,) = _HEADER.unpack(await process.stdout.readexactly(_HEADER.size))
                message = pickle.loads(await process.stdout.readexactly(size))
            except asyncio.IncompleteReadError:
                code = await process.wait()
                raise DirectoryError(f"Reading {job.what} stopped unexpectedly (the reader exited with {code}).") from None
            if message[0] == "rows":
                yield message[1]
            elif message[0] == "error":
                raise _error(message[1], message[2])
            else:
                return
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        process.stdin.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(process.wait())


if __name__ == "__main__":
    # By its importable name: the batches it pickles are core.directory.row_stream's, not __main__'s.
    from core.directory.row_stream import child_main as main

    main()
