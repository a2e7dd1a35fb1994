"""The local indexes' rows read in a child process (core/directory/row_stream.py), on the
Samba DC. The open customer's users: the first batch is a sorted VLV window that says
how many users follow, keys are handled while the child still reads ("loading n of N"
in the status line), the password reaches the child over a pipe only, the child dies
with the customer's screen and with the console, and its failures reach the screen as
one sentence. Every customer: the same reader, its password over the pipe only, a
refused bind or a reader killed mid-read (the DC frozen with SIGSTOP) one sentence,
keys filtering the customers while it reads. The tests wait on events, the app's
workers and process states, never on time."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import Input

from core.customer_index import CustomerIndex
from core.directory import ops
from core.directory.row_stream import SORT_REQUEST, VLV_REQUEST, sort_control, vlv_control, vlv_response
from core.errors import AuthenticationFailed, DirectoryError
from core.user_index import UserIndex
from console_keys import PATIENCE, SIZE, QuickApp, handled, settle, state, until  # noqa: F401
from index_console import column, count, held_after_the_first_page
from screens.customers import CustomersScreen, CustomerTable
from screens.users import UsersScreen, UserTable

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.dc]

MODULE = "core.directory.row_stream"
EVERYTHING = 10**6


def readers(parent: int | None = None) -> list[int]:
    """The pids of the user readers that ``parent`` (this process) started and that run."""
    parent = os.getpid() if parent is None else parent
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and fields[0] != "Z" and MODULE.encode() in cmdline:
            found.append(int(entry.name))
    return found


def gone(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


async def big_customer(directory):
    from core.demo.seed import build_seed

    return await directory.customer(build_seed().big_customer)


def names(app) -> list[str]:
    return column(app, UserTable, 1)


# --- the controls -------------------------------------------------------------------------

async def test_the_controls_are_encoded_as_their_rfcs_say():
    # RFC 2891 SortKeyList of one key; the VLV draft's request (byOffset [0]) and response
    assert sort_control("displayName") == (SORT_REQUEST, True, b"\x30\x0f\x30\x0d\x04\x0bdisplayName")
    oid, critical, value = vlv_control(201, 499, 0, b"ctx")
    assert (oid, critical) == (VLV_REQUEST, True)
    assert value == b"\x30\x15\x02\x01\x00\x02\x02\x01\xf3\xa0\x07\x02\x02\x00\xc9\x02\x01\x00\x04\x03ctx"
    assert vlv_response(b"\x30\x0e\x02\x01\x01\x02\x02\x27\x10\x0a\x01\x00\x04\x02ab") == (1, 10000, 0, b"ab")
    assert vlv_response(b"\x30\x09\x02\x01\x01\x02\x01\x00\x0a\x01\x35") == (1, 0, 53, None)


# --- the child process ------------------------------------------------------------------

async def test_the_first_batch_is_a_sorted_window_that_says_how_many_follow(dc_directory):
    root = await dc_directory.pool.run(lambda c: ops.read(c, "", ["supportedControl"]))
    assert {VLV_REQUEST, SORT_REQUEST} <= set(root.get("supportedControl"))  # Samba offers both
    customer = await big_customer(dc_directory)
    everyone = await dc_directory.users(customer)
    batches = []
    async with contextlib.aclosing(dc_directory.user_rows(customer)) as stream:
        async for batch in stream:
            batches.append(batch)
    first = batches[0]
    assert first.total == len(everyone) > 1500 and first.point is not None and 0 < len(first.rows) <= 200
    # the top of the DC's own sorted list (Samba's collation is not ours: a sort control alone says it)
    base = dc_directory.layout.users_dn(customer.dn)
    entries, _controls = await dc_directory.pool.run(lambda c: ops.search_with_controls(
        c, base, dc_directory.layout.user_filter(None), "one", ["displayName"], [sort_control("displayName")], "a sorted search"))
    assert [u.dn for u in first.rows] == [e.dn for e in entries][: len(first.rows)]
    assert sum(len(b.rows) for b in batches) == len(everyone)
    assert all(b.point is None for b in batches[1:])


async def test_the_password_reaches_the_child_over_a_pipe_only(dc_directory, sp_password):
    customer = await big_customer(dc_directory)
    with held_after_the_first_page(dc_directory) as (release, first_shown, _searches):
        index = UserIndex(customer, 50_000)
        load = asyncio.create_task(index.load(dc_directory, lambda: None))
        await asyncio.wait_for(first_shown.wait(), PATIENCE)
        (child,) = readers()
        seen = (Path("/proc") / str(child) / "cmdline").read_bytes() + (Path("/proc") / str(child) / "environ").read_bytes()
        assert sp_password.encode() not in seen
        assert b"TENANTRY_TEST_BIND_PASSWORD=" not in seen  # the configured password variable is not inherited
        release.set()
        await load
    assert index.complete and readers() == []


async def test_a_refused_bind_or_a_killed_reader_is_one_sentence(dc_directory):
    customer = await big_customer(dc_directory)
    credentials = dc_directory._credentials
    dc_directory._credentials = lambda: (credentials()[0], "not the password")
    try:
        with pytest.raises(AuthenticationFailed, match=r"^The domain controller at ldaps://\S+ refused the password for \S+\.$"):
            await UserIndex(customer, 50_000).load(dc_directory, lambda: None)
    finally:
        dc_directory._credentials = credentials
    assert readers() == []
    with held_after_the_first_page(dc_directory) as (release, first_shown, _searches):
        index = UserIndex(customer, 50_000)
        load = asyncio.create_task(index.load(dc_directory, lambda: None))
        await asyncio.wait_for(first_shown.wait(), PATIENCE)
        (child,) = readers()
        os.kill(child, signal.SIGKILL)
        release.set()
        with pytest.raises(DirectoryError, match=r"^Reading the users below .* stopped unexpectedly \(the reader exited with -9\)\.$"):
            await load
    assert not index.complete and readers() == []


async def test_the_reader_exits_when_the_console_dies(dc_config_file, sp_password, tmp_path):
    script = tmp_path / "console.py"
    script.write_text(
        "import asyncio, sys\n"
        "from core.config import load\n"
        "from core.directory import connect\n"
        "async def main():\n"
        "    directory = await connect(load(sys.argv[1]), sys.stdin.readline().strip())\n"
        "    customer = await directory.customer('Globex Corporation')\n"
        "    async for batch in directory.user_rows(customer):\n"
        "        print('first', flush=True)\n"
        "        await asyncio.Event().wait()  # held here until killed\n"
        "asyncio.run(main())\n"
    )
    console = subprocess.Popen([sys.executable, str(script), str(dc_config_file)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        console.stdin.write(sp_password + "\n")
        console.stdin.flush()
        assert console.stdout.readline().strip() == "first"
        (child,) = readers(console.pid)
        console.kill()  # no clean-up runs in the console
        console.wait()
        deadline = time.monotonic() + PATIENCE
        while not gone(child):  # bounded by PATIENCE only: the reader sees its stdin closed
            assert time.monotonic() < deadline, "the reader outlived the console"
            await asyncio.sleep(0.05)
    finally:
        console.kill()
        console.wait()


# --- the users screen ------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def reading(directory, config=None, *, released: bool = False):
    """The console with the big customer open and its reader held after the first
    window (unless ``released``): ``(app, pilot, release, server searches)``."""
    customer = await big_customer(directory)
    app = QuickApp(directory, config or directory.config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        with held_after_the_first_page(directory) as (release, first_shown, searches):
            if released:
                release.set()
            app.open_customer(customer)
            await asyncio.wait_for(first_shown.wait(), PATIENCE)
            await until(pilot, lambda: isinstance(app.screen, UsersScreen), "opened the customer")
            yield app, pilot, release, searches


async def test_keys_are_handled_while_the_child_reads_and_the_status_says_n_of_N(dc_directory):
    async with reading(dc_directory) as (app, pilot, release, searches):
        await until(pilot, lambda: app.screen.rows, "showed the first window")
        screen = app.screen
        index = screen.index
        assert index.loading and index.expected > 1500 and len(readers()) == 1
        assert count(app).endswith(f"· loading {len(index):,} of {index.expected:,}")
        assert names(app) == [u.display_name or u.cn for u in index.users][: len(names(app))]
        await pilot.press("slash")
        for key in "ma":
            await pilot.press(key)
        typed = screen.query_one("#search", Input).value
        assert typed == "ma"
        assert names(app) == [u.display_name or u.cn for u in index.search(typed, 200).rows]
        assert index.loading and len(readers()) == 1  # the keys did not wait for the reader
        release.set()
        await settle(pilot)
        assert index.complete and len(index) == index.expected and "loading" not in count(app)
        assert names(app) == [u.display_name or u.cn for u in index.search(typed, 200).rows]
        assert searches == []
    assert readers() == []


async def test_leaving_the_customer_ends_its_reader(dc_directory):
    async with reading(dc_directory) as (app, pilot, _release, _searches):
        (child,) = readers()
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, CustomersScreen), "went back to the customers")
        await until(pilot, lambda: gone(child), "ended the reader of the customer it left")
    assert readers() == []


async def test_a_customer_over_the_cap_stops_at_the_first_window(dc_directory):
    config = dataclasses.replace(dc_directory.config, console=dataclasses.replace(dc_directory.config.console, users_cap=100))
    async with reading(dc_directory, config, released=True) as (app, pilot, _release, searches):
        await settle(pilot)
        screen = app.screen
        assert screen.index.over_cap and len(screen.index) == 0 and readers() == []
        assert count(app).endswith("· over 100 users: searched on the DC")
        await pilot.press("slash", "m", "a")
        await settle(pilot)
        assert searches[-1] == "ma"
        found = await dc_directory.users(screen.customer, search="ma", limit=201)
        assert names(app) == [u.display_name or u.cn for u in found][:200]


# --- every customer ----------------------------------------------------------------------------

@contextlib.contextmanager
def patient_reader(directory):
    """The child binds and reads with timeouts that outwait a frozen DC (it is killed first)."""
    credentials = directory._credentials

    def patient():
        settings, password = credentials()
        return dataclasses.replace(settings, connect_timeout=PATIENCE, receive_timeout=PATIENCE), password

    directory._credentials = patient
    try:
        yield
    finally:
        directory._credentials = credentials


@contextlib.contextmanager
def frozen(dc):
    """The DC's samba process stopped (SIGSTOP): connections to it hang until it goes on."""
    os.kill(dc.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(dc.process.pid, signal.SIGCONT)


async def started_reader() -> int:
    deadline = time.monotonic() + PATIENCE  # bounds a hung test only: a reader starts at once
    while not (found := readers()):
        assert time.monotonic() < deadline, "no reader started"
        await asyncio.sleep(0.05)
    (child,) = found
    return child


async def test_the_customer_reader_gets_the_password_over_a_pipe_only_and_killed_is_one_sentence(dc_directory, sp_password, samba_dc_server):
    index = CustomerIndex()
    with patient_reader(dc_directory), frozen(samba_dc_server):
        load = asyncio.create_task(index.load(dc_directory))
        child = await started_reader()  # stuck binding to the frozen DC: mid-read
        seen = (Path("/proc") / str(child) / "cmdline").read_bytes() + (Path("/proc") / str(child) / "environ").read_bytes()
        assert sp_password.encode() not in seen
        assert b"TENANTRY_TEST_BIND_PASSWORD=" not in seen  # the configured password variable is not inherited
        os.kill(child, signal.SIGKILL)
        with pytest.raises(DirectoryError, match=r"^Reading the customers stopped unexpectedly \(the reader exited with -9\)\.$"):
            await load
    assert not index.complete and len(index) == 0 and readers() == []
    await index.load(dc_directory)  # the DC going on: a new reader reads them all
    everyone = await dc_directory.customers(limit=EVERYTHING, with_services=False)
    assert index.complete and {c.dn for c in index.customers} == {c.dn for c in everyone} and readers() == []


async def test_a_refused_bind_of_the_customer_reader_is_one_sentence(dc_directory):
    credentials = dc_directory._credentials
    dc_directory._credentials = lambda: (credentials()[0], "not the password")
    index = CustomerIndex()
    try:
        with pytest.raises(AuthenticationFailed, match=r"^The domain controller at ldaps://\S+ refused the password for \S+\.$"):
            await index.load(dc_directory)
    finally:
        dc_directory._credentials = credentials
    assert not index.complete and readers() == []


async def test_keys_filter_the_customers_while_their_reader_reads(dc_directory):
    app = QuickApp(dc_directory, dc_directory.config)  # no snapshot (a fresh state folder): read from the DC
    with held_after_the_first_page(dc_directory, "customer_rows", "customers") as (release, first_shown, searches):
        async with app.run_test(size=SIZE) as pilot:
            await asyncio.wait_for(first_shown.wait(), PATIENCE)
            index = app.index_keeper.index
            await until(pilot, lambda: len(index) and column(app, CustomerTable, 0), "showed the first customers")
            await handled(pilot)  # (not settle: the load is held, its worker runs)
            before = len(searches)  # (a search on the DC while nothing had arrived)
            await pilot.press("slash")
            for key in "glob":
                await pilot.press(key)
            assert column(app, CustomerTable, 0) == [c.name for c in index.search("glob", EVERYTHING).rows] == ["Globex Corporation"]
            assert not index.complete and searches[before:] == []  # filtered locally, the read still going
            release.set()
            await until(pilot, lambda: index.complete, "read every customer")
            await settle(pilot)
            assert column(app, CustomerTable, 0) == ["Globex Corporation"] and searches[before:] == []
    assert readers() == []
