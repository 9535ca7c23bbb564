"""Runs: an export run now, queued for workers, and the run history."""

from __future__ import annotations

from ..config import validate
from ..errors import ConfigError, InputError, RunError
from ..executor import RunJob
from ..models import Page, Role, Run, RunStatus
from ..pipeline.engine import ExportRun, RunRequest
from ..pipeline.preview import Preview
from ..urls import without_password
from .connections import Connections
from .context import Context, check_page, spec_hint
from .exports import Exports
from .history import History, absolute_reject_file


class Runs:
    """Running exports (on demand, queued, or for a schedule) and reading their run records.

    Every run ends with the retention setting applied (:meth:`History.apply_retention`).
    """

    def __init__(self, context: Context, exports: Exports, connections: Connections) -> None:
        self.context = context
        self.exports = exports
        self.connections = connections
        self.history = History(context)

    def run(
        self,
        *,
        name: str,
        full: bool = False,
        dry_run: bool = False,
        trigger: str = "manual",
        preview: Preview | None = None,
    ) -> Run:
        """Run an export now (or plan it with ``dry_run``); returns the run record.

        Raises the run's error when it ended failed (the run record is stored either way). A dry
        run fills ``preview`` (what its pre-flight would create, the first records' actions).
        """
        request = self.request(name, full=full, dry_run=dry_run, trigger=trigger, preview=preview)
        return self.execute(request)

    def execute(self, request: RunRequest) -> Run:
        """Execute a run request built by :meth:`request`; then apply the runs' retention setting."""
        ctx = self.context
        try:
            return ExportRun(ctx.store, ctx.pm, ctx.home, ctx.retry).execute(request)
        finally:
            self.history.apply_retention()

    def request(
        self,
        name: str,
        *,
        full: bool = False,
        dry_run: bool = False,
        trigger: str = "manual",
        action: str = "exports.run",
        preview: Preview | None = None,
    ) -> RunRequest:
        """Check the acting user may run export ``name`` and build the request of a run of it."""
        ctx = self.context
        export, connection = self.exports.export_for(action, name)
        if not export.enabled and not dry_run:
            raise RunError(f"export {name!r} is disabled: enable it first", param="enabled")
        destination = ctx.registry.get(connection.type)
        config = validate(
            self.connections.full_config(connection),
            destination.spec().connection_schema,
            f"connection {connection.name!r} config",
            hint=spec_hint(connection.type),
        )
        return RunRequest(
            export=export,
            connection=connection,
            destination=destination,
            config=config,
            user=ctx.user.name,
            trigger=trigger,
            full=full,
            dry_run=dry_run,
            profile_cap=connection.profile_cap or 0,
            preview=preview,
            save_secrets=lambda changed: self.connections.save_secrets(connection, changed),
        )

    def queue(self, *, name: str, full: bool = False, trigger: str = "manual") -> str:
        """Queue a run of an export for the workers of the executor; returns the task id.

        The same checks as :meth:`run` come first; the worker runs it as the acting user.
        """
        ctx = self.context
        export, _ = self.exports.export_for("exports.run", name)
        if not export.enabled:
            raise RunError(f"export {name!r} is disabled: enable it first", param="enabled")
        if ctx.executor is None:
            raise ConfigError("no executor is configured: set SEGPORT_BROKER_URL to queue runs for workers")
        job = RunJob(
            export=export.name,
            home=str(ctx.home.resolve()),
            user=ctx.user.name,
            trigger=trigger,
            full=full,
            database_url=without_password(ctx.store.url),
        )
        return ctx.executor.enqueue(job)

    def get(self, *, run_id: int) -> Run:
        """One run record (runs of dead processes show as interrupted)."""
        self.context.authorize("runs.show")
        self.context.store.reap_stale_runs()
        return absolute_reject_file(self.context.home, self.context.store.get_run(run_id))

    def list(self, *, export: str | None = None, limit: int = 50) -> list[Run]:
        """Return the newest runs, of one export or of all."""
        self.context.authorize("runs.list")
        self.context.store.reap_stale_runs()
        return [absolute_reject_file(self.context.home, run) for run in self.context.store.list_runs(export, limit)]

    def page(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        export: str | None = None,
        status: RunStatus | str | None = None,
        trigger: str | None = None,
        user: str | None = None,
    ) -> Page[Run]:
        """Return a page of runs newest first, and how many match: by export name, status, trigger and user.

        Non-admins see the runs of exports attached to connections shared with contributors only
        (as their export list): the rule applies before the page is cut.
        """
        actor = self.context.authorize("runs.list")
        check_page(limit, offset)
        if status is not None:
            try:
                status = RunStatus(status).value
            except ValueError:
                known = ", ".join(s.value for s in RunStatus)
                raise InputError(f"unknown run status {status!r}: use one of {known}", param="status") from None
        store = self.context.store
        store.reap_stale_runs()
        found = store.run_page(
            limit=limit,
            offset=offset,
            export=export,
            status=status,
            trigger=trigger,
            user=user,
            shared_only=actor.role is not Role.ADMIN,
        )
        items = [absolute_reject_file(self.context.home, run) for run in found.items]
        return Page(items, found.total, found.limit, found.offset)
