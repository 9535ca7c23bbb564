"""One export run: select -> map -> plan -> batch -> dispatch -> commit per batch.

A run is self-contained (an export and a store), takes the export's lock, and commits each
acknowledged batch's outcomes and sync state in one transaction (:mod:`segport.pipeline.commit`): a
crashed run, run again, resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import pluggy
import requests

from ..config import split_secrets, validate
from ..contract import AuthHandler, BatchWriter, Destination, Limits, Record, RunContext
from ..errors import CapExceeded, RetryableDestinationError, RunError, SegportError, WorkspaceError
from ..governor import GovernedAdapter
from ..models import Connection, Export, Run, RunStatus
from ..plugins import notify
from ..private import reject_path
from ..store.database import now
from ..store.interface import Snapshot, Store
from .batcher import Unsent, batches
from .commit import BatchCommit, RejectLog, all_refused
from .dispatcher import TRANSIENT, Dispatcher, Gate, RetryPolicy, governor
from .mapper import Mapper
from .planner import PlanCounts, Send, Step, plan
from .preview import Preview
from .selection import Selection

OUTCOME_KEYS = ("created", "updated", "unchanged", "skipped", "rejected", "failed")

RequestsFor = Callable[[Sequence[Record]], int]  # how many HTTP requests a batch of records would take


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """What to run and how."""

    export: Export
    connection: Connection
    destination: Destination
    config: Mapping[str, object]  # validated, secrets included
    user: str
    trigger: str = "manual"
    full: bool = False
    dry_run: bool = False
    profile_cap: int = 0
    preview: Preview | None = None  # filled by a dry run: what it would create, per-record actions
    save_secrets: Callable[[Mapping[str, object]], None] | None = None  # stores refreshed tokens
    repair: Sequence[Send] | None = None  # a repair run: sends only these (what ``exports verify`` found)


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

        def ended(failure: RunStatus) -> RunStatus:
            """Return the status a run ends in: a dry run that stops (a failed pre-flight) stays ``planned``."""
            return RunStatus.PLANNED if request.dry_run else failure

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
                audience = request.destination.audience(options)
                context = RunContext(
                    export_name=export.name,
                    options=options,
                    segments=list(export.segments),
                    mapped_fields=sorted(export.mapping),
                    dry_run=request.dry_run,
                    archived_by_segport=self.store.archived_by_segport(request.connection.id, audience),
                    repair=request.repair is not None,
                )
                writer = request.destination.writer(session, request.config, context)
                counts = PlanCounts(selected=selection.count)
                if request.repair is not None:  # the run record says it was a repair: plan["repair"] = 1
                    counts.selected, counts.extra["repair"] = len(request.repair), 1
                run.plan = counts.to_dict()
                notify(self.pm.hook.segport_before_run, run=run, export=export)
                mapper = Mapper(export.email_field, {**export.mapping, **request.destination.extra_fields(options)})
                steps = (
                    plan(reader, selection, export.id, mapper, full=request.full)
                    if request.repair is None
                    else (send for send in request.repair)
                )
                with closing(steps):
                    if request.dry_run:  # the same pre-flight, creating nothing; then the plan, sending nothing
                        preview = request.preview if request.preview is not None else Preview()
                        self._preflight(writer, session, request, run, preflight)
                        preview.would_create.extend(writer.would_create)
                        counts.extra["would_create"] = len(writer.would_create)
                        self._plan_only(
                            preview.watch(steps),
                            counts=counts,
                            requests_for=writer.requests_for,
                            size=spec.limits.batch_size,
                            run=run,
                        )
                    else:
                        with self.store.heartbeat(run.id):
                            self._preflight(writer, session, request, run, preflight)
                            notify(self.pm.hook.segport_before_send, run=run, export=export)
                            commit = self._send(
                                steps,
                                request=request,
                                run=run,
                                counts=counts,
                                writer=writer,
                                limits=spec.limits,
                                mapping=mapper.fingerprint,
                                audience=audience,
                            )
                        writer.finish()
                        self._judge(run, commit)
        except SegportError as exc:
            self._keep_secrets(request, auth)
            self._finish(run, export, started, ended(RunStatus.FAILED), str(exc))
            exc.run = run  # lets the CLI print the record too
            raise
        except KeyboardInterrupt:
            stopped = "stopped by the operator (SIGINT/SIGTERM)"
            self._finish(run, export, started, ended(RunStatus.INTERRUPTED), stopped)
            raise
        except Exception as exc:
            internal = f"internal error: {type(exc).__name__} (run with --debug)"
            self._finish(run, export, started, ended(RunStatus.FAILED), internal)
            raise
        self._keep_secrets(request, auth)
        self._finish(run, export, started, run.status, run.error)
        return run

    def _judge(self, run: Run, commit: BatchCommit) -> None:
        """Set the status of a run that sent its plan: failed when nothing went through.

        Nothing went through when records failed and none was delivered, or when every selected
        profile was refused: before sending (a data matching that fits no profile) or by the platform.
        """
        failed, rejected = run.counts["failed"], run.counts["rejected"]
        if not failed:
            if rejected and not any(run.counts[k] for k in ("created", "updated", "unchanged", "skipped")):
                raise RunError(all_refused(run, commit))
            run.status = RunStatus.SUCCEEDED
            return
        reason = f" (first: {commit.first_failure})" if commit.first_failure else ""
        if not commit.delivered:  # nothing reached the platform: a failed run, not a partial one
            raise RunError(
                f"all {failed:,} records sent failed after {self.policy.attempts} tries{reason}; "
                "the next run retries them"
            )
        run.status = RunStatus.PARTIAL
        run.error = f"{failed} records still failed after {self.policy.attempts} tries; the next run retries them"

    def _select(self, request: RunRequest) -> tuple[Snapshot, Selection]:
        """Materialise the export's selection in a new snapshot of the workspace; check the cap."""
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

    def _preflight(
        self, writer: BatchWriter, session: requests.Session, request: RunRequest, run: Run, counter: RequestCounter
    ) -> None:
        """Run the writer's pre-flight (:meth:`_prepare`), counting its HTTP calls in the run's requests."""
        session.hooks["response"].append(counter)
        try:
            self._prepare(writer, _gate(request, request.destination.spec().limits.max_concurrency), run)
        finally:
            session.hooks["response"].remove(counter)
            run.requests += counter.value

    def _prepare(self, writer: BatchWriter, gate: Gate, run: Run) -> None:
        """Run the writer's pre-flight (:func:`prepare`), counting its retries in the run's."""

        def retried() -> None:
            run.retries += 1

        prepare(writer, gate, self.policy, retried)

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

    def _plan_only(
        self, steps: Iterator[Step], *, counts: PlanCounts, requests_for: RequestsFor, size: int, run: Run
    ) -> None:
        """Count the plan and the requests its batches would take; send nothing.

        ``run.requests`` keeps the pre-flight's calls (reads only); ``requests`` in the plan are the
        batch calls the real run would add.
        """
        total_requests = 0
        for batch in batches(steps, counts=counts, size=size, unsent=[], flush=list.clear):
            total_requests += requests_for([s.record for s in batch])
        counts.extra["requests"] = total_requests
        run.plan = counts.to_dict()

    def _send(
        self,
        steps: Iterator[Step],
        *,
        request: RunRequest,
        run: Run,
        counts: PlanCounts,
        writer: BatchWriter,
        limits: Limits,
        mapping: int,
        audience: str,
    ) -> BatchCommit:
        """Batch the plan, dispatch the batches, commit each delivered batch with the unsent steps.

        When a commit fails (a full disk), the batches that reached the platform anyway stay in the
        run's figures and the error says what they did there.
        """
        dispatcher: Dispatcher[Send] = Dispatcher(
            writer,
            concurrency=limits.max_concurrency,
            gate=_gate(request, limits.max_concurrency),
            policy=self.policy,
        )
        unsent: list[Unsent] = []  # decided without a request; committed with the next batch
        with RejectLog(reject_path(self.home, run.id)) as reject_log:
            commit = BatchCommit(
                store=self.store,
                pm=self.pm,
                export=request.export,
                run=run,
                reject_log=reject_log,
                mapping=mapping,
                ledger=(request.connection.id, audience),
            )

            def commit_unsent(decided: list[Unsent]) -> None:
                commit(None, decided)
                decided.clear()

            sends = batches(steps, counts=counts, size=limits.batch_size, unsent=unsent, flush=commit_unsent)
            try:
                with closing(dispatcher.run(sends)) as deliveries:
                    for delivery in deliveries:
                        commit(delivery, unsent)
                        unsent.clear()
            except WorkspaceError as exc:
                for delivery in dispatcher.unconsumed:  # in flight when the commit failed: they landed too
                    commit.count_unrecorded(delivery)
                if commit.unrecorded:
                    raise WorkspaceError(f"{exc}; {unrecorded_summary(commit.unrecorded)}", param=exc.param) from None
                raise
            if unsent:  # planned after the last batch
                commit_unsent(unsent)
        run.counts["unchanged"] += counts.unchanged
        run.plan = counts.to_dict()
        return commit


