"""Bulk moves (PRODUCT §4, issue 4): every row preflighted first, problems per row,
clean rows run with bounded concurrency, one journal job per user (one batch id)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_asyncio
from move_fixtures import DESTINATION, make_user, remove_user

from core import plan as p
from core.batch import Batch
from core.bulk import DUPLICATE, UNKNOWN, BulkMove
from core.escape import child_dn, same_dn
from core.move import MoveRequest
from core.session import Session

aio = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parent.parent
ROWS = 50  # the bulk test's rows: 47 clean, 3 with problems


@pytest_asyncio.fixture(loop_scope="session")
async def dc_session(dc_directory, tmp_path):
    session = await Session.open(dc_directory, state=tmp_path)
    yield session
    session.journal.close()
    session.audit.close()


@pytest_asyncio.fixture(loop_scope="session")
async def session(directory, tmp_path):
    """Demo and real DC alike (``directory`` is parametrised)."""
    session = await Session.open(directory, state=tmp_path)
    yield session
    session.journal.close()
    session.audit.close()


async def _run(bulk, plan, session, concurrency):
    results = {}
    events = [e async for e in bulk.run(plan, session.operator, concurrency=concurrency, results=results)]
    return events, results


async def _in_destination(directory, user) -> bool:
    destination = await directory.customer(DESTINATION)
    return await directory.exists(child_dn("CN", user.cn, directory.layout.users_dn(destination.dn)))


@aio
async def test_bulk_of_50_rows_with_3_problems_reported_per_row_and_the_other_47_moved(dc_session):
    """50 rows: a UPN colliding with a user already in the destination, an unknown user
    and a duplicate row are refused per row; the 47 clean users are moved, each in its
    own job of one batch."""
    directory = dc_session.directory
    users = [await make_user(directory) for _ in range(ROWS - 2)]
    squatter = await make_user(directory, source_name=DESTINATION)  # holds a UPN in the destination
    try:
        clean, colliding = users[:-1], users[-1]
        requests = [(f"row {i}", MoveRequest(u.upn, DESTINATION)) for i, u in enumerate(clean, 1)]
        requests += [
            (f"row {ROWS - 2}", MoveRequest(colliding.upn, DESTINATION, upn=squatter.upn)),
            (f"row {ROWS - 1}", MoveRequest("nobody.at.all@adventure-works-cycles.example", DESTINATION)),
            (f"row {ROWS}", MoveRequest(clean[0].sam, DESTINATION)),  # the same user as row 1, named differently
        ]
        bulk = BulkMove(dc_session.planner(), dc_session.executor())
        plan = await bulk.preflight(dc_session.operator, requests)
        refused = {row.label: {x.code for x in row.plan.problems} for row in plan.refused}
        assert refused == {f"row {ROWS - 2}": {p.COLLISION}, f"row {ROWS - 1}": {UNKNOWN}, f"row {ROWS}": {DUPLICATE}}
        assert squatter.upn in " ".join(x.message for x in plan.rows[ROWS - 3].plan.problems)
        assert [row.label for row in plan.clean] == [f"row {i}" for i in range(1, ROWS - 2)]
        assert not any([await _in_destination(directory, u) for u in users])  # preflight wrote nothing

        events, results = await _run(bulk, plan, dc_session, 4)
        assert {label: r.status for label, r in results.items()} == {
            **{f"row {i}": "done" for i in range(1, ROWS - 2)}, **{f"row {i}": "refused" for i in range(ROWS - 2, ROWS + 1)}}
        assert all([await _in_destination(directory, u) for u in clean])
        assert not await _in_destination(directory, colliding)
        jobs = {results[f"row {i}"].job for i in range(1, ROWS - 2)}
        assert len(jobs) == ROWS - 3 and {e.event.job for e in events} == jobs
        for job_id in jobs:
            job = dc_session.journal.job(job_id)
            assert job.status.value == "done" and job.meta["batch"] == plan.batch and len(job.users) == 1
        finished = [e.row for e in events if e.event.kind == "job_finished"]
        assert sorted(finished) == sorted(f"row {i}" for i in range(1, ROWS - 2))
    finally:
        for user in users + [squatter]:
            await remove_user(directory, user)


@aio
async def test_collisions_between_rows_and_duplicates_are_found_in_preflight(session):
    directory = session.directory
    first, second = await make_user(directory), await make_user(directory)
    try:
        bulk = BulkMove(session.planner(), session.executor())
        alone = await bulk.preflight(session.operator, [("a", MoveRequest(first.upn, DESTINATION))])
        taken = alone.rows[0].plan.users[0].upn_after  # what row "a" will be given
        plan = await bulk.preflight(session.operator, [
            ("a", MoveRequest(first.upn, DESTINATION)),
            ("b", MoveRequest(second.upn, DESTINATION, upn=taken)),  # the same UPN as row a
            ("c", MoveRequest(second.upn, DESTINATION, upn="someone.else@" + taken.split("@")[1])),
            ("d", MoveRequest(first.dn, DESTINATION)),  # row a again, by DN
        ])
        codes = {row.label: [x.code for x in row.plan.problems] for row in plan.rows}
        assert codes == {"a": [], "b": [p.COLLISION], "c": [DUPLICATE], "d": [DUPLICATE]}
        assert "to a" in plan.rows[1].plan.problems[0].message and taken in plan.rows[1].plan.problems[0].message
        assert [row.label for row in plan.clean] == ["a"]
    finally:
        await remove_user(directory, first)
        await remove_user(directory, second)


@aio
@pytest.mark.parametrize("concurrency", [1, 4])
async def test_concurrency_1_and_4_both_move_every_user(dc_session, concurrency):
    """Every user here creates the same role group (Billing Contact) in the destination:
    the first row creates it, the others wait for it instead of colliding."""
    directory = dc_session.directory
    users = [await make_user(directory) for _ in range(5)]
    try:
        bulk = BulkMove(dc_session.planner(), dc_session.executor())
        plan = await bulk.preflight(dc_session.operator, [(u.upn, MoveRequest(u.upn, DESTINATION)) for u in users])
        assert plan.ok
        creating = [row for row in plan.rows if any(s.action == p.CREATE_GROUP for s in row.plan.steps)]
        assert len(creating) == 5
        _events, results = await _run(bulk, plan, dc_session, concurrency)
        assert {r.status for r in results.values()} == {"done"}, [r.message for r in results.values()]
        assert all([await _in_destination(directory, u) for u in users])
        batch = {dc_session.journal.job(r.job).meta["batch"] for r in results.values()}
        assert batch == {plan.batch}
    finally:
        for user in users:
            await remove_user(directory, user)


@aio
async def test_the_check_after_a_batch_reads_as_much_for_five_rows_as_for_one(dc_session, monkeypatch):
    """Issue 9 item 7 for batches: after a bulk move the done rows' written values are read
    back for duplicates in one pass (a search per 100 values, one per parent OU for the
    names), not a pass per row: five rows cost the reads of one. No duplicate here:
    nothing reported, nothing audited."""
    from core.batch import row_aftermaths
    from core.directory import ops

    directory = dc_session.directory
    users = [await make_user(directory) for _ in range(5)]
    try:
        bulk = BulkMove(dc_session.planner(), dc_session.executor())
        plan = await bulk.preflight(dc_session.operator, [(u.upn, MoveRequest(u.upn, DESTINATION)) for u in users])
        _events, results = await _run(bulk, plan, dc_session, 2)
        assert {r.status for r in results.values()} == {"done"}, [r.message for r in results.values()]
        reads = []
        for name in ("read", "search_page"):
            original = getattr(ops, name)

            def counted(*args, _original=original, **kwargs):
                reads.append(args[1] if len(args) > 1 else "")
                return _original(*args, **kwargs)

            monkeypatch.setattr(ops, name, counted)
        one = await row_aftermaths(directory, dc_session.journal, dc_session.audit, dc_session.operator,
                                   {users[0].upn: results[users[0].upn]})
        for_one, reads[:] = len(reads), []
        every = await row_aftermaths(directory, dc_session.journal, dc_session.audit, dc_session.operator, results)
        assert len(reads) == for_one <= 4, reads
        assert set(every) == set(results) and set(one) == {users[0].upn}
        for after in every.values():
            assert after.duplicates == () and after.replication.holding == (directory.server,) and not after.replication.missing
        assert not [e for e in dc_session.audit.entries() if e.result == "needs_attention"]
    finally:
        for user in users:
            await remove_user(directory, user)


@aio
@pytest.mark.parametrize("concurrency", [1, 3])
async def test_rows_whose_manager_moved_in_an_earlier_row_run_as_planned(dc_session, concurrency):
    """The DC rewrites a user's ``manager`` when the manager moves: that is no change of
    the user. The manager's row goes first (it creates the role group the others wait
    for), so every other row starts after its manager moved — none is planned again."""
    directory = dc_session.directory
    manager = await make_user(directory)
    reports = [await make_user(directory) for _ in range(5)]
    users = [manager, *reports]
    try:
        for user in reports:
            await directory.modify(user.dn, {"manager": ([], [manager.dn])})
        bulk = BulkMove(dc_session.planner(), dc_session.executor())
        plan = await bulk.preflight(dc_session.operator, [(u.upn, MoveRequest(u.upn, DESTINATION)) for u in users])
        assert plan.ok
        events, results = await _run(bulk, plan, dc_session, concurrency)
        assert [label for label, r in results.items() if not dc_session.journal.job(r.job).meta.get("after")] == [manager.upn]
        assert {r.status for r in results.values()} == {"done"}, [r.message for r in results.values()]
        assert [e.event.message for e in events if e.event.kind == "replanned"] == []
        moved_manager = child_dn("CN", manager.cn, directory.layout.users_dn(manager.destination.dn))
        for user in users:
            moved = await directory.user(results[user.upn].upn)
            assert same_dn(moved.dn, child_dn("CN", user.cn, directory.layout.users_dn(user.destination.dn)))
            assert not await directory.exists(user.dn)
            if user is not manager:
                assert same_dn((await directory.values(moved.dn, ["manager"]))["manager"][0], moved_manager)
    finally:
        for user in users:
            await remove_user(directory, user)


# -- the command line, on the demo directory (each process has its own) -----------------

def _cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TENANTRY_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "cli", "move", "--demo", *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False)


A = "daniel.laurent@adventure-works-cycles.example"
B = "helene.rossi@adventure-works-cycles.example"


def test_cli_csv_lists_every_problem_per_row_then_runs_the_clean_ones(tmp_path):
    csv_file = tmp_path / "users.csv"
    csv_file.write_text(f"user,upn,email\n{A},,\n{B},,\nnobody@adventure-works-cycles.example,,\n{A},,\n", encoding="utf-8")
    dry = _cli(tmp_path, "--csv", str(csv_file), "--to", DESTINATION, "--dry-run")
    assert dry.returncode == 3, dry.stderr
    assert "row 3 (nobody@adventure-works-cycles.example)" in dry.stderr and "row 4" in dry.stderr and "same user as row 1 (" in dry.stderr
    assert "Dry run: nothing was written." in dry.stderr

    ran = _cli(tmp_path, "--csv", str(csv_file), "--to", DESTINATION, "--yes", "--json", "--concurrency", "2")
    assert ran.returncode == 4, ran.stderr  # not every user moved; nothing is left half done
    out = json.loads(ran.stdout)
    assert [r["status"] for r in out["rows"]] == ["done", "done", "refused", "refused"]
    assert out["rows"][0]["upn"] == "daniel.laurent@globex-corporation.example" and out["rows"][0]["job"]
    assert out["rows"][2]["problems"][0]["code"] == UNKNOWN


def test_cli_several_users_all_clean_exit_0_and_all_refused_exit_3(tmp_path):
    ok = _cli(tmp_path, A, B, "--to", DESTINATION, "--yes", "--json")
    assert ok.returncode == 0, ok.stderr
    assert [r["status"] for r in json.loads(ok.stdout)["rows"]] == ["done", "done"]
    refused = _cli(tmp_path, "nobody@adventure-works-cycles.example", "nobody2@adventure-works-cycles.example", "--to", DESTINATION, "--yes")
    assert refused.returncode == 3, refused.stderr
    assert "every row is refused" in refused.stderr
    usage = _cli(tmp_path, A, B, "--to", DESTINATION, "--upn", "x@globex-corporation.example", "--yes")
    assert usage.returncode == 2 and "per row" in usage.stderr


@aio
async def test_a_failing_user_is_rolled_back_alone_and_the_others_are_moved(session):
    from core.errors import TenantryError

    directory = session.directory
    users = [await make_user(directory) for _ in range(3)]
    try:
        victim = users[1]

        async def fail(index, step):
            if step.user == victim.upn and step.action == p.MOVE:
                raise TenantryError("injected failure")

        bulk = BulkMove(session.planner(), session.executor(before_step=fail))
        plan = await bulk.preflight(session.operator, [(u.upn, MoveRequest(u.upn, DESTINATION)) for u in users])
        _events, results = await _run(bulk, plan, session, 4)
        assert [results[u.upn].status for u in users] == ["done", "rolled_back", "done"]
        assert [await _in_destination(directory, u) for u in users] == [True, False, True]
        assert await directory.exists(victim.dn)  # back where it was
        batch = Batch.load(session.journal, plan.batch)
        assert [j.status.value for j in batch.jobs] == ["done", "rolled_back", "done"] and not batch.unfinished
    finally:
        for user in users:
            await remove_user(directory, user)
