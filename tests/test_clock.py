"""When nightly audits are due and how they are recorded (R18): 02:00 in each office's time
zone, once per office and night, whatever the clock's restarts, duplicates and downtime."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from api.audit.models import AuditRun, AuditTrigger
from api.audit.schedule import due_night, enqueue_due
from api.core.jobs import JobState
from tests.conftest import make_office

ROOT = Path(__file__).resolve().parent.parent
CRM_CLOCK = [sys.executable, "-m", "api.cli", "clock"]

# A night where New York (EST, 01:00) is still on the 9th while London, Tokyo and Sydney
# are past their 02:00 of the 10th. Every test of enqueue_due uses these two instants (one
# office's night is another's), so its pass over the other tests' offices is paid once.
BASE = datetime(2024, 3, 10, 6, 0, tzinfo=UTC)
LATER = BASE + timedelta(days=3, hours=2)
ZONES = ("Europe/London", "America/New_York", "Asia/Tokyo", "Australia/Sydney")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- due_night -------------------------------------------------------------------------

CASES = [
    # London, winter (GMT = UTC): the night turns at 02:00 UTC.
    ("Europe/London", utc(2024, 1, 15, 1, 59), date(2024, 1, 14)),
    ("Europe/London", utc(2024, 1, 15, 2, 0), date(2024, 1, 15)),
    # London, summer (BST = UTC+1): 02:00 local is 01:00 UTC.
    ("Europe/London", utc(2024, 7, 15, 0, 59), date(2024, 7, 14)),
    ("Europe/London", utc(2024, 7, 15, 1, 0), date(2024, 7, 15)),
    # London spring forward (31 March 2024, 01:00 GMT -> 02:00 BST): 02:00 BST = 01:00 UTC.
    ("Europe/London", utc(2024, 3, 31, 0, 59), date(2024, 3, 30)),
    ("Europe/London", utc(2024, 3, 31, 1, 0), date(2024, 3, 31)),
    # London fall back (27 October 2024): 01:00-02:00 happens twice, 02:00 GMT once.
    ("Europe/London", utc(2024, 10, 27, 0, 30), date(2024, 10, 26)),  # 01:30 BST
    ("Europe/London", utc(2024, 10, 27, 1, 30), date(2024, 10, 26)),  # 01:30 GMT
    ("Europe/London", utc(2024, 10, 27, 1, 59), date(2024, 10, 26)),
    ("Europe/London", utc(2024, 10, 27, 2, 0), date(2024, 10, 27)),
    # New York, winter (EST = UTC-5) and summer (EDT = UTC-4).
    ("America/New_York", utc(2024, 1, 15, 6, 59), date(2024, 1, 14)),
    ("America/New_York", utc(2024, 1, 15, 7, 0), date(2024, 1, 15)),
    ("America/New_York", utc(2024, 7, 15, 5, 59), date(2024, 7, 14)),
    ("America/New_York", utc(2024, 7, 15, 6, 0), date(2024, 7, 15)),
    # The UTC date is already the 15th, the office's night still the 14th.
    ("America/New_York", utc(2024, 7, 15, 3, 0), date(2024, 7, 14)),
    # Spring forward (10 March 2024): 02:00 does not exist; the run falls at 03:00 EDT.
    ("America/New_York", utc(2024, 3, 10, 6, 59, 59), date(2024, 3, 9)),
    ("America/New_York", utc(2024, 3, 10, 7, 0), date(2024, 3, 10)),
    # Fall back (3 November 2024): 01:00-02:00 twice (EDT then EST), 02:00 EST once.
    ("America/New_York", utc(2024, 11, 3, 5, 30), date(2024, 11, 2)),  # 01:30 EDT
    ("America/New_York", utc(2024, 11, 3, 6, 30), date(2024, 11, 2)),  # 01:30 EST
    ("America/New_York", utc(2024, 11, 3, 6, 59), date(2024, 11, 2)),
    ("America/New_York", utc(2024, 11, 3, 7, 0), date(2024, 11, 3)),
    # Tokyo (UTC+9): the office's night is a day ahead of the UTC date.
    ("Asia/Tokyo", utc(2024, 1, 14, 16, 59), date(2024, 1, 14)),
    ("Asia/Tokyo", utc(2024, 1, 14, 17, 0), date(2024, 1, 15)),
    # Sydney, summer (AEDT = UTC+11).
    ("Australia/Sydney", utc(2024, 1, 14, 14, 59), date(2024, 1, 14)),
    ("Australia/Sydney", utc(2024, 1, 14, 15, 0), date(2024, 1, 15)),
    # Sydney spring forward (6 October 2024, 02:00 AEST -> 03:00 AEDT): no 02:00; 03:00 AEDT.
    ("Australia/Sydney", utc(2024, 10, 5, 15, 59), date(2024, 10, 5)),
    ("Australia/Sydney", utc(2024, 10, 5, 16, 0), date(2024, 10, 6)),
    # Sydney fall back (7 April 2024, 03:00 AEDT -> 02:00 AEST): 02:00 happens twice; the
    # night turns at the first and the second is the same night.
    ("Australia/Sydney", utc(2024, 4, 6, 14, 59), date(2024, 4, 6)),
    ("Australia/Sydney", utc(2024, 4, 6, 15, 0), date(2024, 4, 7)),  # 02:00 AEDT
    ("Australia/Sydney", utc(2024, 4, 6, 16, 0), date(2024, 4, 7)),  # 02:00 AEST
    ("Australia/Sydney", utc(2024, 4, 6, 16, 59), date(2024, 4, 7)),
]


@pytest.mark.parametrize(("zone", "now", "night"), CASES)
def test_due_night_is_the_latest_local_night_past_02_00(zone, now, night):
    """R18: the due night is the latest office-local date whose 02:00 has come."""
    assert due_night(now, zone) == night


def test_due_night_accepts_any_offset():
    """R18: the same instant in another offset gives the same night."""
    now = utc(2024, 11, 3, 6, 30)
    assert due_night(now.astimezone(ZoneInfo("Asia/Tokyo")), "America/New_York") == date(
        2024, 11, 2
    )


def first_local_0200(day: date, zone: str, around: datetime) -> datetime:
    """The oracle: the first UTC minute (searched from `around`) at which the wall clock of
    `zone` reads `day` at 02:00 or later."""
    tz = ZoneInfo(zone)
    minute = around
    for _ in range(4 * 24 * 60):
        local = minute.astimezone(tz).replace(tzinfo=None)
        if local >= datetime.combine(day, datetime.min.time()).replace(hour=2):
            return minute
        minute += timedelta(minutes=1)
    raise AssertionError("no 02:00 found")


# Days of every daylight-saving change of 2024 in the four zones.
TRANSITIONS = [
    ("Europe/London", date(2024, 3, 31)),
    ("Europe/London", date(2024, 10, 27)),
    ("America/New_York", date(2024, 3, 10)),
    ("America/New_York", date(2024, 11, 3)),
    ("Australia/Sydney", date(2024, 4, 7)),
    ("Australia/Sydney", date(2024, 10, 6)),
    ("Asia/Tokyo", date(2024, 3, 10)),
]


@pytest.mark.parametrize(("zone", "day"), TRANSITIONS)
def test_every_night_turns_once_at_its_02_00_across_daylight_saving(zone, day):
    """R18: minute by minute over three nights around a daylight-saving change, the due night
    moves forward one day at a time, once per night, at the first local 02:00 or later."""
    start = datetime.combine(day - timedelta(days=1), datetime.min.time(), tzinfo=ZoneInfo(zone))
    start = start.astimezone(UTC) - timedelta(hours=1)
    turns: list[tuple[datetime, date]] = []
    previous = due_night(start, zone)
    for step in range(3 * 24 * 60 + 120):
        now = start + timedelta(minutes=step)
        night = due_night(now, zone)
        if night != previous:
            turns.append((now, night))
            previous = night
    assert [night for _, night in turns] == [day - timedelta(days=1), day, day + timedelta(days=1)]
    for now, night in turns:
        assert now == first_local_0200(night, zone, start)


# --- enqueue_due -----------------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """What enqueue_due sends to the audit actor, recorded instead of sent."""
    from workers.audit import run_status_audit

    calls: list[int] = []
    monkeypatch.setattr(run_status_audit, "send", lambda run_id: calls.append(run_id))
    return calls


async def offices(*zones: str) -> list[Any]:
    return [await make_office(timezone=zone) for zone in zones]


async def runs_of(office: Any) -> list[AuditRun]:
    return await AuditRun.filter(office_id=office.id).order_by("id")


async def test_enqueue_due_records_one_nightly_run_per_office_and_night(sent):
    """R18: one NIGHTLY run per office for the night due in its own time zone, sent once;
    calling again the same night records and sends nothing more."""
    mine = await offices(*ZONES)
    created = await enqueue_due(BASE)
    expected = {
        "Europe/London": date(2024, 3, 10),
        "America/New_York": date(2024, 3, 9),
        "Asia/Tokyo": date(2024, 3, 10),
        "Australia/Sydney": date(2024, 3, 10),
    }
    for office in mine:
        [run] = await runs_of(office)
        assert run.night == expected[office.timezone]
        assert (run.trigger, run.state, run.dry_run) == (
            AuditTrigger.NIGHTLY,
            JobState.QUEUED,
            False,
        )
        assert run.requested_by_id is None
        assert sent.count(run.id) == 1
        assert [r.id for r in created if r.office_id == office.id] == [run.id]
    my_runs = {r.id for office in mine for r in await runs_of(office)}

    again = await enqueue_due(BASE + timedelta(minutes=1))
    assert not [r for r in again if r.id in my_runs or r.office_id in {o.id for o in mine}]
    for office in mine:
        assert len(await runs_of(office)) == 1
    assert sorted(sent.count(pk) for pk in my_runs) == [1] * len(mine)


async def test_two_concurrent_clocks_record_one_run_per_office_and_night(sent):
    """R18: two enqueue_due at once (two clocks) still record one run per office and night."""
    mine = await offices("Europe/London", "Asia/Tokyo", "America/New_York")
    first, second = await asyncio.gather(enqueue_due(BASE), enqueue_due(BASE))
    for office in mine:
        [run] = await runs_of(office)
        assert run.night == due_night(BASE, office.timezone)
        created = [r for r in (*first, *second) if r.office_id == office.id]
        assert [r.id for r in created] == [run.id]
        assert sent.count(run.id) == 1


async def test_after_downtime_the_latest_due_night_is_recorded_once(sent):
    """R18: a clock back after days of downtime records each office's latest due night once,
    not every night it missed."""
    mine = await offices("Europe/London", "America/New_York", "Australia/Sydney")
    await enqueue_due(BASE)
    await enqueue_due(LATER)
    await enqueue_due(LATER + timedelta(minutes=1))
    for office in mine:
        runs = await runs_of(office)
        nights = [r.night for r in runs]
        latest = due_night(LATER, office.timezone)
        assert nights == [due_night(BASE, office.timezone), latest]
        assert (latest - nights[0]).days >= 3  # the nights in between are not made up
        assert sent.count(runs[1].id) == 1


async def test_a_run_queued_for_more_than_ten_minutes_is_sent_again(sent):
    """R18: a run still QUEUED more than 10 minutes after it was last sent lost its message
    and is sent again; younger, running and finished runs are not."""
    lost, young, running, done = await offices(*ZONES)
    await enqueue_due(BASE)
    ages = {
        lost: (JobState.QUEUED, timedelta(minutes=11)),
        young: (JobState.QUEUED, timedelta(minutes=9)),
        running: (JobState.RUNNING, timedelta(hours=1)),
        done: (JobState.DONE, timedelta(days=1)),
    }
    run_ids = {}
    for office, (state, age) in ages.items():
        [run] = await runs_of(office)
        await AuditRun.filter(id=run.id).update(
            state=state, created_at=BASE - age, enqueued_at=BASE - age
        )
        run_ids[office] = run.id
    sent.clear()

    created = await enqueue_due(BASE)
    assert not [r for r in created if r.office_id in {o.id for o in ages}]
    assert sent.count(run_ids[lost]) == 1
    for office in (young, running, done):
        assert run_ids[office] not in sent
    for office in ages:
        assert len(await runs_of(office)) == 1


async def test_an_office_with_a_broken_time_zone_does_not_stop_the_others(sent):
    """R18: an office whose time zone this machine does not know (written straight into the
    database; the API refuses it) does not keep every other office from its nightly run."""
    broken = await make_office(timezone="Mars/Olympus_Mons")
    try:
        [fine] = await offices("Europe/London")
        await enqueue_due(BASE)
        assert [r.night for r in await runs_of(fine)] == [due_night(BASE, "Europe/London")]
    finally:
        await broken.delete()


# --- two real clocks -------------------------------------------------------------------


def far_from_02_00(zone: str, now: datetime) -> bool:
    """Whether the zone's 02:00 is not within minutes of `now` (the night cannot turn
    during the test)."""
    return all(due_night(now + timedelta(minutes=m), zone) == due_night(now, zone) for m in (-5, 5))


async def read_until(proc: asyncio.subprocess.Process, needle: str, seen: list[str]) -> None:
    assert proc.stdout is not None
    while not any(needle in line for line in seen):
        line = await proc.stdout.readline()
        if not line:
            raise AssertionError(f"{needle!r} never appeared in:\n{''.join(seen)}")
        seen.append(line.decode())


async def test_two_clock_processes_record_one_run_per_office_and_night():
    """R18: two `crm clock` processes at once both tick at start; each office gets exactly
    one NIGHTLY run for the night due."""
    now = datetime.now(UTC)
    zones = [zone for zone in ZONES if far_from_02_00(zone, now)][:3]
    mine = await offices(*zones)
    # REDIS_URL unset: what the clocks enqueue stays in their own processes.
    env = {**os.environ, "REDIS_URL": "", "LOG_LEVEL": "INFO"}
    procs = [
        await asyncio.create_subprocess_exec(
            *CRM_CLOCK,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs: list[list[str]] = [[], []]
    try:
        for proc, seen in zip(procs, outputs, strict=True):
            await asyncio.wait_for(read_until(proc, "clock started", seen), 60)
        # Both tick at start, each saying so once its first tick is done.
        for proc, seen in zip(procs, outputs, strict=True):
            await asyncio.wait_for(read_until(proc, "first tick done", seen), 60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all([await AuditRun.filter(office_id=o.id).exists() for o in mine]):
                break
            await asyncio.sleep(0.05)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc, seen in zip(procs, outputs, strict=True):
            try:
                rest = await asyncio.wait_for(proc.stdout.read(), 30)
                seen.append(rest.decode())
                await asyncio.wait_for(proc.wait(), 30)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
    for proc, seen in zip(procs, outputs, strict=True):
        text = "".join(seen)
        assert proc.returncode == 0, text
        assert "clock tick failed" not in text and "Traceback" not in text, text
    for office in mine:
        runs = await runs_of(office)
        assert [(r.trigger, r.night) for r in runs] == [
            (AuditTrigger.NIGHTLY, due_night(now, office.timezone))
        ], office.timezone
