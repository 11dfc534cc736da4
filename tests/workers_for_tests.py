"""Running the Dramatiq actors in tests: in this process (the embedded default), or in a real
`crm worker` process on Redis, and waiting for a job's row to say it is finished."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from api.core.jobs import JobState

ROOT = Path(__file__).resolve().parent.parent
CRM_WORKER = [sys.executable, "-m", "api.cli", "worker", "--processes", "1", "--threads", "1"]


async def drain_in_process(queue: str) -> None:
    """Carry out what `queue` holds with the in-process worker, on this event loop."""
    import anyio

    from workers.broker import EmbeddedWorker, setup_broker

    broker = setup_broker()
    worker = EmbeddedWorker(broker)
    worker.start()
    try:
        # The loop stays free to run the actors while a thread waits for the queue to drain.
        await anyio.to_thread.run_sync(lambda: broker.join(queue, timeout=20_000))
    finally:
        await worker.stop()


@asynccontextmanager
async def crm_worker(
    log_path: Path, *, env: dict[str, str] | None = None, threads: int = 1
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A real `crm worker` process (this run's DATABASE_URL, SECRET_KEY and REDIS_URL, and
    `env` on top) for the block's duration; its output goes to `log_path`."""
    command = [*CRM_WORKER[:-1], str(threads)]
    with log_path.open("a") as output:
        proc = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=output, stderr=output
        )
    try:
        yield proc
    finally:
        await stop(proc)


async def stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after 30 s: the end of every process a test starts."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def kill_hard(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL a `crm worker` and the worker processes it forked, as a crash would."""
    pids = [proc.pid]
    for pid in pids:  # grows while walking: children, grandchildren
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        pids.extend(int(c) for c in children)
    for pid in reversed(pids):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def wait_until_finished(
    model: Any, pk: int, proc: asyncio.subprocess.Process, *, seconds: float = 60
) -> JobState:
    """Poll a job's row until it is DONE or FAILED (bounded by `seconds`, and by the worker
    process staying alive); the state last seen."""
    deadline = time.monotonic() + seconds
    state = JobState.QUEUED
    while time.monotonic() < deadline and proc.returncode is None:
        state = (await model.filter(id=pk).only("id", "state").get()).state
        if state in (JobState.DONE, JobState.FAILED):
            break
        await asyncio.sleep(0.05)
    return state