def unrecorded_summary(outcomes: Mapping[str, int]) -> str:
    """Say what reached the platform without being recorded (outcome counts), and what happens next."""
    total = sum(outcomes.values())
    detail = ", ".join(f"{count:,} {status}" for status, count in sorted(outcomes.items()))
    return (
        f"but {total:,} records had reached the platform ({detail}) that the workspace could not record: "
        "the next run sends them again"
    )


class RequestCounter:
    """A ``requests`` response hook counting a session's HTTP exchanges (thread-safe)."""

    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def __call__(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        """Count one response."""
        with self._lock:
            self.value += 1


def prepare(writer: BatchWriter, gate: Gate, policy: RetryPolicy, retried: Callable[[], None]) -> None:
    """Run the writer's pre-flight, holding a slot of the credential's governor.

    Transient failures (429, 5xx, network) are retried like batches (``retried`` called before each
    retry). Pre-flight only reads and creates what is missing, so running it again is safe.
    """
    attempt = 0
    while True:
        try:
            with gate:
                writer.prepare()
            return
        except TRANSIENT as exc:
            if attempt + 1 >= policy.attempts:
                if isinstance(exc, RetryableDestinationError):
                    raise
                raise RetryableDestinationError(
                    f"the platform could not be reached for the pre-flight checks ({type(exc).__name__}) "
                    f"after {attempt + 1} tries: check the network and the base URL, then run again"
                ) from None
            retried()
            retry_after = exc.retry_after if isinstance(exc, RetryableDestinationError) else None
            time.sleep(policy.delay(attempt, retry_after))
            attempt += 1


def _gate(request: RunRequest, limit: int, what: str = "batches") -> Gate:
    """Return a governor of the run's credential: connections sharing an API key share its concurrency.

    ``batches`` bounds the batches (and pre-flights) in flight, ``calls`` the HTTP calls: two pools,
    so a batch holding a batch slot always gets call slots (calls end without waiting on batches).
    """
    return credential_gate(request.connection.type, request.destination, request.config, limit, what)


def credential_gate(
    kind: str, destination: Destination, config: Mapping[str, object], limit: int, what: str = "batches"
) -> Gate:
    """Return the governor of a credential (a connection of type ``kind`` with ``config``) for ``what``.

    Every caller calling the platform with these credentials (runs, verify, audience listings) shares it.
    """
    secrets = split_secrets(config, destination.spec().connection_schema)[1]
    fingerprint = json.dumps(secrets or config, sort_keys=True, default=str).encode()
    credential = f"{kind}:{hashlib.sha256(fingerprint).hexdigest()}"
    return governor(credential if what == "batches" else f"{credential}:{what}", limit)
