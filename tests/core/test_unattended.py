"""Unattended use, end to end: progress lines without a terminal, SIGTERM, schedules and zones, segport.toml."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from segport.testing.files import write_rows
from segport.testing.operator import Operator
from segport_mailchimp.sandbox import MailchimpSandbox

pytestmark = pytest.mark.e2e

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"
PROGRESS = re.compile(
    rf"^{STAMP} progress: export news run \d+: [\d,]+/[\d,]+ \(\d+%\) records, "
    r"(ETA unknown|[\d,]+ records/s, ETA (-|\d+s|\d+m\d\ds|\d+h\d\dm))$"
)


@pytest.fixture
def sandbox() -> Iterator[MailchimpSandbox]:
    server = MailchimpSandbox(seed=5)
    server.start()
    yield server
    server.stop()


def email(i: int) -> str:
    return f"person{i}@shop.segport-test.net"


def setup(tmp_path: Path, sandbox: MailchimpSandbox, count: int, database_url: str | None) -> Operator:
    op = Operator.init(tmp_path / "ws", database_url=database_url)
    rows = ([f"p{i:05d}", email(i), f"First{i}"] for i in range(count))
    op("profiles", "load", str(write_rows(tmp_path / "profiles.csv", ["id", "email", "first_name"], rows)))
    op("segments", "define", "All", "--where", "email is not empty")
    op("connections", "add", "mc", "--type", "mailchimp", "--agree-privacy",
       "--config", json.dumps(sandbox.demo_connection()))
    audience = sandbox.demo_export_options()["audience_id"]
    op("exports", "add", "news", "--connection", "mc", "--segment", "All", "--email", "email",
       "--map", "FNAME=first_name", "--option", f"audience_id={audience}")
    return op


def members(sandbox: MailchimpSandbox) -> dict[str, Any]:
    audience = sandbox.demo_export_options()["audience_id"]
    found: dict[str, Any] = sandbox.state()["lists"][audience]["members"]
    return found


def test_a_run_without_a_terminal_prints_timestamped_progress_lines(
    tmp_path: Path, sandbox: MailchimpSandbox
) -> None:
    op = setup(tmp_path, sandbox, 3000, None)
    sandbox.set_faults(latency_ms=20)
    op.env["SEGPORT_PROGRESS_INTERVAL"] = "0.001"  # a line every millisecond: no timing in the assertions
    result = op("exports", "run", "news")  # stderr is a pipe, not a terminal
    lines = [line for line in result.stderr.splitlines() if " progress: " in line]
    assert len(lines) >= 3, result.stderr
    assert all(PROGRESS.match(line) for line in lines), lines
    assert lines[-1].split(": ")[2].startswith("3,000/3,000 (100%)")
    with_rate = [index for index, line in enumerate(lines) if "records/s" in line]
    assert with_rate and all("ETA unknown" not in line for line in lines[with_rate[0]:])  # once measured, an ETA
    assert result.stderr.strip().splitlines() == lines  # nothing but progress lines on stderr
    op.env["SEGPORT_PROGRESS_INTERVAL"] = "soon"
    bad = op("exports", "run", "news", check=False)
    assert bad.returncode == 3 and bad.stderr.startswith("error: SEGPORT_PROGRESS_INTERVAL='soon'")


def test_a_short_run_without_a_terminal_prints_no_progress_line(tmp_path: Path, sandbox: MailchimpSandbox) -> None:
    op = setup(tmp_path, sandbox, 50, None)
    result = op("exports", "run", "news")  # the default interval (10 s) is longer than the run
    assert result.stderr == ""  # cron mails only long runs; a failing run's stderr stays its one error line


def test_sigterm_stops_a_run_cleanly_and_the_next_run_resumes_it(
    tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None, committed_so_far: Callable[..., int]
) -> None:
    op = setup(tmp_path, sandbox, 12000, database_url)
    sandbox.set_faults(latency_ms=150)
    process = subprocess.Popen(
        [sys.executable, "-m", "segport", "exports", "run", "news"],
        env=op.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while committed_so_far(op.home, database_url) < 1000 and time.monotonic() < deadline:  # 2+ batches in
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    sandbox.set_faults(latency_ms=0)
    assert process.returncode == 143, err
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert error_lines == [
        "error: terminated (SIGTERM): run 1 of news was stopped and recorded as interrupted; the next run resumes it"
    ], err
    stopped = json.loads(op("runs", "show", "1", "--json").stdout)
    assert stopped["status"] == "interrupted"
    committed = stopped["counts"]["created"]
    assert 1000 <= committed < 12000
    finished = op.run_json("news")
    assert finished["status"] == "succeeded"
    landed = members(sandbox)
    assert set(landed) == {email(i) for i in range(12000)}  # nothing lost
    assert all(landed[email(i)]["merge_fields"]["FNAME"] == f"First{i}" for i in range(12000))
    # only what the stopped run had not committed is sent again (the batches in flight at most twice)
    assert finished["counts"]["created"] + finished["counts"]["updated"] == 12000 - committed


def test_schedule_show_lists_each_schedule_once_with_its_next_runs(tmp_path: Path) -> None:
    op = Operator.init(tmp_path / "ws")
    assert op("schedule", "show").stdout == "refresh: (not set)\n"
    op("schedule", "set", "@daily", "--timezone", "Europe/Paris")
    out = op("schedule", "show", "--count", "2").stdout
    lines = out.splitlines()
    assert len(lines) == 1, out  # the system schedule, once
    assert lines[0].startswith("refresh: @daily (Europe/Paris)  next: ")
    times = lines[0].split("next: ")[1].split(", ")
    assert len(times) == 2
    for text in times:
        moment = datetime.fromisoformat(text)
        assert (moment.hour, moment.minute) == (0, 0) and moment.utcoffset() is not None
    shown = json.loads(op("schedule", "show", "--json").stdout)
    assert shown["refresh"] == "CRON_TZ=Europe/Paris @daily"
    assert shown["jobs"] == {"refresh": "CRON_TZ=Europe/Paris @daily"}
    [row] = shown["schedules"]
    assert row["job"] == "refresh" and row["cron"] == "@daily" and row["timezone"] == "Europe/Paris"
    assert len(row["next_runs"]) == 3 and row["active"] is True and row["failing"] is None
    for alias in ("@hourly", "@weekly", "@monthly"):
        assert json.loads(op("schedule", "set", alias, "--json").stdout) == {"refresh": alias}
    refused = op("schedule", "set", "0 3 * * *", "--timezone", "Mars/Olympus", check=False)
    assert refused.returncode == 4 and "unknown time zone 'Mars/Olympus'" in refused.stderr


def test_export_schedules_take_a_time_zone_and_are_listed(tmp_path: Path, sandbox: MailchimpSandbox) -> None:
    op = setup(tmp_path, sandbox, 1, None)
    add = ["exports", "add", "news2", "--connection", "mc", "--segment", "All", "--email", "email",
           "--option", "audience_id=abc"]
    added = json.loads(op(*add, "--schedule", "30 2 * * *", "--timezone", "America/New_York", "--json").stdout)
    assert added["schedule"] == "CRON_TZ=America/New_York 30 2 * * *"
    op("exports", "add", "off", *add[3:], "--schedule", "@weekly")
    op("exports", "disable", "off")
    lines = op("schedule", "show").stdout.splitlines()
    assert lines[0] == "refresh: (not set)"
    assert lines[1].startswith("export:news2: 30 2 * * * (America/New_York)  next: ")
    assert all(datetime.fromisoformat(t).strftime("%H:%M") == "02:30" for t in lines[1].split("next: ")[1].split(", "))
    assert lines[2] == "export:off: @weekly (UTC)  not fired: the export is disabled or detached"
    assert len(lines) == 3
    edited = json.loads(op("exports", "edit", "news2", "--timezone", "Asia/Tokyo", "--json").stdout)
    assert edited["schedule"] == "CRON_TZ=Asia/Tokyo 30 2 * * *"
    refused = op("exports", "edit", "news", "--timezone", "Asia/Tokyo", check=False)
    assert refused.returncode == 4 and "has no schedule" in refused.stderr
    edited = json.loads(op("exports", "edit", "news2", "--timezone", "UTC", "--json").stdout)
    assert edited["schedule"] == "30 2 * * *"


def test_segport_toml_holds_the_global_options(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    Operator.init(home)
    op = Operator(tmp_path / "elsewhere", user=None)
    del op.env["SEGPORT_HOME"]
    config = tmp_path / "conf" / "segport.toml"
    config.parent.mkdir()
    config.write_text(f'home = "{home}"\nas = "ada"\n', encoding="utf-8")
    op.env["SEGPORT_CONFIG"] = str(config)
    users = json.loads(op("users", "list", "--json").stdout)
    assert [u["name"] for u in users] == ["ada"]
    op.env["SEGPORT_USER"] = "nobody"  # the environment wins over the file
    assert op("users", "list", check=False).returncode == 5
    del op.env["SEGPORT_USER"]
    assert op("--as", "nobody", "users", "list", check=False).returncode == 5  # the command line too
    # the workspace folder's own segport.toml, found through SEGPORT_HOME
    del op.env["SEGPORT_CONFIG"]
    op.env["SEGPORT_HOME"] = str(home)
    (home / "segport.toml").write_text('user = "ada"\n', encoding="utf-8")
    assert op("users", "list").returncode == 0
    for text, words in (
        ('usr = "ada"\n', "unknown key 'usr'"),
        ('user = "ada\n', "is not valid TOML"),
        ("debug = 1\n", "'debug' must be true or false"),
    ):
        (home / "segport.toml").write_text(text, encoding="utf-8")
        result = op("users", "list", check=False)
        assert result.returncode == 3, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and words in result.stderr
    op.env["SEGPORT_CONFIG"] = str(tmp_path / "missing.toml")
    result = op("users", "list", check=False)
    assert result.returncode == 3 and "SEGPORT_CONFIG=" in result.stderr


def test_scheduler_lines_are_timestamped_and_sigterm_stops_its_run(
    tmp_path: Path, sandbox: MailchimpSandbox, database_url: str | None, committed_so_far: Callable[..., int]
) -> None:
    op = setup(tmp_path, sandbox, 12000, database_url)
    op("exports", "edit", "news", "--schedule", "* * * * *")
    sandbox.set_faults(latency_ms=150)
    process = subprocess.Popen(  # --catch-up: it fires at the first tick, not at the next minute
        [sys.executable, "-m", "segport", "scheduler", "--tick", "0.2", "--catch-up", "60"],
        env={**op.env, "SEGPORT_PROGRESS_INTERVAL": "0.001"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 150
        while committed_so_far(op.home, database_url) < 1000 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    sandbox.set_faults(latency_ms=0)
    assert process.returncode == 143, err
    lines = out.splitlines() + err.splitlines()
    stamped = [line for line in lines if not line.startswith("error: ")]
    assert all(re.match(rf"^{STAMP} ", line) for line in stamped), lines
    assert any(" scheduler started; jobs: export:news (* * * * *)" in line for line in stamped)
    assert any(" export:news: starting" in line for line in stamped)
    assert any(PROGRESS.match(line) for line in stamped)
    assert [line for line in lines if line.startswith("error: ")] == [
        "error: terminated (SIGTERM): run 1 of news was stopped and recorded as interrupted; the next run resumes it"
    ]
    assert json.loads(op("runs", "show", "1", "--json").stdout)["status"] == "interrupted"
    assert op.run_json("news")["status"] == "succeeded"
    assert len(members(sandbox)) == 12000
