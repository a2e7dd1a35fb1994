"""The job journal: state transitions, durability across processes and SIGKILL, secrets kept out."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from core.errors import ConfigError, NotFound
from core.journal import JobBusy, Journal, JobStatus, StepState
from core.state import StateError, state_dir

ROOT = Path(__file__).resolve().parent.parent

STEPS = [
    {"user": "anna@contoso.example", "action": "modify_dn", "target": "CN=Anna,OU=Users,OU=Contoso", "new_parent": "OU=Users,OU=Fabrikam"},
    {"user": "anna@contoso.example", "action": "modify", "target": "CN=Anna,OU=Users,OU=Fabrikam", "changes": {"mail": ["anna@fabrikam.example"]}},
    {"user": "anna@contoso.example", "action": "http", "target": "exchange", "method": "POST", "path": "/mailboxes/anna"},
]


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.sqlite3") as j:
        yield j


def new_job(journal: Journal, steps=STEPS, **overrides) -> str:
    args = dict(
        kind="move",
        operator="olivia",
        bound_as="CN=svc-tenantry,OU=Service Accounts,DC=example,DC=net",
        users=["anna@contoso.example"],
        customers=["Contoso", "Fabrikam"],
        steps=steps,
        meta={"plan_version": 1},
    )
    args.update(overrides)
    return journal.create_job(**args)


def run_python(code: str, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
        env=env,
    )


# ------------------------------------------------------------------------------ lifecycle


def test_a_job_runs_to_done_and_every_transition_is_recorded(journal):
    job_id = new_job(journal)
    job = journal.job(job_id)
    assert job.status is JobStatus.PLANNED
    assert job.kind == "move" and job.operator == "olivia"
    assert job.users == ("anna@contoso.example",) and job.customers == ("Contoso", "Fabrikam")
    assert job.meta == {"plan_version": 1}
    assert [s.state for s in job.steps] == [StepState.PENDING] * 3
    assert job.steps[1].spec == STEPS[1] and job.steps[1].target == "CN=Anna,OU=Users,OU=Fabrikam"
    assert not job.is_finished and job.remaining_steps == job.steps and job.done_steps == ()

    journal.set_status(job_id, JobStatus.RUNNING)
    for index in range(3):
        journal.step_starting(job_id, index, {"restore": index})
        assert journal.job(job_id).steps[index].state is StepState.RUNNING
        journal.step_done(job_id, index, {"dn": f"step-{index}"})
    journal.set_status(job_id, JobStatus.DONE)

    job = journal.job(job_id)
    assert job.status is JobStatus.DONE and job.is_finished and job.error is None
    assert [s.index for s in job.done_steps] == [0, 1, 2]
    assert job.remaining_steps == ()
    assert [s.undo for s in job.steps] == [{"restore": 0}, {"restore": 1}, {"restore": 2}]
    assert job.steps[2].result == {"dn": "step-2"}
    for step in job.steps:
        assert step.started_at and step.finished_at and step.started_at <= step.finished_at
    assert job.created_at <= job.updated_at


def test_a_failure_rolls_back_the_done_steps_in_reverse(journal):
    job_id = new_job(journal)
    journal.set_status(job_id, JobStatus.RUNNING)
    journal.step_starting(job_id, 0, {"old_parent": "OU=Users,OU=Contoso"})
    journal.step_done(job_id, 0)
    journal.step_starting(job_id, 1, {"mail": ["anna@contoso.example"]})
    journal.step_done(job_id, 1)
    journal.step_starting(job_id, 2, None)
    journal.step_failed(job_id, 2, "The mail platform answered 503.")
    journal.set_status(job_id, JobStatus.ROLLING_BACK, "The mail platform answered 503.")

    job = journal.job(job_id)
    assert [s.index for s in job.steps_to_undo] == [1, 0]
    assert job.steps[2].error == "The mail platform answered 503."
    assert [s.index for s in job.remaining_steps] == [2]
    for step in job.steps_to_undo:
        journal.undo_starting(job_id, step.index)
        assert journal.job(job_id).steps[step.index].state is StepState.UNDOING
        journal.undo_done(job_id, step.index)
    journal.set_status(job_id, JobStatus.ROLLED_BACK, "The mail platform answered 503.")

    job = journal.job(job_id)
    assert job.status is JobStatus.ROLLED_BACK and job.is_finished
    assert [s.state for s in job.steps] == [StepState.UNDONE, StepState.UNDONE, StepState.FAILED]
    assert job.error == "The mail platform answered 503."
    assert all(s.undo_started_at and s.undo_finished_at for s in job.steps[:2])


def test_a_failed_undo_leaves_the_job_needing_attention_and_it_can_be_retried(journal):
    job_id = new_job(journal)
    journal.set_status(job_id, JobStatus.RUNNING)
    journal.step_starting(job_id, 0, {"old_parent": "OU=Users,OU=Contoso"})
    journal.step_done(job_id, 0)
    journal.set_status(job_id, JobStatus.ROLLING_BACK)
    journal.undo_starting(job_id, 0)
    journal.undo_failed(job_id, 0, "The domain controller went away.")
    with pytest.raises(ValueError):
        journal.set_status(job_id, JobStatus.ROLLED_BACK)
    journal.set_status(job_id, JobStatus.NEEDS_ATTENTION, "Undo of step 0 failed.")
    job = journal.job(job_id)
    assert job.steps[0].state is StepState.UNDO_FAILED and job.steps[0].undo_error == "The domain controller went away."
    assert not job.is_finished and job.error == "Undo of step 0 failed."

    journal.set_status(job_id, JobStatus.ROLLING_BACK)  # `tenantry rollback JOB`
    journal.undo_starting(job_id, 0)
    assert journal.job(job_id).steps[0].undo_error is None
    journal.undo_done(job_id, 0)
    journal.set_status(job_id, JobStatus.ROLLED_BACK)
    assert journal.job(job_id).status is JobStatus.ROLLED_BACK


def test_a_failed_step_may_be_retried_when_resuming(journal):
    job_id = new_job(journal)
    journal.set_status(job_id, JobStatus.RUNNING)
    journal.step_starting(job_id, 0, {"v": 1})
    journal.step_failed(job_id, 0, "Timed out.")
    journal.set_status(job_id, JobStatus.NEEDS_ATTENTION, "Timed out.")
    journal.set_status(job_id, JobStatus.RUNNING)  # `tenantry resume JOB`
    assert journal.job(job_id).error is None
    journal.step_starting(job_id, 0, {"v": 2})
    step = journal.job(job_id).steps[0]
    assert step.state is StepState.RUNNING and step.undo == {"v": 2} and step.error is None


def test_a_step_in_flight_when_the_rollback_begins_can_still_report_and_be_undone(journal):
    job_id = new_job(journal)
    journal.set_status(job_id, JobStatus.RUNNING)
    journal.step_starting(job_id, 0, {"old": 0})
    journal.set_status(job_id, JobStatus.ROLLING_BACK, "Cancelled by the operator.")
    journal.step_done(job_id, 0, {"dn": "x"})  # it finished after all
    assert [s.index for s in journal.job(job_id).steps_to_undo] == [0]
    journal.undo_starting(job_id, 0)
    journal.undo_starting(job_id, 0)  # re-entrant: a crash during the undo leaves it undoing
    journal.undo_done(job_id, 0)
    journal.set_status(job_id, JobStatus.ROLLED_BACK, "Cancelled by the operator.")
    assert journal.job(job_id).steps[0].result == {"dn": "x"}


# ------------------------------------------------------------------------------ illegal transitions


def test_illegal_step_transitions_raise_and_change_nothing(journal):
    job_id = new_job(journal)
    with pytest.raises(ValueError, match="planned"):
        journal.step_starting(job_id, 0, {})  # the job has not been started
    journal.set_status(job_id, JobStatus.RUNNING)
    before = journal.job(job_id)

    with pytest.raises(ValueError, match="pending"):
        journal.step_done(job_id, 0)
    with pytest.raises(ValueError, match="pending"):
        journal.step_failed(job_id, 0, "x")
    with pytest.raises(ValueError, match="earlier step"):
        journal.step_starting(job_id, 1, {})  # out of order
    with pytest.raises(ValueError, match="no step"):
        journal.step_starting(job_id, 3, {})
    with pytest.raises(ValueError, match="no step"):
        journal.step_starting(job_id, -1, {})
    with pytest.raises(ValueError, match="running"):
        journal.undo_starting(job_id, 0)  # undo needs the job rolling back
    assert journal.job(job_id) == before

    journal.step_starting(job_id, 0, {"a": 1})
    journal.step_starting(job_id, 0, {"a": 2})  # restarted after a crash: the first undo data stays
    assert journal.job(job_id).steps[0].undo == {"a": 1}
    assert journal.job(job_id).steps[0].state == StepState.RUNNING
    journal.step_done(job_id, 0)
    with pytest.raises(ValueError, match="done"):
        journal.step_done(job_id, 0)
    with pytest.raises(ValueError, match="done"):
        journal.step_failed(job_id, 0, "x")

    journal.step_starting(job_id, 1, {"b": 1})
    journal.set_status(job_id, JobStatus.ROLLING_BACK)
    with pytest.raises(ValueError, match="still in effect"):
        journal.undo_starting(job_id, 0)  # step 1 (interrupted) must be undone first
    with pytest.raises(ValueError, match="pending"):
        journal.undo_starting(job_id, 2)  # nothing to undo
    with pytest.raises(ValueError, match="done"):
        journal.undo_done(job_id, 0)  # never started
    with pytest.raises(ValueError, match="rolling_back"):
        journal.step_starting(job_id, 2, {})


def test_only_a_job_that_wrote_nothing_is_planned_again(journal):
    job = new_job(journal)
    fresh = STEPS[:2]
    journal.replan(job, fresh, [{"user": "anna@contoso.example", "version": "v2"}])
    record = journal.job(job)
    assert [s.spec for s in record.steps] == fresh and {s.state for s in record.steps} == {StepState.PENDING}
    assert record.meta == {"plan_version": 1, "users": [{"user": "anna@contoso.example", "version": "v2"}]}
    assert record.status == JobStatus.PLANNED
    journal.set_status(job, JobStatus.RUNNING)
    journal.replan(job, STEPS, [])  # running, nothing started yet: still nothing written
    journal.step_starting(job, 0, None)
    with pytest.raises(ValueError, match="only a job that has written nothing can be planned again"):
        journal.replan(job, fresh, [])
    assert len(journal.job(job).steps) == 3 and journal.job(job).steps[0].state == StepState.RUNNING
    with pytest.raises(ValueError, match="A job needs at least one step"):
        journal.replan(new_job(journal), [], [])


def test_illegal_job_transitions_raise(journal):
    job_id = new_job(journal)
    with pytest.raises(ValueError, match="planned"):
        journal.set_status(job_id, JobStatus.DONE)
    with pytest.raises(ValueError):
        journal.set_status(job_id, JobStatus.ROLLING_BACK)
    with pytest.raises(ValueError):
        journal.set_status(job_id, "nonsense")
    journal.set_status(job_id, JobStatus.RUNNING)
    journal.step_starting(job_id, 0, {})
    journal.step_done(job_id, 0)
    with pytest.raises(ValueError, match="step 1 is pending"):
        journal.set_status(job_id, JobStatus.DONE)
    with pytest.raises(ValueError, match="in effect"):
        journal.set_status(job_id, JobStatus.FAILED)
    with pytest.raises(ValueError, match="in effect"):
        journal.set_status(job_id, JobStatus.ROLLED_BACK)
    assert journal.job(job_id).status is JobStatus.RUNNING

    done_id = new_job(journal, steps=STEPS[:1])
    journal.set_status(done_id, "running")  # the plain string value is accepted too
    journal.step_starting(done_id, 0, None)
    journal.step_done(done_id, 0)
    journal.set_status(done_id, JobStatus.DONE)
    for status in JobStatus:
        with pytest.raises(ValueError, match="done"):
            journal.set_status(done_id, status)


def test_bad_job_input_is_refused_before_anything_is_written(journal):
    with pytest.raises(ValueError):
        new_job(journal, steps=[])
    with pytest.raises(ValueError, match="target"):
        new_job(journal, steps=[{"user": "u", "action": "modify"}])
    with pytest.raises(TypeError):
        new_job(journal, users="anna@contoso.example")
    with pytest.raises(TypeError, match="JSON"):
        new_job(journal, steps=[{"user": "u", "action": "a", "target": "t", "when": object()}])
    assert journal.jobs() == []

    job_id = new_job(journal)
    journal.set_status(job_id, JobStatus.RUNNING)
    with pytest.raises(TypeError, match="JSON"):
        journal.step_starting(job_id, 0, {"raw": b"\x00\x01"})
    assert journal.job(job_id).steps[0].state is StepState.PENDING


# ------------------------------------------------------------------------------ lookup and listing


def test_unknown_job_is_not_found_and_a_unique_prefix_is_enough(journal):
    with pytest.raises(NotFound, match="No job"):
        journal.job("20990101-000000-ffff")
    with pytest.raises(NotFound):
        journal.job("")
    with pytest.raises(NotFound):
        journal.step_starting("nope", 0, None)
    with pytest.raises(NotFound):
        journal.set_status("nope", JobStatus.RUNNING)

    first = new_job(journal)
    second = new_job(journal)
    assert first != second
    assert journal.job(first).id == first
    assert journal.job(f"  {first}  ").id == first
    # The random tails differ, so the full id minus nothing and a tail-distinguishing prefix work.
    common = os.path.commonprefix([first, second])
    assert journal.job(first[: len(common) + 1]).id == first
    assert journal.job(second[: len(common) + 1]).id == second
    with pytest.raises(NotFound, match="More than one job"):
        journal.job(common)
    # Prefix lookup is literal: LIKE wildcards do not match anything.
    with pytest.raises(NotFound):
        journal.job("%")
    with pytest.raises(NotFound):
        journal.job("_")
    # Every call takes a prefix.
    journal.set_status(first[: len(common) + 1], JobStatus.RUNNING)
    assert journal.job(first).status is JobStatus.RUNNING


def test_job_ids_are_short_sortable_and_unique(journal):
    ids = [new_job(journal, steps=STEPS[:1]) for _ in range(50)]
    assert len(set(ids)) == 50
    for job_id in ids:
        date, clock, tail = job_id.split("-")
        assert len(date) == 8 and len(clock) == 6 and len(tail) == 4
        assert (date + clock).isdigit() and int(tail, 16) >= 0
    assert [i[:15] for i in ids] == sorted(i[:15] for i in ids)


def test_jobs_are_listed_newest_first_and_can_be_filtered_to_unfinished(journal):
    done = new_job(journal, steps=STEPS[:1])
    running = new_job(journal, steps=STEPS[:1])
    planned = new_job(journal, steps=STEPS[:1])
    failed = new_job(journal, steps=STEPS[:1])
    attention = new_job(journal, steps=STEPS[:1])
    journal.set_status(done, JobStatus.RUNNING)
    journal.step_starting(done, 0, None)
    journal.step_done(done, 0)
    journal.set_status(done, JobStatus.DONE)
    journal.set_status(running, JobStatus.RUNNING)
    journal.set_status(failed, JobStatus.FAILED, "The source user changed since it was read.")
    journal.set_status(attention, JobStatus.RUNNING)
    journal.set_status(attention, JobStatus.NEEDS_ATTENTION)

    assert [j.id for j in journal.jobs()] == [attention, failed, planned, running, done]
    assert [j.id for j in journal.jobs(limit=2)] == [attention, failed]
    assert [j.id for j in journal.jobs(unfinished_only=True)] == [attention, planned, running]
    assert all(len(j.steps) == 1 for j in journal.jobs())
    assert journal.jobs(limit=0) == []


# ------------------------------------------------------------------------------ durability


def test_undo_data_is_on_disk_before_the_step_runs_for_another_object_and_another_process(tmp_path):
    path = tmp_path / "journal.sqlite3"
    writer = Journal(path)
    job_id = new_job(writer)
    writer.set_status(job_id, JobStatus.RUNNING)
    undo = {"dn": "CN=Anna,OU=Users,OU=Fabrikam", "old_parent": "OU=Users,OU=Contoso", "old_rdn": "CN=Anna"}
    writer.step_starting(job_id, 0, undo)
    # The writer stays open (as the executor would while the step runs).

    reader = Journal(path)
    step = reader.job(job_id).steps[0]
    assert step.state is StepState.RUNNING and step.undo == undo
    reader.close()

    out = run_python(
        """
        import json, sys
        from core.journal import Journal
        job = Journal(sys.argv[1]).job(sys.argv[2])
        step = job.steps[0]
        print(json.dumps({"status": job.status, "state": step.state, "undo": step.undo}))
        """,
        str(path),
        job_id,
    )
    assert json.loads(out.stdout) == {"status": "running", "state": "running", "undo": undo}
    writer.close()


KILLED_MID_JOB = """
    import os, signal, sys
    from core.journal import Journal, JobStatus
    journal = Journal(sys.argv[1])
    job_id = journal.create_job(
        "move", "olivia", "svc", ["anna@contoso.example"], ["Contoso", "Fabrikam"],
        [{"user": "anna@contoso.example", "action": "a", "target": f"t{i}"} for i in range(3)],
    )
    journal.set_status(job_id, JobStatus.RUNNING)
    journal.step_starting(job_id, 0, {"restore": "zero"})
    journal.step_done(job_id, 0, {"dn": "new"})
    journal.step_starting(job_id, 1, {"restore": "one"})
    print(job_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)   # the journal is still open, mid-step
