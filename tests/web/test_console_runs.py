"""Runs started from the console: recorded before the answer, followed live, stopped cleanly with the server."""

from __future__ import annotations

import time
from typing import Callable

import pytest

from segport import Workspace
from segport.errors import RunError
from segport.testing.fakes import MemoryPlatform
from segport.web.runner import ConsoleRuns


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def runs(web_ws: Workspace, database_url: str | None) -> ConsoleRuns:
    return ConsoleRuns(web_ws.home, database_url, executor=None)


def test_a_console_run_is_recorded_as_its_user_and_lands(
    runs: ConsoleRuns, web_ws: Workspace, memory_export: Callable[[Workspace, int], None], platform: MemoryPlatform
) -> None:
    memory_export(web_ws, 25)
    started = runs.start(web_ws, "all")
    assert started.run_id is not None and started.task_id is None
    wait_until(lambda: web_ws.get_run(started.run_id).status.value != "running")  # type: ignore[arg-type]
    run = web_ws.get_run(started.run_id)  # type: ignore[arg-type]
    assert (run.status.value, run.user, run.trigger, run.counts["created"]) == ("succeeded", "ada", "manual", 25)
    assert len(platform.sent_emails()) == 25


def test_a_refused_run_is_the_services_error_and_records_nothing(
    runs: ConsoleRuns, web_ws: Workspace, memory_export: Callable[[Workspace, int], None]
) -> None:
    memory_export(web_ws, 5)
    web_ws.set_export_enabled("all", False)
    with pytest.raises(RunError, match="disabled"):
        runs.start(web_ws, "all")
    assert web_ws.list_runs() == []


def test_a_stopping_server_stops_its_runs_after_their_batch(
    runs: ConsoleRuns, web_ws: Workspace, memory_export: Callable[[Workspace, int], None], platform: MemoryPlatform
) -> None:
    memory_export(web_ws, 200)
    platform.latency = 0.05  # 20 batches of 10: about a second
    started = runs.start(web_ws, "all")
    assert started.run_id is not None
    wait_until(lambda: (runs.live(started.run_id) or web_ws.get_run(started.run_id)).counts.get("created", 0) > 0)  # type: ignore[arg-type]
    runs.stop()
    run = web_ws.get_run(started.run_id)
    assert run.status.value == "interrupted"
    assert 0 < run.counts["created"] < 200
    assert run.counts["created"] <= len(platform.sent_emails()) < 200  # batches in flight may be unrecorded
    assert runs.live(started.run_id) is None
    platform.latency = 0.0
    resumed = web_ws.run_export("all")  # the next run resumes: the rest lands, nobody twice at the platform
    assert resumed.status.value == "succeeded"
    assert sorted(platform.members) == sorted(f"user{i}@example.com" for i in range(200))
