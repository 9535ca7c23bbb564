"""The Celery executor: runs queued on a broker, executed by ``segport worker`` processes.

With ``SEGPORT_BROKER_URL`` set (e.g. ``redis://127.0.0.1:6379/0``), ``exports run``, ``refresh`` and
the scheduler enqueue runs instead of running them in-process. A queued run is a self-contained task,
:class:`RunJob`: the export's name, the workspace home, the database URL without its password (if
any), the trigger and the acting user. No secret travels: the worker opens the workspace itself, with
the key file in its home or ``SEGPORT_SECRET_KEY``, and returns the run record only.

Delivery: late acknowledgement (``task_acks_late``) and ``task_reject_on_worker_lost``, one message
prefetched per process. A worker killed mid-run never acknowledges its message: a pool child lost
under a living worker is requeued at once; a whole worker killed leaves it unacknowledged in Redis,
which hands it to another worker after the visibility timeout (``SEGPORT_VISIBILITY_TIMEOUT``, one
hour by default: a run must end within it or a second worker joins it, see below). The new run finds
the killed one stale (its pid is dead), marks it ``interrupted`` and sends only what was not
committed.

Two deliveries of one export at once (a redelivery while the first still runs, or two queued runs)
never overlap: the store's run lock refuses the second, whose task then *joins* the running run. It
retries every few seconds until that run ends and returns its record if it succeeded (or ended
partial); if it was interrupted or failed, the task runs the export itself.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import AlreadyRunning, ConfigError, ExecutorError, ExitStatus, SegportError
from .extras import install_hint
from .governor import BROKER_ENV
from .models import RunStatus
from .urls import without_password

VISIBILITY_ENV = "SEGPORT_VISIBILITY_TIMEOUT"
QUEUE = "segport"
TASK = "segport.run_export"
JOIN_RETRY_S = 2.0  # how often a task waiting for a running run of its export looks again


@dataclass(frozen=True)
class RunJob:
    """Everything a worker needs to run an export; no secrets."""

    export: str
    home: str
    user: str
    trigger: str = "manual"
    full: bool = False
    database_url: str | None = None
    joining: int | None = field(default=None)  # the run of another delivery this task waits for

    def to_dict(self) -> dict[str, Any]:
        """Return the job as JSON-ready data, the task's argument."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunJob:
        """Rebuild a job from :meth:`to_dict` data, ignoring keys this version does not know."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class TaskResult:
    """What a queued run's task returns (as JSON through the result backend).

    :param run: the run record (``Run.to_dict()``), when a run was recorded.
    :param error: the one-line error when the run failed or could not start.
    :param exit_status: the exit status the CLI would have had running it in-process.
    :param joined: the task found a run of its export in progress and returns that run's record.
    """

    run: dict[str, Any] | None = None
    error: str | None = None
    exit_status: ExitStatus = ExitStatus.OK
    joined: bool = False

    @property
    def run_id(self) -> int | None:
        """The id of the recorded run, or None when no run was recorded."""
        return int(self.run["id"]) if self.run is not None else None

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data for the result backend."""
        return {"run": self.run, "error": self.error, "exit_status": int(self.exit_status), "joined": self.joined}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskResult:
        """Rebuild a result from :meth:`to_dict` data; an unknown status reads as a failed run."""
        error, status = data.get("error"), data.get("exit_status")
        exit_status = ExitStatus.RUN_FAILED  # unknown, or "ok" beside an error: the run did not succeed
        if isinstance(status, int) and status in ExitStatus._value2member_map_ and (status or not error):
            exit_status = ExitStatus(status)
        return cls(data.get("run"), error, exit_status, bool(data.get("joined")))


def broker_url() -> str | None:
    """``SEGPORT_BROKER_URL``, or None: runs stay in-process."""
    return os.environ.get(BROKER_ENV) or None