"""


def test_a_process_killed_mid_job_leaves_a_readable_consistent_journal(tmp_path):
    path = tmp_path / "journal.sqlite3"
    result = run_python(KILLED_MID_JOB, str(path), check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr
    job_id = result.stdout.strip()

    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()

    with Journal(path) as journal:
        job = journal.job(job_id)
        assert job.status is JobStatus.RUNNING and not job.is_finished
        assert [s.state for s in job.steps] == [StepState.DONE, StepState.RUNNING, StepState.PENDING]
        assert job.steps[0].result == {"dn": "new"}
        assert job.steps[1].undo == {"restore": "one"}
        assert [j.id for j in journal.jobs(unfinished_only=True)] == [job_id]
        # Enough is there to roll back: the interrupted step first, then the done one.
        assert [s.index for s in job.steps_to_undo] == [1, 0]
        journal.set_status(job_id, JobStatus.ROLLING_BACK, "Interrupted.")
        for step in job.steps_to_undo:
            journal.undo_starting(job_id, step.index)
            journal.undo_done(job_id, step.index)
        journal.set_status(job_id, JobStatus.ROLLED_BACK)
        assert journal.job(job_id).is_finished


BUSY_WRITER = """
    import sys
    from core.journal import Journal, JobStatus
    journal = Journal(sys.argv[1])
    n = 0
    while True:
        job_id = journal.create_job("copy", "olivia", "svc", ["u"], ["C"],
                                    [{"user": "u", "action": "a", "target": f"t{i}"} for i in range(4)])
        journal.set_status(job_id, JobStatus.RUNNING)
        for i in range(4):
            journal.step_starting(job_id, i, {"undo": i})
            journal.step_done(job_id, i, {"ok": i})
        journal.set_status(job_id, JobStatus.DONE)
        n += 1
        if n == 1:
            print("ready", flush=True)  # the kill comes at some later, arbitrary point
