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

from .errors import WorkspaceError
from .executor import Executor
from .models import (
    AuditEntry,
    Connection,
    ConnectionCheck,
    Export,
    ProfileLoad,
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
from .pipeline.dispatcher import RetryPolicy
from .plugins import make_manager
from .private import make_folder, tighten_workspace
from .registry import Registry, default_registry
from .services import Catalog, Connections, Context, Exports, Governance, Runs, Schedules
from .services.context import check_name
from .services.history import PruneReport, Rejects
from .store import Store, open_store, private_files, sqlite_path
from .store import database_url as store_url
from .vault import KEY_FILE, Vault

HOME_ENV = "SEGPORT_HOME"
USER_ENV = "SEGPORT_USER"
DEFAULT_HOME = ".segport"
KEY_CHECK_SETTING = "secret_key_check"  # a token encrypted at init: proves a key is this workspace's

PRIVACY_NOTICE = (
    "Exporting sends personal data (emails, names, attributes) outside this workspace to the "
    "destination platform, which processes it under its own terms. Confirm that you have a lawful "
    "basis and the consent needed to share it, and that the platform's data processing terms are in place."
)


def default_home() -> Path:
    """``SEGPORT_HOME`` or ``./.segport``."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)



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
        self.connections = Connections(self.context)
        self.catalog = Catalog(self.context)
        self.exports = Exports(self.context)
        self.runs = Runs(self.context, self.exports, self.connections)
        self.scheduling = Schedules(self.context, self.runs)

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
        path = Path(home) if home is not None else default_home()
        admin = check_name("user", admin)
        url = store_url(database_url)
        db_file = sqlite_path(url, path)
        store = None
        if db_file is None:  # PostgreSQL: connect first, so a bad URL leaves no key file behind
            store = open_store(url, path)
            if store.schema_version():
                store.close()
                raise WorkspaceError(
                    f"a workspace exists already in the database {store.url}: use it, or choose another database",
                    param="database_url",
                )
        elif db_file.exists():
            raise WorkspaceError(
                f"a workspace exists already at {path}: use it, or choose another folder", param="home"
            )
        try:
            make_folder(path)
            tighten_workspace(path, [path / KEY_FILE])  # a folder that existed: private from now on
            vault = Vault.for_workspace(path, create=True)
        except OSError as exc:
            if store is not None:
                store.close()
            raise WorkspaceError(f"cannot create the workspace at {path}: {exc.strerror}") from None
        store = store or open_store(url, path)
        try:
            store.migrate()
            with store.transaction():
                store.set_setting(KEY_CHECK_SETTING, vault.encrypt({"workspace": "segport"}).decode("ascii"))
                store.add_user(admin, Role.ADMIN)
                store.audit(admin, "workspace.init", str(path))
        except BaseException:
            store.close()
            raise
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
        path = Path(home) if home is not None else default_home()
        url = store_url(database_url)
        db_file = sqlite_path(url, path)
        if db_file is not None and not db_file.is_file():
            raise WorkspaceError(f"no workspace at {path}: create one, or open the folder that holds it", param="home")
        tighten_workspace(path, [path / KEY_FILE, *private_files(db_file)])  # before SQLite opens (and copies) them
        store = open_store(url, path)
        try:
            if db_file is None and not store.schema_version():
                raise WorkspaceError(
                    f"no workspace in the database {store.url}: create one there, or check the URL",
                    param="database_url",
                )
            store.migrate()
            vault = Vault.for_workspace(path)
            _check_key(store, vault)
        except BaseException:
            store.close()
            raise
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

    def remove_user(self, name: str) -> User:
        """Remove a user: from then on they can do nothing (the last admin cannot go)."""
        return self.governance.remove_user(name=name)

    def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        """Return the newest ``limit`` audit entries, newest first."""
        return self.governance.audit_entries(limit=limit)

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

    def get_connection(self, name: str) -> Connection:
        """Return one connection (its config without secrets)."""
        return self.connections.get(name=name)

    def stored_secret_names(self, name: str) -> list[str]:
        """Return the names (never the values) of the secrets stored for a connection."""
        return self.connections.secret_names(name=name)

    def test_connection(self, name: str) -> ConnectionCheck:
        """Check the stored credentials with the platform (a refreshed token is kept)."""
        return self.connections.test(name=name)

    def authorize_connection(self, name: str, open_url: Callable[[str], Any], *, timeout: float = 300.0) -> Connection:
        """Run the destination's OAuth2 flow for a connection (``open_url`` shows the user the URL)."""
        return self.connections.authorize(name=name, open_url=open_url, timeout=timeout)

    def set_profile_cap(self, name: str, cap: int | None) -> Connection:
        """Set (or with None, clear) the most profiles one export of this connection may select."""
        return self.connections.set_profile_cap(name=name, cap=cap)

    def remove_connection(self, name: str) -> int:
        """Erase a connection and its secrets; return the count of its exports, now detached and disabled."""
        return self.connections.remove(name=name)

    # -- profiles and segments ------------------------------------------------------------------
    def load_profiles(
        self, path: str | os.PathLike[str], *, key: str = "id", fmt: str | None = None, replace: bool = False
    ) -> ProfileLoad:
        """Load profiles from a CSV or JSONL file (all rows or none)."""
        return self.catalog.load_profiles(path=path, key=key, fmt=fmt, replace=replace)

    def get_profile(self, key: str) -> dict[str, Any]:
        """Return one profile's attributes."""
        return self.catalog.get_profile(key=key)

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

    def list_segments(self) -> list[SegmentCount]:
        """Return the segments with their current member counts."""
        return self.catalog.list_segments()

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
    ) -> Export:
        """Save an export (never runs it): connection, segments and the data matching."""
        return self.exports.add(
            name=name,
            connection=connection,
            segments=segments,
            email_field=email_field,
            mapping=mapping,
            options=options,
            schedule=schedule,
            enabled=enabled,
        )

    def edit_export(
        self,
        name: str,
        *,
        segments: Sequence[str] | None = None,
        email_field: str | None = None,
        mapping: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
        schedule: str | None = None,
        clear_schedule: bool = False,
    ) -> Export:
        """Change an export's segments, data matching, options (merged) or schedule."""
        return self.exports.edit(
            name=name,
            segments=segments,
            email_field=email_field,
            mapping=mapping,
            options=options,
            schedule=schedule,
            clear_schedule=clear_schedule,
        )

    def list_exports(self) -> list[Export]:
        """Return every export."""
        return self.exports.list()

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
    def run_export(self, name: str, *, full: bool = False, dry_run: bool = False, trigger: str = "manual") -> Run:
        """Run an export now (or plan it with ``dry_run``); returns the run record.

        Raises the run's error when it ended failed (the run record is stored either way).
        """
        return self.runs.run(name=name, full=full, dry_run=dry_run, trigger=trigger)

    def queue_export(self, name: str, *, full: bool = False, trigger: str = "manual") -> str:
        """Queue a run for the workers of :attr:`executor`; returns the task id."""
        return self.runs.queue(name=name, full=full, trigger=trigger)

    def get_run(self, run_id: int) -> Run:
        """Return one run record (runs of dead processes show as interrupted)."""
        return self.runs.get(run_id=run_id)

    def list_runs(self, export: str | None = None, limit: int = 50) -> list[Run]:
        """Return the newest runs, of one export or of all."""
        return self.runs.list(export=export, limit=limit)

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

    def set_schedule(self, cron: str | None) -> str | None:
        """Set (or with None, clear) the system refresh's cron line; return it as stored."""
        return self.scheduling.set_refresh(cron=cron)

    def get_schedule(self) -> str | None:
        """Return the system refresh's cron line, if one is set."""
        return self.scheduling.get_refresh()

    def schedule_failures(self) -> dict[str, dict[str, str]]:
        """Return the jobs the scheduler marked as failing: ``{job: {"cron", "error", "at"}}``."""
        return self.scheduling.failures()

    def mark_schedule(self, job: str, error: str | None) -> None:
        """Mark a scheduler job as failing with ``error`` (None: it succeeded, clear its mark)."""
        self.scheduling.mark(job=job, error=error)


def _check_key(store: Store, vault: Vault) -> None:
    """Refuse a secret key that is not the workspace's, before anything is read or stored with it.

    A wrong ``SEGPORT_SECRET_KEY`` would otherwise encrypt new credentials that the real key cannot
    read. Workspaces made before the check token existed are checked against a stored secret.
    """
    token = store.get_setting(KEY_CHECK_SETTING)
    if token is not None:
        sample: bytes | None = token.encode("ascii")
    else:
        sample = next((store.connection_secrets(c.id) for c in store.list_connections() if c.has_secrets), None)
    if not sample:
        return
    try:
        vault.decrypt(sample)
    except WorkspaceError:
        raise WorkspaceError(
            "the secret key is not this workspace's: its stored secrets cannot be decrypted with it; use the key "
            "the workspace was created with (its secret.key file, or SEGPORT_SECRET_KEY)"
        ) from None


