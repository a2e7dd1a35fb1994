"""Run a real move in this process and SIGKILL it in the middle (used by test_move_crash.py).

    python tests/kill_mid_move.py CONFIG STATE_DIR USER DESTINATION INDEX {before,after}

``before``: killed after step INDEX is journaled as running, before it is performed.
``after``: killed after step INDEX is performed, before it is journaled as done.
The bind password comes from the environment variable the config names.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from core.config import load, read_password
from core.directory import connect
from core.execute import Executor
from core.move import MoveRequest
from core.session import Session


async def main(config_path: str, state: str, user: str, destination: str, index: int, when: str) -> None:
    config = load(config_path)
    directory = await connect(config, read_password(config.directory))
    session = await Session.open(directory, state=Path(state))
    plan = await session.planner().preflight(session.operator, MoveRequest(user, destination))
    assert plan.ok, plan.problems

    async def kill_before(i, step):
        if when == "before" and i == index:
            os.kill(os.getpid(), signal.SIGKILL)

    executor = session.executor(before_step=kill_before)
    perform = Executor._perform

    async def perform_then_die(self, job_id, step, *, resuming):
        result = await perform(self, job_id, step, resuming=resuming)
        if when == "after" and step == plan.steps[index]:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    Executor._perform = perform_then_die
    async for _event in executor.run(plan, session.operator):
        pass
    raise SystemExit("the move finished: it should have been killed")


if __name__ == "__main__":
    config_path, state, user, destination, index, when = sys.argv[1:]
    asyncio.run(main(config_path, state, user, destination, int(index), when))
