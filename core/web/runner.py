"""Runs started from the console or the API: in threads of the server, or queued for workers.

In-process (no broker configured), each run gets its own workspace (its own database connection and
hook manager) in a thread; the request waits until the run is recorded, so it can answer with its id
(``202``), or until it failed before that (a disabled export, over its cap: the error is the answer).
While it runs, :class:`Tracker` keeps its counts from each committed batch for the run's page.
With a broker (``SEGPORT_BROKER_URL``), the run is queued as the CLI queues it: the answer carries the
task id, and the run appears in the history once a worker starts it.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..contract import BatchResult
from ..errors import ExecutorError, SegportError
from ..executor import Executor
from ..hookspecs import hookimpl
from ..models import Export, Run
from ..plugins import make_manager
from ..registry import Registry
from ..workspace import Workspace

START_WAIT_S = 60.0  # how long a request waits for its run to be recorded (reading segments of 1M profiles)
STOP_WAIT_S = 60.0  # how long a stopping server waits for its runs to reach the end of their batch in flight


@dataclass(frozen=True)
class Started:
    """A run started: its id when it runs in the server, the task id when it was queued for workers."""

    run_id: int | None
    task_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the start as JSON-ready data."""
        return {"run_id": self.run_id, "task_id": self.task_id}


class Tracker:
    """Hooks of one in-process run: its record as of the last committed batch.

    :param on_start: called with the run's record once it exists, before the waiting request wakes.
    """

    def __init__(self, on_start: Callable[[Run, Tracker], None], stopping: threading.Event) -> None:
        self.on_start = on_start
        self.stopping = stopping
        self.started = threading.Event()
        self.run: Run | None = None
        self.error: BaseException | None = None

    @hookimpl
    def segport_before_run(self, run: Run, export: Export) -> None:
        """Keep the run's record once it exists and wake the request waiting for its id."""
        self.run = copy.deepcopy(run)
        self.on_start(self.run, self)
        self.started.set()

    @hookimpl
    def segport_after_batch(self, run: Run, export: Export, result: BatchResult) -> None:
        """Keep the run's counts after each committed batch; stop the run there when the server stops."""
        self.run = copy.deepcopy(run)
        if self.stopping.is_set():
            raise KeyboardInterrupt("the server is stopping")  # recorded interrupted: the next run resumes it


class ConsoleRuns:
    """Start runs for signed-in users and follow the ones running in this server."""

    def __init__(
        self, home: Path, database_url: str | None, executor: Executor | None, registry: Registry | None = None
    ) -> None:
        self.home = home
        self.registry = registry  # the server's plugins (None: the process's default registry)
        self.database_url = database_url
        self.executor = executor
        self._live: dict[int, Tracker] = {}
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def start(self, ws: Workspace, export: str, *, full: bool = False, trigger: str = "manual") -> Started:
        """Start a run of ``export`` as ``ws``'s user (the same checks as the CLI's, first).

        :raises SegportError: the export may not or cannot run (the run, if recorded, says why).
        """
        if self.executor is not None:
            return Started(None, ws.queue_export(export, full=full, trigger=trigger))
        ws.runs.request(export, full=full, trigger=trigger)  # permission, enabled, config: refused here, in the request
        if self.stopping.is_set():
            raise ExecutorError("the server is stopping: start the run again once it is back")
        tracker = Tracker(self._follow, self.stopping)
        user = ws.context.user_name
        client = ws.store.audit_client
        thread = threading.Thread(
            target=self._run, args=(tracker, user, client, export, full, trigger), name=f"run-{export}", daemon=True
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()
        tracker.started.wait(START_WAIT_S)
        if tracker.run is None:
            thread.join(0.5)
            if isinstance(tracker.error, SegportError):
                raise tracker.error
            if tracker.error is not None:
                raise SegportError(f"the run of {export!r} could not start: {tracker.error}")
            return Started(None)  # still selecting after a minute: it shows in the history when it starts
        return Started(tracker.run.id)

    def live(self, run_id: int) -> Run | None:
        """Return the record of a run going on in this server, as of its last batch (None: not here)."""
        with self._lock:
            tracker = self._live.get(run_id)
        return tracker.run if tracker is not None else None

    def _run(
        self, tracker: Tracker, user: str | None, client: str | None, export: str, full: bool, trigger: str
    ) -> None:
        pm = make_manager()
        pm.register(tracker)
        try:
            with Workspace.open(self.home, user, database_url=self.database_url, pm=pm, registry=self.registry) as ws:
                ws.store.audit_client = client
                ws.run_export(export, full=full, trigger=trigger)
        except BaseException as exc:  # the thread's end: kept for the waiting request (a failed run is recorded)
            tracker.error = exc
        finally:
            tracker.started.set()
            with self._lock:
                self._threads.discard(threading.current_thread())
                if tracker.run is not None:
                    self._live.pop(tracker.run.id, None)

    def stop(self, timeout: float = STOP_WAIT_S) -> None:
        """Stop the runs going on here after their batch in flight (recorded interrupted, resumable); wait for them."""
        self.stopping.set()
        with self._lock:
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _follow(self, run: Run, tracker: Tracker) -> None:
        with self._lock:
            self._live[run.id] = tracker
