"""Console tests of the audit screen, driven with keys only at 80×24: newest first,
searched as you type, a page at a time, one entry in full (enter), and hostile names shown
literally."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable, Input, Static

from core import audit as audit_module
from core.audit import Audit
from core.execute import audit_refusal
from core.move import MoveRequest
from core.session import Session
from core.text import plain
from screens.audit import PAGE, AuditScreen
from screens.audit_entry import AuditEntryScreen
from screens.customers import CustomersScreen
from console_keys import SIZE, Keys, QuickApp, demo, in_utc, settle, shown, snapshot_of, state  # noqa: F401

CLICK, SLASH, ESCAPES = "[@click=app.quit]x[/]", "[/foo] Holdings", "\x1b[31mRed Alert\x1b[0m Ltd"


def record(audit: Audit, n: int, **fields) -> None:
    entry = {"operator": "Service Provider Admin", "bound_as": "sp-admin@example.net", "action": "move",
             "users": [f"user{n}@fabrikam.example"], "customers": ["Fabrikam", "Woodgrove Bank"], "result": "done",
             "job": f"20250310-0900{n % 100:02d}-{n:04x}", "detail": ""}
    audit.record(**{**entry, **fields})


def table(app) -> DataTable:
    return app.screen.query_one("#audit", DataTable)


async def test_search_finds_an_entry_and_hostile_names_render_literally(demo, state):
    with Audit(state / "audit.sqlite3") as audit:
        for n in range(5):
            record(audit, n)
        record(audit, 5, users=[f"{CLICK}@fabrikam.example"], customers=[SLASH, ESCAPES], result="denied",
               operator="\x1b[2JMallory [bold]Op[/bold]", detail=f"{CLICK} is not yours\n\x1b]0;pwned\x07[/foo]")
        record(audit, 6, users=["ana.hall@fabrikam.example"], result="rolled_back", detail="The DC refused the change.")
    # and a real refusal, recorded by the core, of a move between two hostile customers
    session = await Session.open(demo, state=state)
    source = await demo.customer(CLICK)
    user = next(u for u in await demo.users(source) if "ocs" in u.services)  # the destination has no OCS
    plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, SLASH))
    assert not plan.ok
    audit_refusal(session.audit, session.operator, plan)
    session.journal.close()
    session.audit.close()

    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await keys("A")
        assert isinstance(app.screen, AuditScreen)
        assert table(app).row_count == 8 and "8 entries" in shown(app)
        first = app.screen.highlighted
        assert first.result == "refused" and list(first.customers) == [CLICK, SLASH]  # newest first
        assert f"{CLICK} → {SLASH}" in shown(app) and "has no Office Communications Server" in shown(app)

        await keys("slash")
        await keys.type("mallory")
        assert app.screen.query_text == "mallory" and table(app).row_count == 1
        hostile = app.screen.highlighted
        assert hostile.job == f"20250310-090005-{5:04x}"
        for column, expected in (("operator", hostile.operator), ("users", hostile.users[0]),
                                 ("customers", f"{SLASH} → {ESCAPES}")):
            value = table(app).get_cell(str(hostile.id), column)
            assert isinstance(value, Text) and value.plain == plain(expected) and not value.spans, column
        text = shown(app)
        assert "\x1b" not in text and "\x07" not in text
        assert f"{CLICK} is not yours" in text  # the highlighted entry in full, literally
        assert "Mallory [bold]Op[/bold]" in text and "[/foo]" in text
        await pilot.click(DataTable, offset=(40, 1))  # on the hostile row: nothing to trigger
        await settle(pilot)
        assert app.is_running

        await keys("slash", "ctrl+u")
        await keys.type("ROLLED_BACK")  # any column, case-insensitively
        assert [e.users for e in app.screen.entries.values()] == [("ana.hall@fabrikam.example",)]
        await keys("ctrl+u")
        await keys.type("nothing like this")
        assert table(app).row_count == 0 and "no entry mentions “nothing like this”" in shown(app)
        await keys("escape")  # one esc clears the search and leaves the box
        assert not app.screen.query_one("#search", Input).has_focus
        assert app.screen.query_one("#search", Input).value == "" and table(app).row_count == 8
        await keys("escape")  # then what esc did before: back
        assert isinstance(app.screen, CustomersScreen)


async def test_the_log_is_read_a_page_at_a_time(demo, state):
    total = 2 * PAGE + 50
    with Audit(state / "audit.sqlite3") as audit:
        for n in range(total):
            record(audit, n, detail=f"entry number {n}")
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await keys("A")
        assert table(app).row_count == PAGE and f"{PAGE}+ entries" in shown(app)
        await keys("ctrl+end")  # the last row: the next page is read
        assert table(app).row_count == 2 * PAGE
        await keys("ctrl+end")
        assert table(app).row_count == total and f"{total} entries" in shown(app)
        numbers = [int(e.detail.rsplit(" ", 1)[1]) for e in app.screen.entries.values()]
        assert numbers == list(range(total - 1, -1, -1))  # newest first, each once
        await keys("ctrl+end")
        assert table(app).row_count == total


def test_the_query_pages_and_matches_every_column(tmp_path):
    with Audit(tmp_path / "audit.sqlite3") as audit:
        for n in range(7):
            record(audit, n, result="refused" if n % 2 else "done")
        everything = audit.entries()
        assert [e.id for e in everything] == sorted((e.id for e in everything), reverse=True)
        page = audit.entries(limit=3)
        second = audit.entries(limit=3, before=page[-1].id)
        rest = audit.entries(limit=3, before=second[-1].id)
        assert [e.id for e in page + second + rest] == [e.id for e in everything]
        assert [e.id for e in audit.entries("refused", before=everything[2].id)] == [e.id for e in everything[3:] if e.result == "refused"]
        assert everything[3] in audit.entries(everything[3].time)  # the time is searched too
        assert audit.entries("1999-01-01T00") == []


# --- one entry in full (enter) --------------------------------------------------------------

def hostile_log(state) -> None:
    with Audit(state / "audit.sqlite3") as audit:
        record(audit, 1)
        record(audit, 5, users=[f"{CLICK}@fabrikam.example", "second@fabrikam.example"], customers=[SLASH, ESCAPES],
               result="denied", operator="\x1b[2JMallory [bold]Op[/bold]",
               detail=f"{CLICK} is not yours\n\x1b]0;pwned\x07[/foo]\n" + "a long reason " * 12)


async def test_enter_shows_every_field_of_an_entry_literally_and_esc_comes_back(demo, state):
    hostile_log(state)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await keys("A")
        audit = app.screen
        entry = audit.highlighted
        assert entry.result == "denied" and "⏎ Details" in shown(app).splitlines()[-1]
        await keys("enter")
        assert isinstance(app.screen, AuditEntryScreen) and app.screen.entry == entry
        text = shown(app)
        lines = {line.strip() for line in text.splitlines()}
        for line in (f"Entry      #{entry.id}", "What       move", "Result     denied",
                     "Operator   [2JMallory [bold]Op[/bold]", "Bound as   sp-admin@example.net",
                     f"Users      {CLICK}@fabrikam.example", "second@fabrikam.example",
                     f"Customers  {SLASH}", "[31mRed Alert[0m Ltd", f"Job        {entry.job}",
                     f"{CLICK} is not yours", "]0;pwned[/foo]"):
            assert line in lines, line
        assert f"(recorded {entry.time})" in text and "a long reason a long reason" in text  # the detail wraps
        assert "\x1b" not in text and "\x07" not in text
        await pilot.click(Static, offset=(12, 7))  # on the hostile user: text, nothing to trigger
        await settle(pilot)
        assert app.is_running and isinstance(app.screen, AuditEntryScreen)
        await keys("escape")
        assert app.screen is audit and audit.highlighted == entry
        await keys("j", "enter")  # the next row (j moves the audit table), in full
        assert isinstance(app.screen, AuditEntryScreen) and app.screen.entry.result == "done"
        assert "No detail recorded." in shown(app)


def test_audit_entry_snapshot(snap_compare, state, in_utc):
    in_utc.setattr(audit_module, "_now", lambda: "2025-03-10T09:00:05.000+00:00")
    hostile_log(state)
    assert snapshot_of(snap_compare, "A", "enter")
