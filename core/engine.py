"""One export run: select -> map -> plan -> batch -> dispatch -> commit per batch.

A run is self-contained (an export and a store), takes the export's lock, and commits each
acknowledged batch's outcomes and sync state in one transaction: a crashed run, run again,
resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping, Sequence

import pluggy
import requests

from .config import split_secrets, validate
from .contract import AuthHandler, BatchResult, Destination, Outcome, OutcomeStatus, Record, RunContext
from .dispatcher import TRANSIENT, Delivery, Dispatcher, Gate, RetryPolicy, governor
from .errors import CapExceeded, RetryableDestinationError, RunError, SegportError, WorkspaceError
from .governor import GovernedAdapter
from .mapper import Mapper
from .models import Connection, Export, Run, RunStatus
from .planner import PlanCounts, Reject, Remember, Send, Unchanged, markers_json, plan
from .plugins import notify
from .selection import Selection
from .store.database import now
from .store.interface import OutcomeRow, Snapshot, StateRow, Store

UNSENT_CHUNK = 5000  # steps decided without a request, committed together at most this many at a time
OUTCOME_KEYS = ("created", "updated", "unchanged", "skipped", "rejected", "failed")


@dataclass(frozen=True)
class RunRequest:
    """What to run and how."""

    export: Export
    connection: Connection
    destination: Destination
    config: Mapping[str, Any]  # validated, secrets included
    user: str
    trigger: str = "manual"
    full: bool = False
    dry_run: bool = False
    profile_cap: int = 0
    save_secrets: Callable[[Mapping[str, Any]], None] | None = None  # stores refreshed tokens


class ExportRun:
    """Executes one :class:`RunRequest` against a store; see :meth:`execute`. One instance per run."""

    def __init__(self, store: Store, pm: pluggy.PluginManager, home: Path, policy: RetryPolicy) -> None:
        self.store = store
        self.pm = pm
        self.home = home
        self.policy = policy

    def execute(self, request: RunRequest) -> Run:
        """Run (or plan, with ``dry_run``) and return the finished run record."""
        export, spec = request.export, request.destination.spec()
        options = validate(export.options, spec.export_schema, f"export {export.name!r} options")
        reader, selection = self._select(request)  # an over-cap export stops here: no run is recorded
        status = RunStatus.PLANNED if request.dry_run else RunStatus.RUNNING
        try:
            run = self.store.start_run(export, request.trigger, request.user, status)
        except BaseException:
            reader.close()
            raise
        run.counts = dict.fromkeys(OUTCOME_KEYS, 0)
        started = time.monotonic()
        session = requests.Session()
        # Each HTTP call holds a slot of the credential's call governor (besides the batch slots):
        # a batch of several calls, or a parallel pre-flight, never puts more calls in flight.
        calls = _gate(request, spec.limits.max_concurrency, "calls")
        adapter = GovernedAdapter(calls, pool_maxsize=spec.limits.max_concurrency)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        auth = session.auth = request.destination.auth(request.config)
        preflight = RequestCounter()  # counts the HTTP calls of prepare(); batches report their own
        try:
            with closing(reader), closing(session):
                context = RunContext(
                    export.name, options, list(export.segments), sorted(export.mapping), request.dry_run
                )
                writer = request.destination.writer(session, request.config, context)
                counts = PlanCounts(selected=selection.count)
                run.plan = counts.to_dict()
                notify(self.pm.hook.segport_before_run, run=run, export=export)
                mapper = Mapper(export.email_field, {**export.mapping, **request.destination.extra_fields(options)})
                steps = plan(reader, selection, export.id, mapper, full=request.full)
                with closing(steps):
                    if request.dry_run:
                        self._plan_only(steps, counts, writer.requests_for, spec.limits.batch_size, run)
                    else:
                        session.hooks["response"].append(preflight)
                        try:
                            self._prepare(writer, _gate(request, spec.limits.max_concurrency), run)
                        finally:
                            session.hooks["response"].remove(preflight)
                            run.requests += preflight.value
                        self._send(request, run, steps, counts, writer, spec.limits, mapper.fingerprint)
                        writer.finish()
                        failed = run.counts["failed"]
                        run.status = RunStatus.PARTIAL if failed else RunStatus.SUCCEEDED
                        if failed:
                            run.error = (
                                f"{failed} records still failed after {self.policy.attempts} tries; "
                                "the next run retries them"
                            )
        except SegportError as exc:
            self._keep_secrets(request, auth)
            self._finish(run, export, started, RunStatus.FAILED, str(exc))
            exc.run = run  # lets the CLI print the record too
            raise
        except KeyboardInterrupt:
            self._finish(run, export, started, RunStatus.INTERRUPTED, "stopped by the operator (SIGINT/SIGTERM)")
            raise
        except Exception as exc:
            self._finish(
                run, export, started, RunStatus.FAILED, f"internal error: {type(exc).__name__} (run with --debug)"
            )
            raise
        self._keep_secrets(request, auth)
        self._finish(run, export, started, run.status, run.error)
        return run

    def _select(self, request: RunRequest) -> tuple[Snapshot, Selection]:
        """The export's selection, materialised in a new snapshot of the workspace; the cap checked."""
        export = request.export
        segments = [self.store.get_segment(s) for s in export.segments]
        self.store.refresh_filter_caches(segments)
        reader = self.store.reader()
        try:
            selection = Selection(reader, segments)
            selected = selection.materialise()
            cap = request.profile_cap or request.destination.spec().limits.profile_cap
            if selected > cap:
                raise CapExceeded(
                    f"export {export.name!r} selects {selected:,} profiles, more than the cap of {cap:,} "
                    f"for connection {request.connection.name!r}: narrow its segments, or have an admin raise "
                    f"the cap to your contract's (segport connections set-cap {request.connection.name} N)"
                )
        except BaseException:
            reader.close()
            raise
        return reader, selection

    def _prepare(self, writer: Any, gate: Gate, run: Run) -> None:
        """The writer's pre-flight, holding a slot of the credential's governor; transient
        failures (429, 5xx, network) retried like batches. Pre-flight only reads and creates what
        is missing, so running it again is safe."""
        attempt = 0
        while True:
            try:
                with gate:
                    writer.prepare()
                return
            except TRANSIENT as exc:
                if attempt + 1 >= self.policy.attempts:
                    if isinstance(exc, RetryableDestinationError):
                        raise
                    raise RetryableDestinationError(
                        f"the platform could not be reached for the pre-flight checks ({type(exc).__name__}) "
                        f"after {attempt + 1} tries: check the network and the base URL, then run again"
                    ) from None
                run.retries += 1
                time.sleep(self.policy.delay(attempt, getattr(exc, "retry_after", None)))
                attempt += 1

    @staticmethod
    def _keep_secrets(request: RunRequest, auth: AuthHandler) -> None:
        """Store secrets the auth handler changed during the run (a refreshed OAuth token)."""
        changed = auth.updated_secrets()
        if changed and request.save_secrets is not None:
            request.save_secrets(changed)

    def _finish(self, run: Run, export: Export, started: float, status: RunStatus, error: str | None) -> None:
        run.status, run.error = status, error
        run.finished_at = now()
        run.duration_s = round(time.monotonic() - started, 3)
        try:
            with self.store.transaction():
                self.store.update_run(run)
                if status is not RunStatus.PLANNED:
                    self.store.audit(run.user, "exports.run", export.name, {"run": run.id, "status": status.value})
        finally:
            self.store.run_ended(run.id)  # if the record could not be written, the next run finds it stale
        notify(self.pm.hook.segport_after_run, run=run, export=export)

    def _plan_only(self, steps: Iterator[Any], counts: PlanCounts, requests_for: Any, size: int, run: Run) -> None:
        total_requests = 0
        for batch in _batches(steps, counts, size, [], list.clear):
            total_requests += requests_for([s.record for s in batch])
        counts.extra["requests"] = total_requests
        run.plan = counts.to_dict()
        run.requests = 0

    def _send(
        self,
        request: RunRequest,
        run: Run,
        steps: Iterator[Any],
        counts: PlanCounts,
        writer: Any,
        limits: Any,
        mapping: int,
    ) -> None:
        dispatcher = Dispatcher(
            writer,
            concurrency=limits.max_concurrency,
            gate=_gate(request, limits.max_concurrency),
            policy=self.policy,
        )
        unsent: list[Reject | Remember] = []  # decided without a request; committed with the next batch
        pending: dict[str, Send] = {}
        reject_log = RejectLog(self.home / "rejects" / f"run-{run.id}.jsonl")

        def commit_unsent(decided: list[Reject | Remember]) -> None:
            self._commit(request.export, run, Delivery([]), [], decided, reject_log, mapping)
            decided.clear()

        def batches() -> Iterator[Sequence[Record]]:
            for batch in _batches(steps, counts, limits.batch_size, unsent, commit_unsent):
                for send in batch:
                    pending[send.record.key] = send
                yield [s.record for s in batch]

        with reject_log:
            for delivery in dispatcher.run(batches()):
                sends = [pending.pop(r.key) for r in delivery.records]
                self._commit(request.export, run, delivery, sends, unsent, reject_log, mapping)
                unsent.clear()
            if unsent:  # planned after the last batch
                commit_unsent(unsent)
        run.counts["unchanged"] += counts.unchanged
        run.plan = counts.to_dict()

    def _commit(
        self,
        export: Export,
        run: Run,
        delivery: Delivery,
        sends: list[Send],
        unsent: list[Reject | Remember],
        reject_log: RejectLog,
        mapping: int,
    ) -> None:
        """Store one batch's outcomes and sync state in one transaction; log its rejects.

        The run record's figures change only if that transaction commits.
        """
        before = (dict(run.counts), run.requests, run.retries, run.reject_file)
        outcome_rows: list[OutcomeRow] = []
        state_rows: list[StateRow] = []
        lost: list[dict[str, Any]] = []
        for send in sends:
            outcome = delivery.outcomes[send.record.key]
            outcome_rows.append(OutcomeRow(send.record.key, send.record.email, outcome.status.value, outcome.reason))
            run.counts[outcome.status.value] = run.counts.get(outcome.status.value, 0) + 1
            if outcome.status.delivered:
                key, email = send.record.key, send.record.email
                state_rows.append(StateRow(key, email, send.digest, markers_json(send.markers), send.seq, mapping))
            else:
                lost.append(
                    {
                        "key": send.record.key,
                        "email": send.record.email,
                        "status": outcome.status.value,
                        "reason": outcome.reason,
                    }
                )
        for step in unsent:
            if isinstance(step, Remember):
                markers = markers_json(step.markers)
                state_rows.append(StateRow(step.key, step.email, step.digest, markers, step.seq, mapping))
                continue
            outcome_rows.append(OutcomeRow(step.key, step.email, step.status, step.reason))
            run.counts[step.status] += 1
            lost.append({"key": step.key, "email": step.email, "status": step.status, "reason": step.reason})
        run.requests += delivery.requests
        run.retries += delivery.retries
        try:
            reject_log.write(lost)
            if lost:
                run.reject_file = str(reject_log.path)
            with self.store.transaction():
                self.store.save_outcomes(run.id, outcome_rows)
                self.store.save_sync_state(export.id, state_rows)
                self.store.update_run(run)
        except BaseException:
            run.counts, run.requests, run.retries, run.reject_file = before
            raise
        if sends:
            result = BatchResult([delivery.outcomes[s.record.key] for s in sends], delivery.requests)
            notify(self.pm.hook.segport_after_batch, run=run, export=export, result=result)
        for line in lost:
            outcome = Outcome(line["key"], OutcomeStatus(line["status"]), line["reason"])
            notify(self.pm.hook.segport_on_reject, run=run, export=export, outcome=outcome, email=line["email"])