"""


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.45])
def test_a_sigkill_at_an_arbitrary_instant_never_breaks_the_journal(tmp_path, delay):
    path = tmp_path / "journal.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(BUSY_WRITER), str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(delay)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    with Journal(path) as journal:
        jobs = journal.jobs(limit=100_000)
        assert jobs[-1].status is JobStatus.DONE
        for job in jobs:
            assert len(job.steps) == 4  # a job is created whole or not at all
            states = [s.state for s in job.steps]
            if job.status is JobStatus.DONE:
                assert states == [StepState.DONE] * 4
            else:
                assert job.status in (JobStatus.PLANNED, JobStatus.RUNNING)
                # In order: some done, then at most one running, then pending.
                n_done = states.count(StepState.DONE)
                rest = states[n_done:]
                assert rest in ([], [StepState.RUNNING] + [StepState.PENDING] * (len(rest) - 1), [StepState.PENDING] * len(rest))
            for step in job.steps:
                if step.state in (StepState.RUNNING, StepState.DONE):
                    assert step.undo == {"undo": step.index}
        assert len([j for j in jobs if not j.is_finished]) <= 1


def test_two_journals_writing_from_two_threads_lose_nothing(tmp_path):
    path = tmp_path / "journal.sqlite3"
    shared = Journal(path)  # also used by a third thread, as asyncio.to_thread would
    errors: list[BaseException] = []
    created: dict[str, list[str]] = {}
    start = threading.Barrier(4)

    def work(name: str, journal: Journal) -> None:
        ids = created.setdefault(name, [])
        try:
            start.wait(timeout=30)
            for n in range(40):
                job_id = journal.create_job("move", name, "svc", [f"{name}-{n}"], ["A", "B"],
                                            [{"user": f"{name}-{n}", "action": "a", "target": f"t{i}"} for i in range(3)])
                ids.append(job_id)
                journal.set_status(job_id, JobStatus.RUNNING)
                for i in range(3):
                    journal.step_starting(job_id, i, {"thread": name, "i": i})
                    journal.step_done(job_id, i)
                journal.set_status(job_id, JobStatus.DONE)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    own = [Journal(path), Journal(path)]
    threads = [
        threading.Thread(target=work, args=("t1", own[0])),
        threading.Thread(target=work, args=("t2", own[1])),
        threading.Thread(target=work, args=("t3", shared)),
        threading.Thread(target=work, args=("t4", shared)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for journal in own:
        journal.close()
    assert errors == []

    with Journal(path) as check:
        jobs = check.jobs(limit=1000)
        assert len(jobs) == 160
        assert {j.id for j in jobs} == {i for ids in created.values() for i in ids}
        for job in jobs:
            assert job.status is JobStatus.DONE
            assert [s.undo for s in job.steps] == [{"thread": job.operator, "i": i} for i in range(3)]
    shared.close()


# ------------------------------------------------------------------------------ secrets


def test_secrets_never_reach_the_journal_file(tmp_path):
    path = tmp_path / "journal.sqlite3"
    secrets = ["Hunter2-correct-horse", "Bearer eyJhbGciOi.secret-token", "k3y-0f-the-api", "meta-secret-42", "undo-tok-99"]
    journal = Journal(path)
    job_id = journal.create_job(
        "copy", "olivia", "svc", ["new@contoso.example"], ["Contoso"],
        [
            {"user": "new@contoso.example", "action": "create", "target": "CN=New", "password": secrets[0]},
            {
                "user": "new@contoso.example", "action": "http", "target": "blackberry",
                "request": {"headers": {"Authorization": secrets[1], "X-Api-Key": secrets[2]}, "json": [{"unicodePwd": secrets[0]}]},
            },
        ],
        meta={"client_secret": secrets[3], "note": "kept"},
    )
    journal.set_status(job_id, JobStatus.RUNNING)
    journal.step_starting(job_id, 0, {"delete": "CN=New", "Token": secrets[4]})
    journal.step_done(job_id, 0, {"guid": "abc", "api_key": secrets[2]})

    job = journal.job(job_id)
    assert job.steps[0].spec["password"] == "***"
    assert job.steps[1].spec["request"]["headers"] == {"Authorization": "***", "X-Api-Key": "***"}
    assert job.steps[1].spec["request"]["json"] == [{"unicodePwd": "***"}]
    assert job.meta == {"client_secret": "***", "note": "kept"}
    assert job.steps[0].undo == {"delete": "CN=New", "Token": "***"}
    assert job.steps[0].result == {"guid": "abc", "api_key": "***"}

    def raw_bytes() -> bytes:
        return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("journal.sqlite3"))

    open_bytes = raw_bytes()  # the WAL is still there while the journal is open
    assert b"CN=New" in open_bytes  # the check can see what was written …
    journal.close()
    closed_bytes = raw_bytes()
    for secret in secrets:  # … and no secret is anywhere in it
        assert secret.encode() not in open_bytes
        assert secret.encode() not in closed_bytes


# ------------------------------------------------------------------------------ files and state dir


def test_the_journal_file_is_private_and_the_default_is_in_the_state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TENANTRY_STATE_DIR", str(tmp_path / "state"))
    with Journal() as journal:
        new_job(journal)
        assert journal.path == tmp_path / "state" / "journal.sqlite3"
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    for file in (tmp_path / "state").iterdir():
        assert stat.S_IMODE(file.stat().st_mode) & 0o077 == 0, file
    mode = sqlite3.connect(tmp_path / "state" / "journal.sqlite3").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_state_dir_follows_the_environment(tmp_path):
    explicit = state_dir({"TENANTRY_STATE_DIR": str(tmp_path / "explicit"), "XDG_STATE_HOME": str(tmp_path / "xdg")})
    assert explicit == tmp_path / "explicit" and explicit.is_dir()
    assert stat.S_IMODE(explicit.stat().st_mode) == 0o700

    xdg = state_dir({"XDG_STATE_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")})
    assert xdg == tmp_path / "xdg" / "tenantry" and xdg.is_dir()

    for env in ({"HOME": str(tmp_path / "home")}, {"XDG_STATE_HOME": "", "HOME": str(tmp_path / "home")},
                {"XDG_STATE_HOME": "relative/dir", "HOME": str(tmp_path / "home")}):
        assert state_dir(env) == tmp_path / "home" / ".local" / "state" / "tenantry"

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    assert state_dir({"TENANTRY_STATE_DIR": str(shared)}) == shared
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # an existing directory is left as its owner made it

    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        state_dir({"TENANTRY_STATE_DIR": str(tmp_path / "afile")})


def test_a_file_that_is_not_a_journal_gives_one_clear_error(tmp_path):
    garbage = tmp_path / "journal.sqlite3"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StateError, match="not a usable SQLite database"):
        Journal(garbage)

    newer = tmp_path / "newer.sqlite3"
    raw = sqlite3.connect(newer)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(StateError, match="newer Tenantry"):
        Journal(newer)


def test_a_closed_journal_refuses_calls(tmp_path):
    journal = Journal(tmp_path / "j.sqlite3")
    journal.close()
    journal.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        journal.jobs()


# ------------------------------------------------------------------------------ one run at a time


def test_a_job_is_claimed_by_one_run_at_a_time_and_a_killed_holder_frees_it(journal, tmp_path):
    job_id = new_job(journal)
    with journal.claim(job_id):
        with pytest.raises(JobBusy, match=f"Job {job_id} is being run right now"):
            with journal.claim(job_id):
                pass  # a second run in this process
        with journal.claim(new_job(journal)):  # another job is another claim
            pass
    with journal.claim(job_id):  # released on exit
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from core.journal import Journal
            journal = Journal(sys.argv[1])
            with journal.claim(sys.argv[2]):
                print("held", flush=True)
                time.sleep(60)
        """), str(journal.path), job_id],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(JobBusy):
            with journal.claim(job_id):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with journal.claim(job_id):  # the kernel released the dead process's lock
        pass
    with pytest.raises(ValueError):
        with journal.claim("../journal.sqlite3"):
            pass


def test_a_job_names_its_users_by_their_upn_before_the_job(journal):
    dn = "CN=Arjun Martin,OU=Users,OU=Fabrikam,OU=Hosting,DC=example,DC=net"
    named = new_job(journal, users=[dn], meta={"users": [{"user": dn, "upn_before": "arjun.martin@fabrikam.example"}]})
    assert journal.job(named).names == ("arjun.martin@fabrikam.example",)
    bare = new_job(journal, users=[dn], meta={"users": [{"user": dn}]})  # no UPN (a copy's template, an old job)
    assert journal.job(bare).names == (dn,)
    assert journal.job(new_job(journal)).names == ("anna@contoso.example",)  # no meta users at all
