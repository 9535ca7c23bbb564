"""Cron validation, the scheduler's clock, and a clean scheduler exit on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from segport import InputError, Workspace
from segport.scheduling import Scheduler, in_zone, next_fire, next_fires, split_schedule, validate_cron

T0 = datetime(2026, 11, 25, 2, 59, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("bad", ["", "every day", "* * * *", "61 * * * *", "* * * * * *", "0 25 * * *",
                                 "0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *"])
def test_bad_cron_is_an_input_error(bad: str) -> None:
    with pytest.raises(InputError, match="invalid cron schedule") as info:
        validate_cron(bad)
    assert "\n" not in str(info.value)


def test_a_cron_line_that_never_fires_is_refused_in_one_line() -> None:
    with pytest.raises(InputError) as info:
        validate_cron("0 0 30 2 *", now=T0)
    assert str(info.value) == ("invalid cron schedule '0 0 30 2 *': it never fires within the next 5 years"
                               " (check the day and the month: e.g. 30 February and 31 April do not exist)")


def test_a_rare_but_real_date_is_accepted() -> None:
    assert validate_cron("0 0 29 2 *", now=T0) == "0 0 29 2 *"  # 29 February 2028
    assert validate_cron("0 0 29 2 *", now=datetime(2028, 3, 1, tzinfo=timezone.utc)) == "0 0 29 2 *"  # in 2032


def test_cron_is_normalised_and_fires_on_time() -> None:
    assert validate_cron("  0   3 * * * ") == "0 3 * * *"
    assert next_fire("0 3 * * *", T0) == datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)


def test_due_jobs_between_two_ticks() -> None:
    jobs = {"refresh": "0 3 * * *", "export:a": "*/5 * * * *", "export:b": "0 4 * * *"}
    scheduler = Scheduler(lambda: jobs, lambda _: None, lambda *_: None)
    assert scheduler.due(T0, T0 + timedelta(seconds=31)) == ["export:a", "refresh"]
    assert scheduler.due(T0 + timedelta(seconds=31), T0 + timedelta(seconds=60)) == []


def test_run_fires_due_jobs_reports_errors_and_stops() -> None:
    clock = iter([T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)] + [T0 + timedelta(minutes=3)] * 1000)
    fired: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def fire(job: str) -> None:
        fired.append(job)
        if len(fired) >= 3:
            stop.set()
        if job == "export:bad":
            raise RuntimeError("boom")

    scheduler = Scheduler(lambda: {"refresh": "0 3 * * *", "export:bad": "* * * * *"}, fire,
                          lambda job, exc: errors.append(f"{job}: {exc}"), clock=lambda: next(clock), stop=stop)
    scheduler.run(tick=0.001)
    assert fired == ["export:bad", "refresh", "export:bad"]
    assert errors == ["export:bad: boom", "export:bad: boom"]


def test_a_broken_cron_line_is_reported_once_and_the_other_jobs_go_on() -> None:
    """A line stored before such lines were refused (30 February) must not stop the scheduler."""
    clock = iter([T0 + timedelta(minutes=i) for i in range(4)] + [T0 + timedelta(minutes=4)] * 1000)
    jobs = {"refresh": "0 0 30 2 *", "export:a": "* * * * *", "export:b": "* * * * *"}
    fired: list[str] = []
    errors: list[tuple[str, BaseException]] = []
    succeeded: list[str] = []
    stop = threading.Event()

    def fire(job: str) -> None:
        fired.append(job)
        if len(fired) >= 6:
            stop.set()
        if job == "export:a":
            raise RuntimeError("the platform is down")

    scheduler = Scheduler(lambda: jobs, fire, lambda job, exc: errors.append((job, exc)),
                          on_success=succeeded.append, clock=lambda: next(clock), stop=stop)
    scheduler.run(tick=0.001)
    assert fired == ["export:a", "export:b"] * 3
    assert succeeded == ["export:b"] * 3
    assert [job for job, _ in errors] == ["refresh", "export:a", "export:a", "export:a"]
    bad_cron = str(errors[0][1])
    assert isinstance(errors[0][1], InputError) and "'0 0 30 2 *' has no next time" in bad_cron
    assert "segport schedule set CRON" in bad_cron


def test_jobs_that_cannot_be_read_do_not_stop_the_scheduler() -> None:
    clock = iter([T0 + timedelta(minutes=i) for i in range(4)] + [T0 + timedelta(minutes=4)] * 1000)
    reads = iter([OSError("database is locked"), {"export:a": "* * * * *"}, {"export:a": "* * * * *"}])
    errors: list[str] = []
    fired: list[str] = []
    stop = threading.Event()

    def jobs() -> dict[str, str]:
        answer = next(reads, None)
        if answer is None:
            stop.set()
            return {}
        if isinstance(answer, Exception):
            raise answer
        return answer

    Scheduler(jobs, fired.append, lambda job, exc: errors.append(f"{job}: {exc}"), clock=lambda: next(clock),
              stop=stop).run(tick=0.001)
    assert errors == ["jobs: database is locked"]
    assert fired == ["export:a", "export:a"]  # what was due while unreadable fires next tick


def test_the_first_tick_catches_up_on_what_was_due_since_a_given_time() -> None:
    """``since`` (the hidden ``scheduler --catch-up SECONDS``): jobs due before the start fire at the first tick."""
    fired: list[str] = []
    stop = threading.Event()
    jobs = {"export:a": "* * * * *", "refresh": "0 3 * * *"}  # due at 03:00; the scheduler starts at 03:00:10

    def fire(job: str) -> None:
        fired.append(job)
        if len(fired) == 2:
            stop.set()

    Scheduler(lambda: jobs, fire, lambda job, exc: None,
              clock=lambda: T0 + timedelta(seconds=40), stop=stop).run(tick=0.001, since=T0)
    assert fired == ["export:a", "refresh"]
    stop.clear()
    late = threading.Thread(target=lambda: (time.sleep(0.2), stop.set()))
    late.start()
    Scheduler(lambda: jobs, fired.append, lambda job, exc: None, clock=lambda: T0 + timedelta(seconds=40),
              stop=stop).run(tick=0.001)  # without since: nothing was due after the start
    late.join()
    assert fired == ["export:a", "refresh"]


def test_scheduler_command_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Workspace.create(home, "ada").close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGPORT_")}
    env.update(SEGPORT_HOME=str(home), SEGPORT_USER="ada")
    process = subprocess.Popen([sys.executable, "-m", "segport", "scheduler", "--tick", "0.1"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "scheduler started" in line or time.monotonic() > deadline
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "scheduler stopped" in out
    assert "Traceback" not in err


# -- aliases, time zones and daylight saving time (issue 16) ----------------------------------------
def test_aliases_are_accepted_and_fire_like_their_cron_lines() -> None:
    start = datetime(2027, 1, 13, 10, 30, tzinfo=timezone.utc)  # a Wednesday
    expected = {
        "@hourly": datetime(2027, 1, 13, 11, 0, tzinfo=timezone.utc),
        "@daily": datetime(2027, 1, 14, 0, 0, tzinfo=timezone.utc),
        "@weekly": datetime(2027, 1, 17, 0, 0, tzinfo=timezone.utc),
        "@monthly": datetime(2027, 2, 1, 0, 0, tzinfo=timezone.utc),
    }
    for alias, first in expected.items():
        assert validate_cron(alias.upper(), now=start) == alias
        assert next_fire(alias, start) == first


def test_a_zoned_schedule_fires_at_its_wall_time_across_daylight_saving_time() -> None:
    paris = validate_cron("0 3 * * *", timezone_name="Europe/Paris")
    assert paris == "CRON_TZ=Europe/Paris 0 3 * * *"
    start = datetime(2027, 3, 26, 12, tzinfo=timezone.utc)  # clocks go forward on 28 March at 02:00
    assert [t.isoformat() for t in next_fires(paris, start, 3)] == [
        "2027-03-27T02:00:00+00:00", "2027-03-28T01:00:00+00:00", "2027-03-29T01:00:00+00:00"]
    # 02:30 does not exist on 28 March: it fires once, when the clocks jump (03:00 CEST = 01:00 UTC)
    skipped = next_fires("CRON_TZ=Europe/Paris 30 2 * * *", start, 3)
    assert [t.isoformat() for t in skipped] == [
        "2027-03-27T01:30:00+00:00", "2027-03-28T01:00:00+00:00", "2027-03-29T00:30:00+00:00"]
    # 02:30 happens twice on 31 October: it fires once, the first time
    autumn = next_fires("CRON_TZ=Europe/Paris 30 2 * * *", datetime(2027, 10, 30, 12, tzinfo=timezone.utc), 2)
    assert [t.isoformat() for t in autumn] == ["2027-10-31T00:30:00+00:00", "2027-11-01T01:30:00+00:00"]
    # from inside the repeated hour, the next time is after it, never in the past
    inside = datetime(2027, 10, 31, 1, 10, tzinfo=timezone.utc)  # 02:10 CET, the second 02:10
    assert next_fire("CRON_TZ=Europe/Paris 30 * * * *", inside) == datetime(2027, 10, 31, 2, 30, tzinfo=timezone.utc)


def test_the_scheduler_fires_a_zoned_job_at_its_wall_time() -> None:
    before = datetime(2027, 7, 1, 6, 59, tzinfo=timezone.utc)  # 08:59 in Paris (CEST)
    after = datetime(2027, 7, 1, 7, 0, tzinfo=timezone.utc)
    scheduler = Scheduler(lambda: {"export:a": "CRON_TZ=Europe/Paris 0 9 * * *", "export:b": "0 9 * * *"},
                          lambda _job: None, lambda _job, _exc: None)
    assert scheduler.due(before, after) == ["export:a"]


def test_unknown_time_zones_and_bad_lines_are_refused() -> None:
    with pytest.raises(InputError, match="unknown time zone 'Europe/Pariss'"):
        validate_cron("0 3 * * *", timezone_name="Europe/Pariss")
    with pytest.raises(InputError, match="@hourly, @daily"):
        validate_cron("@fortnightly")
    assert in_zone("CRON_TZ=Asia/Tokyo @daily", "UTC") == "@daily"
    assert validate_cron("CRON_TZ=Asia/Tokyo 0 3 * * *", timezone_name="UTC") == "0 3 * * *"
    assert split_schedule("CRON_TZ=Asia/Tokyo 0 3 * * *") == ("0 3 * * *", "Asia/Tokyo")