class RequestCounter:
    """A ``requests`` response hook counting a session's HTTP exchanges (thread-safe)."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            self.value += 1


class RejectLog:
    """The run's reject file (JSONL: key, email, status, reason), created on the first reject."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def write(self, lines: list[dict[str, Any]]) -> None:
        if not lines:
            return
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
            self._file.flush()
        except OSError as exc:
            raise WorkspaceError(
                f"cannot write the reject file {self.path} ({exc.strerror or exc}): check free disk space "
                f"and permissions of {self.path.parent}; what was sent before is recorded"
            ) from None

    def __enter__(self) -> RejectLog:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


def _gate(request: RunRequest, limit: int, what: str = "batches") -> Gate:
    """A governor of the run's credential: connections sharing an API key share its concurrency.

    ``batches`` bounds the batches (and pre-flights) in flight, ``calls`` the HTTP calls: two pools,
    so a batch holding a batch slot always gets call slots (calls end without waiting on batches).
    """
    secrets = split_secrets(request.config, request.destination.spec().connection_schema)[1]
    fingerprint = json.dumps(secrets or request.config, sort_keys=True, default=str).encode()
    credential = f"{request.connection.type}:{hashlib.sha256(fingerprint).hexdigest()}"
    return governor(credential if what == "batches" else f"{credential}:{what}", limit)


