"""The run-log hook plugin: one whole JSON line per run event, only when SEGPORT_RUN_LOG is set."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

import segport_runlog.appender
from segport import Registry, RunStatus, UnknownAudienceError, Workspace
from segport.plugins import make_manager
from segport.testing.fakes import MemoryPlatform
from segport_runlog import hooks

EXPORT = "vip-news"


@pytest.fixture
def ws(hooked_ws: Any) -> Workspace:
    """A workspace with the run log registered as a hook plugin and an export of 12 profiles."""
    workspace: Workspace = hooked_ws(hooks, export=EXPORT)
    return workspace


@pytest.fixture
def run_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "logs" / "nested" / "runs.jsonl"  # missing folders are created
    monkeypatch.setenv("SEGPORT_RUN_LOG", str(path))
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_nothing_is_written_when_the_variable_is_unset(
    ws: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = files_under(tmp_path) - files_under(ws.home)
    ws.run_export(EXPORT)
    assert files_under(tmp_path) - files_under(ws.home) == before
    assert hooks.log_path() is None
    assert not caplog.records


def test_a_succeeded_run_logs_started_and_finished(ws: Workspace, run_log: Path, platform: MemoryPlatform) -> None:
    platform.reject_emails = {"user3@example.com": "spam trap"}
    run = ws.run_export(EXPORT)

    started, finished = lines(run_log)
    assert started["event"] == "run.started" and finished["event"] == "run.finished"
    assert started["run"]["status"] == "running" and started["run"]["id"] == run.id
    assert finished["run"] == json.loads(json.dumps(run.to_dict()))
    assert finished["run"]["status"] == "succeeded"
    assert finished["run"]["counts"]["created"] == 11 and finished["run"]["counts"]["rejected"] == 1
    assert finished["run"]["reject_file"] == run.reject_file
    assert finished["export"] == {"name": EXPORT, "connection": "Newsletter", "segments": ["all"]}
    assert finished["at"].endswith("+00:00") and finished["at"] >= started["at"]
    assert "memory-key-0001" not in run_log.read_text(encoding="utf-8")


def test_a_failed_run_logs_its_status_and_error(ws: Workspace, run_log: Path, platform: MemoryPlatform) -> None:
    platform.audiences = {"other"}
    with pytest.raises(UnknownAudienceError):
        ws.run_export(EXPORT)

    finished = lines(run_log)[-1]
    assert finished["event"] == "run.finished"
    assert finished["run"]["status"] == RunStatus.FAILED.value
    assert "aud1" in finished["run"]["error"]


def test_a_dry_run_is_logged_as_planned(ws: Workspace, run_log: Path) -> None:
    ws.run_export(EXPORT, dry_run=True)
    assert [(e["event"], e["run"]["status"]) for e in lines(run_log)] == [
        ("run.started", "planned"),
        ("run.finished", "planned"),
    ]


def test_runs_append_to_an_existing_log(ws: Workspace, run_log: Path) -> None:
    run_log.parent.mkdir(parents=True)
    run_log.write_text('{"event": "earlier"}\n', encoding="utf-8")
    ws.run_export(EXPORT)
    ws.run_export(EXPORT)
    assert [e["event"] for e in lines(run_log)] == ["earlier"] + ["run.started", "run.finished"] * 2


def big_entry(writer: int, n: int) -> dict[str, Any]:
    """Larger than a pipe or stdio buffer, so a non-atomic append would show."""
    return {"writer": writer, "n": n, "pad": chr(ord("a") + writer % 26) * 20_000}


def check_whole(path: Path, writers: int, each: int) -> None:
    seen = set()
    for line in lines(path):
        assert line["pad"] == chr(ord("a") + line["writer"] % 26) * 20_000
        seen.add((line["writer"], line["n"]))
    assert seen == {(w, n) for w in range(writers) for n in range(each)}


def test_concurrent_threads_append_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"

    def write(writer: int) -> None:
        for n in range(100):
            segport_runlog.appender.append_line(path, big_entry(writer, n))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check_whole(path, 6, 100)


def test_concurrent_processes_append_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    script = (
        "import sys; from pathlib import Path; from segport_runlog.appender import append_line\n"
        "w = int(sys.argv[1])\n"
        "for n in range(100):\n"
        "    append_line(Path(sys.argv[2]), {'writer': w, 'n': n, 'pad': chr(97 + w % 26) * 20000})\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(w), str(path)]) for w in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0] * 4
    check_whole(path, 4, 100)


def test_an_unwritable_log_warns_once_and_the_run_succeeds(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("SEGPORT_RUN_LOG", str(blocker / "runs.jsonl"))

    with caplog.at_level(logging.WARNING):
        run = ws.run_export(EXPORT)

    assert run.status is RunStatus.SUCCEEDED
    [record] = caplog.records
    assert record.name == "segport_runlog" and record.levelno == logging.WARNING
    assert record.exc_info is None and "\n" not in record.getMessage()
    assert str(blocker / "runs.jsonl") in record.getMessage() and "SEGPORT_RUN_LOG" in record.getMessage()

    caplog.clear()
    ws.run_export(EXPORT)  # every run that cannot log says so, once
    assert len(caplog.records) == 1


def test_a_short_write_ends_the_fragment_and_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "runs.jsonl"
    real_write = os.write

    def short(fd: int, data: bytes) -> int:
        return real_write(fd, data[:5] if len(data) > 1 else data)

    monkeypatch.setattr(segport_runlog.appender.os, "write", short)
    with pytest.raises(OSError, match="only 5 of"):
        segport_runlog.appender.append_line(path, {"event": "x"})
    monkeypatch.setattr(segport_runlog.appender.os, "write", real_write)
    segport_runlog.appender.append_line(path, {"event": "y"})
    assert path.read_text(encoding="utf-8").splitlines() == ['{"eve', '{"event":"y"}']


def test_the_plugin_is_declared_and_autoloads_as_a_no_op(
    home: Path, registry: Registry, make_profiles: Any, caplog: pytest.LogCaptureFixture
) -> None:
    declared = {ep.name: ep.value for ep in entry_points(group="segport.hooks")}
    assert declared["runlog"] == "segport_runlog.hooks"
    pm = make_manager()  # autoload, as every CLI process does
    assert pm.get_plugin("runlog") is hooks
    workspace = Workspace.create(home, "ada", registry=registry, pm=pm)
    try:
        workspace.load_profiles(make_profiles(3))
        workspace.define_segment("all", "email is not empty")
        workspace.add_connection("c", "memory", {"api_key": "memory-key-0001"}, agree_privacy=True)
        workspace.add_export(
            "e", connection="c", segments=["all"], email_field="email", options={"audience_id": "aud1"}
        )
        assert workspace.run_export("e").status is RunStatus.SUCCEEDED
    finally:
        workspace.close()
    assert not [r for r in caplog.records if r.name.startswith(("segport_runlog", "segport_notify"))]
