"""Progress lines without a terminal: a start line, then a timer's line every interval, batch or not."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace
from typing import Any, Callable

from segport.cli._progress import ProgressLines


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30  # generous: this only bounds a failing test, it asserts no timing
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert condition()


def test_lines_come_from_a_timer_and_give_an_eta_only_once_a_batch_completed() -> None:
    out = io.StringIO()
    progress = ProgressLines(0.01, file=out)
    run: Any = SimpleNamespace(id=7, plan={"selected": 3000}, counts={})
    export: Any = SimpleNamespace(name="news")
    progress.segport_before_send(run=run, export=export)

    def lines() -> list[str]:
        return out.getvalue().splitlines()

    try:
        wait_for(lambda: len(lines()) >= 3)  # no batch yet: the timer prints anyway
        waiting = lines()
        assert all(line.endswith(": 0/3,000 (0%) records, ETA unknown") for line in waiting), waiting
        run.counts = {"created": 500}
        progress.segport_after_batch(run=run, export=export, result=SimpleNamespace(outcomes=[]))
        wait_for(lambda: "records/s" in lines()[-1])
        assert " progress: export news run 7: 500/3,000 (17%) records, " in lines()[-1]
        assert "ETA unknown" not in lines()[-1]
    finally:
        run.counts = {"created": 3000}
        progress.segport_after_run(run=run, export=export)
    assert progress.timer is None
    ended = len(lines())
    assert lines()[-1].split(": ", 2)[2].startswith("3,000/3,000 (100%) records")
    time.sleep(0.05)
    assert len(lines()) == ended  # the timer stopped with the run