def _batches(
    steps: Iterator[Any],
    counts: PlanCounts,
    size: int,
    unsent: list[Reject | Remember],
    flush: Callable[[list[Reject | Remember]], None],
) -> Iterator[list[Send]]:
    """Cut the plan's sends into batches of ``size``; count every step; collect the unsent ones.

    A batch holds one kind of send: new people, updates of known people, or marker changes only.
    Platforms serve each kind with other calls (Mailchimp: batch create, a /batches job of
    updates, tag calls), so a delta run fills each call instead of sending half-empty ones.
    ``unsent`` normally rides with the next batch's commit; ``flush`` empties it when it grows
    large between batches (a plan of a million rejects holds at most a chunk of them).
    """
    lanes: dict[tuple[bool, bool], list[Send]] = {}
    for step in steps:
        counts.count(step)
        if isinstance(step, Send):
            kind = (step.record.upsert, step.record.upsert and step.record.new)
            batch = lanes.setdefault(kind, [])
            batch.append(step)
            if len(batch) >= size:
                yield batch
                lanes[kind] = []
        elif isinstance(step, (Reject, Remember)):
            unsent.append(step)
            if len(unsent) >= UNSENT_CHUNK:
                flush(unsent)
        elif not isinstance(step, Unchanged):  # pragma: no cover - planner contract
            raise RunError(f"unexpected plan step {step!r}")
    yield from (batch for batch in lanes.values() if batch)
