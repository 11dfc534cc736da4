"""The `crm` command and the Procfile's processes, run as real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from api.schema import schema

ROOT = Path(__file__).resolve().parent.parent
CRM = [sys.executable, "-m", "api.cli"]


def run_crm(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CRM, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for_line(proc: subprocess.Popen, needle: str, limit: int = 400) -> str:
    """Read the process's output until `needle` appears (bounded by lines read and by the
    caller's timeout on the process)."""
    seen = []
    assert proc.stdout is not None
    for _ in range(limit):
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} never appeared in:\n{''.join(seen)}")


def test_export_schema_matches_committed_file():
    result = run_crm("export-schema", "--output", "-")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (ROOT / "schema.graphql").read_text()
    assert result.stdout == schema.as_str() + "\n"


def test_bootstrap_is_idempotent():
    office = f"Bootstrap {uuid.uuid4().hex[:8]}"
    email = f"boss-{uuid.uuid4().hex[:8]}@office.example"
    args = ("bootstrap", "--office", office, "--timezone", "Europe/Paris")
    first = run_crm(*args, "--admin-email", email, "--admin-password", "a-long-password")
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    second = run_crm(*args, "--admin-email", email, "--admin-password", "a-long-password")
    assert second.returncode == 0, second.stderr
    assert "nothing changed" in second.stdout


def test_bootstrap_rejects_bad_input_cleanly():
    result = run_crm(
        "bootstrap",
        "--office",
        f"Bad {uuid.uuid4().hex[:6]}",
        "--timezone",
        "Mars/Olympus",
        "--admin-email",
        "x@office.example",
        "--admin-password",
        "a-long-password",
    )
    assert result.returncode == 2
    assert "timezone" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(bool(os.environ.get("REDIS_URL")), reason="embedded mode only")
def test_worker_without_redis_explains_itself():
    result = run_crm("worker", env={"REDIS_URL": ""})
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr


def assert_starts_and_stops(args: list[str], ready: str, env: dict[str, str] | None = None) -> None:
    """Start a `crm` process, wait until it says `ready`, SIGTERM it: it exits 0."""
    proc = subprocess.Popen(
        [*CRM, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_line(proc, ready)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_worker_process_boots_on_redis_and_stops_cleanly():
    assert_starts_and_stops(["worker", "--processes", "1", "--threads", "1"], "ready for action")


def test_clock_process_starts_and_stops_on_sigterm():
    # Without REDIS_URL what the clock enqueues stays in its own process: no worker of
    # another test runs audits on this run's offices.
    assert_starts_and_stops(["clock"], "clock started", env={"LOG_LEVEL": "INFO", "REDIS_URL": ""})
