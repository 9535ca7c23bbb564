"""The embedding API: everything the CLI does, with the same validation and permission checks.

ws = Workspace.open("./.segport", user="alice")
ws.add_connection("Newsletter", "mailchimp", {...}, agree_privacy=True)
ws.add_export("vip-to-mc", connection="Newsletter", segments=["VIP"], email_field="email")
run = ws.run_export("vip-to-mc")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pluggy

from .contract import Audience
from .executor import Executor
from .models import (
    ApiToken,
    AuditEntry,
    Connection,
    ConnectionCheck,
    ConnectionEdit,
    Export,
    ExportEdit,
    ExportSummary,
    Page,
    ProfileLoad,
    ProfilePage,
    ProfileRemoval,
    Role,
    Run,
    ScheduledRun,
    Segment,
    SegmentCount,
    SegmentLoad,
    Share,
    SharedConnection,
    User,
)
from .oauth import AuthorizationStart
from .opening import DEFAULT_HOME, HOME_ENV, create_workspace, default_home, open_workspace
from .pipeline.dispatcher import RetryPolicy
from .pipeline.preview import Preview
from .pipeline.verify import DriftReport
from .plugins import make_manager
from .registry import Registry, default_registry
from .services import Catalog, Connections, Context, Drift, Exports, Governance, Identities, Profiles, Runs, Schedules
from .services.history import PruneReport, Rejects
from .services.keys import KeyRotation
from .store import Store
from .vault import Vault

USER_ENV = "SEGPORT_USER"

__all__ = ["DEFAULT_HOME", "HOME_ENV", "PRIVACY_NOTICE", "USER_ENV", "Workspace", "default_home"]

PRIVACY_NOTICE = (
    "Exporting sends personal data (emails, names, attributes) outside this workspace to the "
    "destination platform, which processes it under its own terms. Confirm that you have a lawful "
    "basis and the consent needed to share it, and that the platform's data processing terms are in place."
)


class Workspace:
    """One workspace folder (database, secret key, reject files), acting as one user.

    A thin facade: each call goes to one of the services below, which check the acting user's
    permission themselves. Embedding apps may use the services directly (``ws.exports.add(...)``).
    """

    def __init__(
        self,
        home: Path,
        store: Store,
        vault: Vault,
        *,
        user: str | None,
        registry: Registry | None = None,
        pm: pluggy.PluginManager | None = None,
        retry: RetryPolicy | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.context = Context(
            home=home,
            store=store,
            vault=vault,
            registry=registry or default_registry(),
            pm=pm or make_manager(),
            retry=retry or RetryPolicy(),
            executor=executor,
            user_name=user,
        )
        self.governance = Governance(self.context)
        self.identities = Identities(self.context)  # passwords, invites, sign-in, sessions, API tokens
        self.connections = Connections(self.context)
        self.catalog = Catalog(self.context)
        self.profiles = Profiles(self.context)  # also list, count, remove
        self.exports = Exports(self.context)
        self.runs = Runs(self.context, self.exports, self.connections)
        self.scheduling = Schedules(self.context, self.runs)
        self.drift = Drift(self.context, self.runs)  # exports verify, exports run --repair
        self.scheduling.before_scheduled = self.drift.scheduled_repair

    # -- the parts, for embedding apps and the CLI --------------------------------------------------
    @property
    def home(self) -> Path:
        """The workspace folder (key file, reject files)."""
        return self.context.home

    @property
    def store(self) -> Store:
        """The workspace database."""
        return self.context.store

    @property
    def vault(self) -> Vault:
        """The secrets' encryption with the workspace key."""
        return self.context.vault

    @property
    def registry(self) -> Registry:
        """The installed destination plugins."""
        return self.context.registry

    @property
    def pm(self) -> pluggy.PluginManager:
        """The hook plugin manager (run hooks, permission policy)."""
        return self.context.pm

    @property
    def retry(self) -> RetryPolicy:
        """How runs retry transient failures."""
        return self.context.retry

    @property
    def executor(self) -> Executor | None:
        """With one, refresh and scheduled runs are queued for workers."""
        return self.context.executor

    @property
    def user(self) -> User:
        """The acting user; raises when none is set or the name is unknown."""
        return self.context.user

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def create(
        cls, home: str | os.PathLike[str] | None, admin: str, *, database_url: str | None = None, **kwargs: Any
    ) -> Workspace:
        """Create a workspace with its first admin (``segport init``).

        The database is ``database_url`` (default ``SEGPORT_DATABASE_URL``; unset: ``segport.db`` in the
        folder); the folder holds the secret key and reject files either way.
        """
        path, store, vault, admin = create_workspace(home, admin, database_url)
        return cls(path, store, vault, user=admin, **kwargs)

    @classmethod
    def open(
        cls,
        home: str | os.PathLike[str] | None = None,
        user: str | None = None,
        *,
        database_url: str | None = None,
        **kwargs: Any,
    ) -> Workspace:
        """Open an existing workspace acting as ``user`` (default ``SEGPORT_USER``).

        Its database is ``database_url`` (default ``SEGPORT_DATABASE_URL``, else ``segport.db`` in the folder).
        """
        path, store, vault = open_workspace(home, database_url)
        return cls(path, store, vault, user=user or os.environ.get(USER_ENV), **kwargs)

    def close(self) -> None:
        """Close the workspace database."""
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- governance -----------------------------------------------------------------------------
    def require(self, action: str) -> User:
        """Raise :class:`PermissionDenied` unless the acting user may perform ``action``."""
        return self.governance.require(action)

    def add_user(self, name: str, role: Role | str) -> User:
        """Add a user with a role (admins only)."""
        return self.governance.add_user(name=name, role=role)

    def list_users(self) -> list[User]:
        """Return every user with their role."""
        return self.governance.list_users()

    def set_user_role(self, name: str, role: Role | str) -> User:
        """Give a user another role (admins only; the last admin keeps theirs)."""
        return self.governance.set_role(name=name, role=role)

    def remove_user(self, name: str) -> User:
        """Remove a user: from then on they can do nothing (the last admin cannot go)."""
        return self.governance.remove_user(name=name)

    def set_password(self, name: str, password: str) -> None:
        """Set a user's password (one's own; admins anyone's); their web sessions end."""
        self.identities.set_password(name, password)

    def invite_user(self, name: str, *, ttl_seconds: int = 7 * 86400) -> str:
        """Return a one-time invite token for the user to set their password (admins only)."""
        return self.identities.invite(name, ttl_seconds=ttl_seconds)

    def create_token(self, name: str, *, expires_in_seconds: int | None = None) -> tuple[ApiToken, str]:
        """Create an API token for the acting user; return it and its secret (shown once)."""
        return self.identities.create_token(name, expires_in_seconds=expires_in_seconds)

    def list_tokens(self, *, every_user: bool = False) -> list[ApiToken]:
        """Return the acting user's API tokens (``every_user``: everyone's, admins only)."""
        return self.identities.list_tokens(every_user=every_user)

    def revoke_token(self, name: str, *, user: str | None = None) -> ApiToken:
        """Revoke one of the acting user's API tokens (admins: ``user``'s)."""
        return self.identities.revoke_token(name, user=user)

    def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        """Return the newest ``limit`` audit entries, newest first."""
        return self.governance.audit_entries(limit=limit)

    def audit_page(self, *, limit: int = 50, offset: int = 0, **filters: Any) -> Page[AuditEntry]:
        """Return a page of audit entries newest first (filters: user, action, target, since) with its total."""
        return self.governance.audit_page(limit=limit, offset=offset, **filters)

    def users_page(self, *, limit: int = 50, offset: int = 0, role: Role | str | None = None) -> Page[User]:
        """Return a page of users by name (``role``: with that role only) with its total."""
        return self.governance.user_page(limit=limit, offset=offset, role=role)

    # -- connections ----------------------------------------------------------------------------
    def add_connection(
        self,
        name: str,
        type: str,
        config: Mapping[str, Any],
        *,
        share: Share | str = Share.ADMINS,
        agree_privacy: bool = False,
        check: bool = True,
        profile_cap: int | None = None,
    ) -> Connection:
        """Add a connection (admins only) after the privacy consent, validation and a credential check."""
        return self.connections.add(
            name=name,
            type=type,
            config=config,
            share=share,
            agree_privacy=agree_privacy,
            check=check,
            profile_cap=profile_cap,
        )

    def list_connections(self) -> list[Connection | SharedConnection]:
        """Return every connection for admins; the shared ones' name and type for others."""
        return self.connections.list()

    def connections_page(self, *, limit: int = 50, offset: int = 0) -> Page[Connection | SharedConnection]:
        """Return a page of connections by name, as :meth:`list_connections` shows them, with its total."""
        return self.connections.page(limit=limit, offset=offset)

    def get_connection(self, name: str) -> Connection:
        """Return one connection (its config without secrets)."""
        return self.connections.get(name=name)

    def stored_secret_names(self, name: str) -> list[str]:
        """Return the names (never the values) of the secrets stored for a connection."""
        return self.connections.secret_names(name=name)

    def checked_account(self, name: str) -> str | None:
        """Return the account a connection's credentials reached at their last successful check (None: never)."""
        return self.connections.checked_account(name=name)

    def test_connection(self, name: str) -> ConnectionCheck:
        """Check the stored credentials with the platform (a refreshed token is kept)."""
        return self.connections.test(name=name)

    def list_audiences(self, name: str) -> list[Audience]:
        """Return the audiences (lists) a connection can write to, as its plugin lists them (those who may use it)."""
        return self.connections.audiences(name=name)

    def authorize_connection(self, name: str, open_url: Callable[[str], Any], *, timeout: float = 300.0) -> Connection:
        """Run the destination's OAuth2 flow for a connection (``open_url`` shows the user the URL)."""
        return self.connections.authorize(name=name, open_url=open_url, timeout=timeout)

    def begin_authorization(self, name: str, redirect_uri: str) -> AuthorizationStart:
        """Begin a connection's OAuth2 flow through a browser: the platform's URL and the state to keep."""
        return self.connections.begin_authorization(name=name, redirect_uri=redirect_uri)

    def complete_authorization(
        self, name: str, *, state: str, expected_state: str, redirect_uri: str, query: Mapping[str, str]
    ) -> Connection:
        """Finish it from the platform's redirect (state checked, code traded, tokens stored encrypted)."""
        return self.connections.complete_authorization(
            name=name, state=state, expected_state=expected_state, redirect_uri=redirect_uri, query=query
        )

    def set_profile_cap(self, name: str, cap: int | None) -> Connection:
        """Set (or with None, clear) the most profiles one export of this connection may select."""
        return self.connections.set_profile_cap(name=name, cap=cap)

    def edit_connection(self, name: str, **changes: Any) -> ConnectionEdit:
        """Change a connection in place (the keywords of :meth:`segport.services.connections.Connections.edit`)."""
        return self.connections.edit(name=name, **changes)

    def remove_connection(self, name: str) -> int:
        """Erase a connection and its secrets; return the count of its exports, now detached and disabled."""
        return self.connections.remove(name=name)

    # -- profiles and segments ------------------------------------------------------------------
    def load_profiles(
        self,
        path: str | os.PathLike[str],
        *,
        key: str | None = None,
        fmt: str | None = None,
        replace: bool = False,
    ) -> ProfileLoad:
        """Load profiles from a CSV or JSONL file, keyed by the workspace's key column (all rows or none)."""
        return self.profiles.load(path=path, key=key, fmt=fmt, replace=replace)

    def get_profile(self, key: str) -> dict[str, Any]:
        """Return one profile's attributes."""
        return self.catalog.get_profile(key=key)

    def profile_key(self) -> str | None:
        """Return the column/field the profiles are keyed by (None: no profile loaded yet)."""
        return self.profiles.key_column()

    def list_profiles(self, *, where: str | None = None, limit: int = 50, offset: int = 0) -> ProfilePage:
        """Return a page of profiles (matching the filter ``where``) in key order."""
        return self.profiles.page(where=where, limit=limit, offset=offset)

    def count_profiles(self, where: str | None = None) -> int:
        """Return how many profiles there are, or match the filter ``where``."""
        return self.profiles.count(where=where)

    def remove_profiles(self, keys: Sequence[str] | None = None, *, where: str | None = None) -> ProfileRemoval:
        """Remove profiles by key or by filter; their exports' next runs remove their markers."""
        return self.profiles.remove(keys=keys, where=where)

    def load_segment(
        self, name: str, path: str | os.PathLike[str], *, key: str = "id", fmt: str | None = None
    ) -> SegmentLoad:
        """Create or replace a static segment from a file of profile keys."""
        return self.catalog.load_segment(name=name, path=path, key=key, fmt=fmt)

    def define_segment(self, name: str, where: str) -> Segment:
        """Create or update a segment defined by a filter expression over profile attributes."""
        return self.catalog.define_segment(name=name, where=where)

    def unknown_attributes(self, where: str) -> dict[str, list[str]]:
        """Return the attributes a filter names that no loaded profile has, each with the closest names."""
        return self.catalog.unknown_attributes(where=where)

    def attribute_names(self) -> list[str]:
        """Return the attribute names the loaded profiles have (of the first profiles by key), to pick from."""
        return self.catalog.attribute_names()

    def list_segments(self) -> list[SegmentCount]:
        """Return the segments with their current member counts."""
        return self.catalog.list_segments()

    def segments_page(self, *, limit: int = 50, offset: int = 0, search: str | None = None) -> Page[SegmentCount]:
        """Return a page of segments by name with their member counts, and its total."""
        return self.catalog.segment_page(limit=limit, offset=offset, search=search)

    def remove_segment(self, name: str) -> None:
        """Remove a segment no export uses."""
        self.catalog.remove_segment(name=name)

    # -- exports --------------------------------------------------------------------------------
    def add_export(
        self,
        name: str,
        *,
        connection: str,
        segments: Sequence[str],
        email_field: str,
        mapping: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
        schedule: str | None = None,
        enabled: bool = True,
        force: bool = False,
    ) -> Export:
        """Save an export (never runs it); markers colliding with another export's are refused unless ``force``."""
        return self.exports.add(
            name=name,
            connection=connection,
            segments=segments,
            email_field=email_field,
            mapping=mapping,
            options=options,
            schedule=schedule,
            enabled=enabled,
            force=force,
        )

    def edit_export(self, name: str, **changes: Any) -> Export:
        """Change an export (the keywords of :meth:`segport.services.exports.Exports.edit`); return it."""
        return self.exports.edit(name=name, **changes).export

    def change_export(self, name: str, **changes: Any) -> ExportEdit:
        """Change an export like :meth:`edit_export`; return what changed and whether the sync state was kept."""
        return self.exports.edit(name=name, **changes)

    def list_exports(self) -> list[Export]:
        """Return every export."""
        return self.exports.list()

    def exports_page(self, *, limit: int = 50, offset: int = 0, **filters: Any) -> Page[ExportSummary]:
        """Return a page of exports with their last runs (filters: connection, enabled, search) and its total."""
        return self.exports.page(limit=limit, offset=offset, **filters)

    def get_export(self, name: str) -> Export:
        """Return one export."""
        return self.exports.get(name=name)

    def set_export_enabled(self, name: str, enabled: bool) -> Export:
        """Enable or disable an export (a disabled export is skipped by refreshes and schedules)."""
        return self.exports.set_enabled(name=name, enabled=enabled)

    def remove_export(self, name: str) -> None:
        """Remove an export, its sync state and its schedule (its runs stay in the history)."""
        self.exports.remove(name=name)

    # -- runs and schedules ---------------------------------------------------------------------
    def run_export(
        self,
        name: str,
        *,
        full: bool = False,
        dry_run: bool = False,
        trigger: str = "manual",
        preview: Preview | None = None,
    ) -> Run:
        """Run an export now (or plan it with ``dry_run``, filling ``preview``); returns the run record.

        Raises the run's error when it ended failed (the run record is stored either way).
        """
        return self.runs.run(name=name, full=full, dry_run=dry_run, trigger=trigger, preview=preview)

    def verify_export(self, name: str) -> DriftReport:
        """Compare what an export delivered with the platform now (sends nothing); see ``exports verify``."""
        return self.drift.verify(name=name)

    def repair_export(self, name: str) -> tuple[DriftReport, Run]:
        """Verify, then send only what drifted (nobody resubscribed or re-created); return both."""
        return self.drift.repair(name=name)

    def set_verify_every(self, name: str, every: int) -> Export:
        """Make every ``every``-th scheduled run of an export verify and repair first (0: never)."""
        return self.drift.set_verify_every(name=name, every=every)

    def queue_export(self, name: str, *, full: bool = False, trigger: str = "manual") -> str:
        """Queue a run for the workers of :attr:`executor`; returns the task id."""
        return self.runs.queue(name=name, full=full, trigger=trigger)

    def get_run(self, run_id: int) -> Run:
        """Return one run record (runs of dead processes show as interrupted)."""
        return self.runs.get(run_id=run_id)

    def list_runs(self, export: str | None = None, limit: int = 50) -> list[Run]:
        """Return the newest runs, of one export or of all."""
        return self.runs.list(export=export, limit=limit)

    def runs_page(self, *, limit: int = 50, offset: int = 0, **filters: Any) -> Page[Run]:
        """Return a page of runs newest first (filters: export, status, trigger, user) and its total."""
        return self.runs.page(limit=limit, offset=offset, **filters)

    def run_rejects(self, run_id: int, limit: int | None = None) -> Rejects:
        """Return a run's rejects (reasons), with the run whose reject file holds each line."""
        return self.runs.history.rejects(run_id=run_id, limit=limit)

    def prune_runs(self, older_than: str, *, dry_run: bool = False) -> PruneReport:
        """Remove runs started more than ``older_than`` ago (``90d``), their outcomes and reject files."""
        return self.runs.history.prune(older_than=older_than, dry_run=dry_run)

    def runs_retention(self) -> str | None:
        """Return how long runs are kept (``90d``; None: until pruned)."""
        return self.runs.history.get_retention()

    def set_runs_retention(self, age: str | None) -> str | None:
        """Keep runs for ``age`` (None: until pruned): every run that ends prunes older ones."""
        return self.runs.history.set_retention(age)

    def refresh(self, trigger: str = "refresh") -> list[ScheduledRun]:
        """Run (or queue) every enabled, attached export once; one failure does not stop the others."""
        return self.scheduling.refresh(trigger=trigger)

    def schedules(self) -> dict[str, str]:
        """Every cron job: ``refresh`` (the system schedule) and ``export:NAME`` per export schedule."""
        return self.scheduling.jobs()

    def fire(self, job: str) -> list[ScheduledRun]:
        """Run a scheduler job by its name from :meth:`schedules`."""
        return self.scheduling.fire(job=job)

    def set_schedule(self, cron: str | None, *, timezone: str | None = None) -> str | None:
        """Set (or with None, clear) the system refresh's cron line (in an IANA ``timezone``); return it as stored."""
        return self.scheduling.set_refresh(cron=cron, timezone_name=timezone)

    def rotate_key(self, new_key_file: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Re-encrypt every stored secret with a new secret key (see :class:`KeyRotation`)."""
        return KeyRotation(self.context).rotate(new_key_file=Path(new_key_file) if new_key_file else None)

    def schedule_overview(self, count: int = 3) -> list[dict[str, Any]]:
        """Describe every schedule (system and exports') with its next ``count`` run times."""
        return self.scheduling.overview(count=count)

    def get_schedule(self) -> str | None:
        """Return the system refresh's cron line, if one is set."""
        return self.scheduling.get_refresh()

    def schedule_failures(self) -> dict[str, dict[str, str]]:
        """Return the jobs the scheduler marked as failing: ``{job: {"cron", "error", "at"}}``."""
        return self.scheduling.failures()

    def mark_schedule(self, job: str, error: str | None) -> None:
        """Mark a scheduler job as failing with ``error`` (None: it succeeded, clear its mark)."""
        self.scheduling.mark(job=job, error=error)