class Executor:
    """A Celery app on one broker: enqueues runs, waits for them, and serves as the worker's app."""

    def __init__(self, broker: str) -> None:
        try:
            from celery import Celery
        except ImportError as exc:
            raise self.missing(exc) from None
        self.broker = broker
        visibility = float(os.environ.get(VISIBILITY_ENV) or 3600)
        transport = {
            "visibility_timeout": visibility,
            "unacked_restore_interval": max(1, min(10, int(visibility / 4))),
            "unacked_restore_throttle": 1,
        }
        self.app = Celery("segport", broker=broker, backend=broker, set_as_current=False)
        self.app.conf.update(
            task_acks_late=True,
            task_reject_on_worker_lost=True,
            worker_prefetch_multiplier=1,
            task_serializer="json",
            result_serializer="json",
            accept_content=["json"],
            result_accept_content=["json"],
            task_default_queue=QUEUE,
            task_track_started=True,
            broker_transport_options=transport,
            result_backend_transport_options=transport,
            broker_connection_retry_on_startup=True,
            task_publish_retry_policy={
                "max_retries": 2,
                "interval_start": 0,
                "interval_step": 0.2,
                "interval_max": 0.5,
            },
            result_expires=7 * 24 * 3600,
            worker_hijack_root_logger=False,
            enable_utc=True,
        )
        self.app.task(name=TASK, bind=True, max_retries=None, acks_late=True)(_run_task)
        self._load_transport()

    def _load_transport(self) -> None:
        """Import the broker's transport and its client library now (no connection is made).

        A module they need that is missing is then an install step, not an unreachable broker.
        """
        try:
            if self.broker.partition(":")[0].lower() in ("redis", "rediss"):
                import redis  # noqa: F401  (kombu would say only "Missing redis library")
            with self.app.connection_for_write() as conn:
                conn.transport  # noqa: B018  (the property imports and builds the transport)
        except ImportError as exc:
            raise self.missing(exc) from None
        except Exception:  # an unknown scheme, a malformed URL: check() and enqueue() report the broker
            pass

    @staticmethod
    def missing(exc: ImportError) -> ConfigError:
        """Return the error for a module the workers extra brings that cannot be imported: what to install."""
        return ConfigError(
            f"{BROKER_ENV} is set, but {install_hint(exc, 'workers')}; or unset {BROKER_ENV} to run exports in-process"
        )

    @classmethod
    def from_env(cls) -> Executor | None:
        """Return the executor of ``SEGPORT_BROKER_URL``, or None when unset (runs stay in-process)."""
        url = broker_url()
        return cls(url) if url else None

    def unreachable(self) -> ExecutorError:
        """Return the error for a broker that does not answer (its password hidden)."""
        shown = without_password(self.broker, "***")
        return ExecutorError(
            f"cannot reach the broker at {BROKER_ENV}={shown}: start Redis (redis-server) or fix "
            f"{BROKER_ENV}; unset it to run exports in-process"
        )

    def check(self) -> None:
        """Raise :class:`ExecutorError` unless the broker answers."""
        try:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, timeout=5)
        except ImportError as exc:
            raise self.missing(exc) from None
        except Exception:
            raise self.unreachable() from None

    def enqueue(self, job: RunJob) -> str:
        """Queue one run; returns the task id."""
        try:
            result = self.app.send_task(TASK, kwargs={"job": job.to_dict()}, queue=QUEUE)
        except ImportError as exc:
            raise self.missing(exc) from None
        except Exception:  # kombu's OperationalError, redis errors: never with the URL's password
            raise self.unreachable() from None
        return str(result.id)

    def wait(self, task_id: str, timeout: float | None = None) -> TaskResult:
        """Wait for a queued run and return its :class:`TaskResult`."""
        from celery.exceptions import TimeoutError as CeleryTimeout

        try:
            result = self.app.AsyncResult(task_id)
            value = result.get(timeout=timeout, propagate=False, interval=0.2)
        except CeleryTimeout:
            raise ExecutorError(f"task {task_id} did not finish within {timeout}s: see 'segport runs list'") from None
        except ImportError as exc:
            raise self.missing(exc) from None
        except Exception:
            raise self.unreachable() from None
        if isinstance(value, dict):
            return TaskResult.from_dict(value)
        return TaskResult(  # the task raised (a bug): its traceback is in the worker's log
            run=None,
            error=f"the worker failed running task {task_id} ({type(value).__name__}): see the worker's log",
            exit_status=ExitStatus.RUN_FAILED,
        )


def open_workspace(job: RunJob) -> Any:
    """Open the workspace a task names, as its user (the secret key is the worker's)."""
    from .workspace import Workspace

    options: dict[str, Any] = {}
    if job.database_url is not None:
        options["database_url"] = _database_url(job.database_url)
    return Workspace.open(job.home, user=job.user, **options)


def _database_url(url: str) -> str:
    """Return the task's database URL; the worker's own ``SEGPORT_DATABASE_URL`` supplies its password."""
    own = os.environ.get("SEGPORT_DATABASE_URL")
    return own if own and without_password(own) == url else url


def execute(job: RunJob) -> TaskResult:
    """Run one job in this process and return the task result.

    Raises :class:`AlreadyRunning` with the id of the run holding the export's lock in ``holder``
    when another run is in progress.
    """
    with open_workspace(job) as ws:
        if job.joining is not None:
            joined = ws.store.get_run(job.joining)
            if joined.status is RunStatus.RUNNING:
                ws.store.reap_stale_runs()
                joined = ws.store.get_run(job.joining)
            if joined.status is RunStatus.RUNNING:
                raise AlreadyRunning(f"run {joined.id} of export {job.export!r} is still running")
            if joined.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL):
                return TaskResult(run=joined.to_dict(), joined=True)
        try:
            run = ws.run_export(job.export, full=job.full, trigger=job.trigger)
        except AlreadyRunning as exc:
            running = [r for r in ws.store.list_runs(job.export, 20) if r.status is RunStatus.RUNNING]
            exc.holder = exc.holder or (running[0].id if running else None)
            raise
        except SegportError as exc:
            record = exc.run.to_dict() if exc.run is not None else None
            return TaskResult(run=record, error=str(exc), exit_status=exc.exit_status)
        return TaskResult(run=run.to_dict())


def _run_task(task: Any, job: dict[str, Any]) -> dict[str, Any]:
    """Run the job as the Celery task; join a run of the same export already in progress.

    A message the broker hands out again after its task finished (the run outlived the visibility
    timeout, so the message was restored while it ran) returns the stored result instead of
    starting another run of the export.
    """
    finished = _finished_result(task)
    if finished is not None:
        return finished
    parsed = RunJob.from_dict(job)
    try:
        return execute(parsed).to_dict()
    except AlreadyRunning as exc:
        holder = exc.holder if exc.holder is not None else parsed.joining
        if holder is None:  # the lock was held a moment ago and is free now: try again
            holder = parsed.joining
        retry = RunJob(**{**parsed.to_dict(), "joining": holder})
        raise task.retry(kwargs={"job": retry.to_dict()}, countdown=JOIN_RETRY_S, max_retries=None) from None


def _finished_result(task: Any) -> dict[str, Any] | None:
    """Return this very task's stored result when it already ran to its end, else None."""
    try:
        previous = task.AsyncResult(task.request.id)
        if previous.state == "SUCCESS" and isinstance(previous.result, dict):
            result: dict[str, Any] = previous.result
            return result
    except Exception:  # the result backend cannot say: run the task as usual
        return None
    return None
