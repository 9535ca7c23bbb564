"""A queued run's result crosses the broker as JSON and comes back as the same typed value."""

from __future__ import annotations

from segport import AlreadyRunning, ExitStatus, RunError
from segport.executor import TaskResult
from segport.models import Run, RunStatus


def test_a_task_result_survives_its_json_round_trip() -> None:
    failed = TaskResult(run={"id": 7, "status": "failed"}, error="run 7: the key was revoked",
                        exit_status=ExitStatus.AUTH_ERROR)
    assert TaskResult.from_dict(failed.to_dict()) == failed and failed.run_id == 7
    joined = TaskResult(run={"id": 3}, joined=True)
    assert TaskResult.from_dict(joined.to_dict()) == joined and joined.exit_status is ExitStatus.OK


def test_an_error_without_a_known_failing_status_is_a_failed_run() -> None:
    assert TaskResult.from_dict({"error": "boom", "exit_status": 0}).exit_status is ExitStatus.RUN_FAILED
    assert TaskResult.from_dict({"error": "boom", "exit_status": 99}).exit_status is ExitStatus.RUN_FAILED
    assert TaskResult.from_dict({"error": "boom"}).exit_status is ExitStatus.RUN_FAILED
    assert TaskResult.from_dict({}).run_id is None


def test_errors_declare_the_run_they_ended_and_the_lock_holder() -> None:
    error = RunError("the platform went away")
    assert error.run is None
    error.run = Run(1, "vip", RunStatus.FAILED, "manual", "ada", "2026-12-07T00:00:00+00:00")
    assert error.run.status is RunStatus.FAILED
    assert AlreadyRunning("busy").holder is None and AlreadyRunning("busy", holder=4).holder == 4
