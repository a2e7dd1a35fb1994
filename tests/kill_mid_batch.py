"""Run a real bulk move in this process and SIGKILL it mid-way (used by test_bulk_kill_batch.py).

    python tests/kill_mid_batch.py CONFIG STATE_DIR DESTINATION CONCURRENCY DONE_ROWS USER [USER…]

Once DONE_ROWS rows have finished, the process is killed right after the next row's
modify-DN is performed, before it is journaled as done: some rows are done, some
running (one with a write the journal does not know finished), the others still
planned. The batch id is printed first, on stdout. The bind password comes from the
environment variable the config names.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from core import plan as p
from core.bulk import BulkMove
from core.config import load, read_password
from core.directory import connect
from core.execute import Executor
from core.move import MoveRequest
from core.session import Session


async def main(config_path: str, state: str, destination: str, concurrency: int, done_rows: int, users: list[str]) -> None:
    config = load(config_path)
    directory = await connect(config, read_password(config.directory))
    session = await Session.open(directory, state=Path(state))
    bulk = BulkMove(session.planner(), session.executor())
    plan = await bulk.preflight(session.operator, [(user, MoveRequest(user, destination)) for user in users], concurrency=concurrency)
    assert plan.ok, [row.plan.problems for row in plan.refused]
    print(plan.batch, flush=True)
    finished = 0
    perform = Executor._perform

    async def perform_then_die(self, job_id, step, *, resuming):
        result = await perform(self, job_id, step, resuming=resuming)
        if finished >= done_rows and step.action == p.MOVE:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    Executor._perform = perform_then_die
    async for item in bulk.run(plan, session.operator, concurrency=concurrency):
        if item.event.kind == "job_finished":
            finished += 1
    raise SystemExit("the batch finished: it should have been killed")


if __name__ == "__main__":
    config_path, state, destination, concurrency, done_rows, *users = sys.argv[1:]
    asyncio.run(main(config_path, state, destination, int(concurrency), int(done_rows), users))
