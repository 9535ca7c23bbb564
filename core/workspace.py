"""The embedding API: everything the CLI does, with the same validation and permission checks.

ws = Workspace.open("./.segport", user="alice")
ws.add_connection("Newsletter", "mailchimp", {...}, agree_privacy=True)
ws.add_export("vip-to-mc", connection="Newsletter", segments=["VIP"], email_field="email")
run = ws.run_export("vip-to-mc")
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pluggy
import requests

from . import oauth, readers
from .config import split_secrets, validate
from .contract import Destination, FieldSpec
from .dispatcher import RetryPolicy
from .engine import ExportRun, RunRequest
from .errors import ConfigError, ExecutorError, NotFound, PermissionDenied, RunError, SegportError, WorkspaceError
from .executor import Executor, RunJob
from .filters import parse
from .models import AuditEntry, Connection, Export, Role, Run, Segment, Share, User
from .permissions import authorize
from .plugins import make_manager
from .registry import Registry, default_registry
from .scheduling import validate_cron
from .selection import MAX_SEGMENTS_PER_EXPORT, LoadEvaluator, Selection, refresh_filter_cache
from .store import Store, open_store, sqlite_path
from .store import database_url as store_url
from .urls import without_password
from .vault import Vault

HOME_ENV = "SEGPORT_HOME"
USER_ENV = "SEGPORT_USER"
DEFAULT_HOME = ".segport"
REFRESH_SETTING = "refresh_schedule"
KEY_CHECK_SETTING = "secret_key_check"  # a token encrypted at init: proves a key is this workspace's
_NAME = re.compile(r"^[^\x00-\x1f]{1,100}$")

PRIVACY_NOTICE = (
    "Exporting sends personal data (emails, names, attributes) outside this workspace to the "
    "destination platform, which processes it under its own terms. Confirm that you have a lawful "
    "basis and the consent needed to share it, and that the platform's data processing terms are in place."
)


def default_home() -> Path:
    """``SEGPORT_HOME`` or ``./.segport``."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)


def _check_name(kind: str, name: str) -> str:
    name = name.strip()
    if not _NAME.match(name):
        raise ConfigError(f"invalid {kind} name {name!r}: use 1 to 100 printable characters")
    return name


class Workspace:
    """One workspace folder (database, secret key, reject files), acting as one user."""

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
        self.home = home
        self.store = store
        self.vault = vault
        self.registry = registry or default_registry()
        self.pm = pm or make_manager()
        self.retry = retry or RetryPolicy()
        self.executor = executor  # with one, refresh and scheduled runs are queued for workers
        self._user_name = user

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
        admin = _check_name("user", admin)
        url = store_url(database_url)
        db_file = sqlite_path(url, path)
        store = None
        if db_file is None:  # PostgreSQL: connect first, so a bad URL leaves no key file behind
            store = open_store(url, path)
            if store.schema_version():
                store.close()
                raise WorkspaceError(
                    f"a workspace exists already in the database {store.url}: use it, or choose another database"
                )
        elif db_file.exists():
            raise WorkspaceError(f"a workspace exists already at {path}: use it, or choose another --home")
        try:
            path.mkdir(parents=True, exist_ok=True)
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
        """Open an existing workspace acting as ``user`` (default ``SEGPORT_USER``), its database
        ``database_url`` (default ``SEGPORT_DATABASE_URL``, else ``segport.db`` in the folder)."""
        path = Path(home) if home is not None else default_home()
        url = store_url(database_url)
        db_file = sqlite_path(url, path)
        if db_file is not None and not db_file.is_file():
            raise WorkspaceError(f"no workspace at {path}: create one with 'segport init --admin NAME' or pass --home")
        store = open_store(url, path)
        try:
            if db_file is None and not store.schema_version():
                raise WorkspaceError(
                    f"no workspace in the database {store.url}: create one with 'segport init --admin NAME' "
                    "(with the same --database-url), or check the URL"
                )
            store.migrate()
            vault = Vault.for_workspace(path)
            _check_key(store, vault)
        except BaseException:
            store.close()
            raise
        return cls(path, store, vault, user=user or os.environ.get(USER_ENV), **kwargs)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- acting user ----------------------------------------------------------------------------
    @property
    def user(self) -> User:
        """The acting user; raises when none is set or the name is unknown."""
        if not self._user_name:
            raise PermissionDenied(f"no acting user: pass --as NAME or set {USER_ENV} (see 'segport users list')")
        return self.store.get_user(self._user_name)

    def _identify(self) -> User:
        """The acting user, checked before any lookup: an unknown or removed user learns nothing, not even
        which exports or connections exist."""
        return self.user

    def require(self, action: str) -> User:
        """Raise :class:`PermissionDenied` unless the acting user may perform ``action``."""
        return self._authorize(action)

    def _authorize(self, action: str, resource: object = None, *, shared: bool = False) -> User:
        user = self.user
        try:
            authorize(self.pm, user, action, resource, shared=shared)
        except PermissionDenied:
            self._audit_denied(user, action, resource)
            raise
        return user

    def _audit_denied(self, user: User, action: str, resource: object) -> None:
        """Record a refused attempt in the audit log: action ``denied``, target the attempted action."""
        name = getattr(resource, "name", None)
        detail = {"role": user.role.value, **({"resource": name} if isinstance(name, str) else {})}
        try:
            with self.store.transaction():
                self.store.audit(user.name, "denied", action, detail)
        except WorkspaceError:
            pass  # a read-only or busy workspace still refuses; the refusal is what matters

    # -- users ----------------------------------------------------------------------------------
    def add_user(self, name: str, role: Role | str) -> User:
        actor = self._authorize("users.add")
        role = _role(role)
        with self.store.transaction():
            user = self.store.add_user(_check_name("user", name), role)
            self.store.audit(actor.name, "users.add", user.name, {"role": role.value})
        return user

    def list_users(self) -> list[User]:
        self._authorize("users.list")
        return self.store.list_users()

    def remove_user(self, name: str) -> User:
        """Remove a user (admins only): from then on they can do nothing. The last admin cannot go.

        What they did stays as it was: exports they own, their runs and their audit entries.
        """
        actor = self._authorize("users.remove")
        user = self.store.get_user(name)
        if user.role is Role.ADMIN and sum(u.role is Role.ADMIN for u in self.store.list_users()) == 1:
            raise ConfigError(f"user {user.name!r} is the last admin: add another admin first ('segport users add')")
        with self.store.transaction():
            self.store.remove_user(user.name)
            self.store.audit(actor.name, "users.remove", user.name, {"role": user.role.value})
        return user

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
        actor = self._authorize("connections.add")
        name = _check_name("connection", name)
        share = _share(share)
        if not agree_privacy:
            raise ConfigError(
                "adding a connection needs the data-privacy consent: personal data leaves this workspace "
                "for the platform; read 'segport connections notice' and pass --agree-privacy"
            )
        if profile_cap is not None and profile_cap < 1:
            raise ConfigError("--profile-cap must be a positive number of profiles")
        destination = self.registry.get(type)
        schema = destination.spec().connection_schema
        full = validate(config, schema, f"connection {name!r} config", hint=_spec_hint(type))
        if check and destination.oauth(full) is None:  # OAuth is checked once 'connections auth' ran
            self._check_credentials(destination, full)
        plain, secrets = split_secrets(full, schema)
        with self.store.transaction():
            connection = self.store.add_connection(
                name=name,
                type=type,
                share=share,
                config=plain,
                secrets=self.vault.encrypt(secrets) if secrets else None,
                profile_cap=profile_cap,
                user=actor.name,
            )
            self.store.audit(
                actor.name,
                "connections.add",
                name,
                {"type": type, "share": share.value, "privacy_agreed": True, "checked": check},
            )
        return connection

    def _check_credentials(self, destination: Destination, config: Mapping[str, Any]) -> str:
        auth = destination.auth(config)
        with requests.Session() as session:
            session.auth = auth
            return auth.check(session)

    def _full_config(self, connection: Connection) -> dict[str, Any]:
        token = self.store.connection_secrets(connection.id)
        secrets = self.vault.decrypt(token) if token else {}
        return {**connection.config, **secrets}

    def list_connections(self) -> list[dict[str, Any]]:
        """Admins see every connection in full; others see the shared ones' name and type only."""
        user = self._authorize("connections.list")
        admin = user.role is Role.ADMIN
        return [c.to_dict(full=admin) for c in self.store.list_connections() if admin or c.share is Share.CONTRIBUTORS]

    def get_connection(self, name: str) -> Connection:
        self._authorize("connections.show")
        return self.store.get_connection(name)

    def stored_secret_names(self, name: str) -> list[str]:
        """The names (never the values) of the secrets stored for a connection (admins only)."""
        self._authorize("connections.show")
        connection = self.store.get_connection(name)
        token = self.store.connection_secrets(connection.id)
        return sorted(self.vault.decrypt(token)) if token else []

    def test_connection(self, name: str) -> dict[str, Any]:
        """Check the stored credentials with the plugin's cheap call (a refreshed token is kept)."""
        self._authorize("connections.test")
        connection = self.store.get_connection(name)
        destination = self.registry.get(connection.type)
        auth = destination.auth(self._full_config(connection))
        with requests.Session() as session:
            session.auth = auth
            account = auth.check(session)
        changed = auth.updated_secrets()
        if changed:
            self._save_secrets(connection, changed)
        return {"connection": name, "status": "ok", "account": account}

    def authorize_connection(self, name: str, open_url: Callable[[str], Any], *, timeout: float = 300.0) -> Connection:
        """Run the destination's OAuth2 flow for a connection and store the tokens (admins only)."""
        actor = self._authorize("connections.auth")
        connection = self.store.get_connection(name)
        destination = self.registry.get(connection.type)
        config = self._full_config(connection)
        flow = destination.oauth(config)
        if flow is None:
            raise ConfigError(f"connection {name!r} does not use OAuth2 (set auth_method to oauth2 to use it)")
        schema = destination.spec().connection_schema
        full = validate(
            {**config, **oauth.authorize(flow, config, open_url, timeout=timeout)},
            schema,
            f"connection {name!r} config",
            hint=_spec_hint(connection.type),
        )
        self._check_credentials(destination, full)
        plain, secrets = split_secrets(full, schema)
        with self.store.transaction():
            self.store.update_connection_config(connection.id, plain, self.vault.encrypt(secrets))
            self.store.audit(actor.name, "connections.auth", name)
        return self.store.get_connection(name)

    def _save_secrets(self, connection: Connection, changed: Mapping[str, Any]) -> None:
        """Store config values a plugin changed while running (refreshed tokens), encrypted as before."""
        schema = self.registry.get(connection.type).spec().connection_schema
        plain, secrets = split_secrets({**self._full_config(connection), **changed}, schema)
        with self.store.transaction():
            self.store.update_connection_config(connection.id, plain, self.vault.encrypt(secrets))
            self.store.audit(self.user.name, "connections.refresh", connection.name)

    def set_profile_cap(self, name: str, cap: int | None) -> Connection:
        actor = self._authorize("connections.edit")
        if cap is not None and cap < 1:
            raise ConfigError("the profile cap must be a positive number of profiles")
        connection = self.store.get_connection(name)
        with self.store.transaction():
            self.store.set_profile_cap(connection.id, cap)
            self.store.audit(actor.name, "connections.set-cap", name, {"profile_cap": cap})
        return self.store.get_connection(name)

    def remove_connection(self, name: str) -> int:
        """Erase a connection and its secrets; its exports stay, detached and disabled. Returns their count."""
        actor = self._authorize("connections.remove")
        connection = self.store.get_connection(name)
        with self.store.transaction():
            detached = self.store.remove_connection(connection.id)
            self.store.audit(actor.name, "connections.remove", name, {"detached_exports": detached})
        return detached

    # -- profiles and segments ------------------------------------------------------------------
    def load_profiles(
        self, path: str | os.PathLike[str], *, key: str = "id", fmt: str | None = None, replace: bool = False
    ) -> dict[str, int]:
        """Load a CSV/JSONL file of profiles; all rows or none."""
        actor = self._authorize("profiles.load")
        rows = readers.read_profiles(path, key=key, fmt=fmt)
        with self.store.transaction() as db:
            evaluator = LoadEvaluator(db, self.store.list_segments())  # filter caches kept current on the way
            loaded, total, seq = self.store.load_profiles(
                rows, replace=replace, source=Path(path).name, on_chunk=evaluator
            )
            evaluator.finish(seq)
            self.store.audit(actor.name, "profiles.load", Path(path).name, {"rows": loaded, "replace": replace})
        return {"loaded": loaded, "profiles": total}

    def get_profile(self, key: str) -> dict[str, Any]:
        self._authorize("profiles.show")
        return self.store.get_profile(key)

    def load_segment(
        self, name: str, path: str | os.PathLike[str], *, key: str = "id", fmt: str | None = None
    ) -> dict[str, Any]:
        """Create or replace a static segment from a file of profile keys."""
        actor = self._authorize("segments.load")
        name = _check_name("segment", name)
        keys = (k for _, k in readers.read_segment_keys(path, key=key, fmt=fmt))
        with self.store.transaction():
            segment = self.store.save_segment(name, "static", None, actor.name)
            members, unknown = self.store.replace_members(segment.id, keys)
            self.store.audit(actor.name, "segments.load", name, {"members": members, "unknown_keys": unknown})
        return {"segment": name, "members": members - unknown, "unknown_keys": unknown}

    def define_segment(self, name: str, where: str) -> Segment:
        """Create or update a segment defined by a filter expression.

        Its membership is evaluated now and cached; every profile load keeps it current.
        """
        actor = self._authorize("segments.define")
        name = _check_name("segment", name)
        expression = str(parse(where))
        with self.store.transaction() as db:
            segment = self.store.save_segment(name, "filter", expression, actor.name)
            refresh_filter_cache(db, [segment])
            self.store.audit(actor.name, "segments.define", name, {"where": expression})
        return segment

    def list_segments(self) -> list[dict[str, Any]]:
        """Segments with their current member counts."""
        self._authorize("segments.list")
        result = []
        segments = self.store.list_segments()
        try:
            self.store.refresh_filter_caches(segments)  # a cache only: the counts are exact without it
        except WorkspaceError:
            pass  # a read-only workspace still lists its segments
        reader = self.store.reader()
        try:
            for segment in segments:
                data = segment.to_dict()
                data["members"] = Selection(reader, [segment]).materialise()
                result.append(data)
        finally:
            reader.close()
        return result

    def remove_segment(self, name: str) -> None:
        actor = self._authorize("segments.remove")
        segment = self.store.get_segment(name)
        users = [e.name for e in self.store.list_exports() if name in e.segments]
        if users:
            raise ConfigError(f"segment {name!r} is used by exports {', '.join(users)}: edit or remove them first")
        with self.store.transaction():
            self.store.remove_segment(segment.id)
            self.store.audit(actor.name, "segments.remove", name)

    # -- exports --------------------------------------------------------------------------------
    def _usable_connection(self, action: str, name: str, resource: object = None) -> Connection:
        self._identify()
        try:
            connection = self.store.get_connection(name)
        except NotFound:
            self._authorize(action, resource)
            raise
        self._authorize(action, resource or connection, shared=connection.share is Share.CONTRIBUTORS)
        return connection

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
        conn = self._usable_connection("exports.add", connection)
        export = Export(
            0,
            _check_name("export", name),
            conn.name,
            conn.id,
            list(segments),
            email_field,
            dict(mapping or {}),
            dict(options or {}),
            schedule,
            enabled,
            self.user.name,
            "",
            "",
        )
        export = self._validated(export, conn)
        with self.store.transaction():
            saved = self.store.add_export(export)
            self.store.audit(self.user.name, "exports.add", saved.name, {"connection": conn.name})
        return saved

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
        export, conn = self._export_for("exports.edit", name)
        changed = Export(
            export.id,
            export.name,
            export.connection,
            export.connection_id,
            list(segments) if segments else export.segments,
            email_field or export.email_field,
            {**export.mapping, **(mapping or {})},
            {**export.options, **(options or {})},
            None if clear_schedule else (schedule or export.schedule),
            export.enabled,
            export.owner,
            export.created_at,
            export.updated_at,
        )
        changed = self._validated(changed, conn)
        destination = self.registry.get(conn.type)
        retarget = destination.target(export.options) != destination.target(changed.options)
        with self.store.transaction():
            saved = self.store.update_export(changed)
            if retarget:  # a new audience/list: nothing was delivered there yet
                self.store.reset_sync_state(export.id)
            self.store.audit(self.user.name, "exports.edit", name, {"sync_state_reset": retarget})
        return saved

    def _validated(self, export: Export, connection: Connection) -> Export:
        destination = self.registry.get(connection.type)
        spec = destination.spec()
        if not export.segments:
            raise ConfigError(
                "an export needs at least one segment: pass --segment NAME (only segments can be exported)"
            )
        if len(set(export.segments)) != len(export.segments):
            raise ConfigError("a segment is listed twice: list each --segment once")
        if len(export.segments) > MAX_SEGMENTS_PER_EXPORT:
            raise ConfigError(f"an export can carry at most {MAX_SEGMENTS_PER_EXPORT} segments; split it in two")
        for segment in export.segments:
            self.store.get_segment(segment)
        if not export.email_field or not export.email_field.strip():
            raise ConfigError(
                "the email field is required: pass --email FIELD (the profile attribute holding the email)"
            )
        _check_mapping(export.mapping, spec.fields)
        validate(
            export.options, spec.export_schema, f"export {export.name!r} options", hint=_spec_hint(connection.type)
        )
        schedule = validate_cron(export.schedule) if export.schedule else None
        return Export(
            export.id,
            export.name,
            export.connection,
            export.connection_id,
            export.segments,
            export.email_field.strip(),
            export.mapping,
            export.options,
            schedule,
            export.enabled,
            export.owner,
            export.created_at,
            export.updated_at,
        )

    def _export_for(self, action: str, name: str) -> tuple[Export, Connection]:
        self._identify()
        export = self.store.get_export(name)
        if export.connection_id is None:
            self._authorize(action, export)
            raise RunError(
                f"export {name!r} is detached: its connection {export.connection!r} was removed; "
                "remove the export, or add a connection and a new export"
            )
        connection = self.store.get_connection_by_id(export.connection_id)
        self._authorize(action, export, shared=connection.share is Share.CONTRIBUTORS)
        return export, connection

    def list_exports(self) -> list[Export]:
        self._authorize("exports.list")
        return self.store.list_exports()

    def get_export(self, name: str) -> Export:
        self._authorize("exports.show")
        return self.store.get_export(name)

    def set_export_enabled(self, name: str, enabled: bool) -> Export:
        export, _ = self._export_for("exports.enable" if enabled else "exports.disable", name)
        changed = Export(**{**export.__dict__, "enabled": enabled})
        with self.store.transaction():
            saved = self.store.update_export(changed)
            self.store.audit(self.user.name, "exports.enable" if enabled else "exports.disable", name)
        return saved

    def remove_export(self, name: str) -> None:
        self._identify()
        export = self.store.get_export(name)
        if export.connection_id is None:
            self._authorize("exports.remove", export)
        else:
            self._export_for("exports.remove", name)
        with self.store.transaction():
            self.store.remove_export(export.id)
            self.store.audit(self.user.name, "exports.remove", name)

    # -- runs -----------------------------------------------------------------------------------
    def run_export(self, name: str, *, full: bool = False, dry_run: bool = False, trigger: str = "manual") -> Run:
        """Run an export now (or plan it with ``dry_run``); returns the run record.

        Raises the run's error when it ended failed (the run record is stored either way).
        """
        export, connection = self._export_for("exports.run", name)
        if not export.enabled and not dry_run:
            raise RunError(f"export {name!r} is disabled: enable it first ('segport exports enable {name}')")
        destination = self.registry.get(connection.type)
        config = validate(
            self._full_config(connection),
            destination.spec().connection_schema,
            f"connection {connection.name!r} config",
            hint=_spec_hint(connection.type),
        )
        request = RunRequest(
            export,
            connection,
            destination,
            config,
            self.user.name,
            trigger,
            full,
            dry_run,
            connection.profile_cap or 0,
            lambda changed: self._save_secrets(connection, changed),
        )
        return ExportRun(self.store, self.pm, self.home, self.retry).execute(request)

    def queue_export(self, name: str, *, full: bool = False, trigger: str = "manual") -> str:
        """Queue a run of an export for the workers of :attr:`executor`; returns the task id.

        The same checks as :meth:`run_export` come first; the worker runs it as the acting user.
        """
        export, _ = self._export_for("exports.run", name)
        if not export.enabled:
            raise RunError(f"export {name!r} is disabled: enable it first ('segport exports enable {name}')")
        if self.executor is None:
            raise ConfigError("no executor is configured: set SEGPORT_BROKER_URL to queue runs for 'segport worker'")
        job = RunJob(
            export.name,
            str(self.home.resolve()),
            self.user.name,
            trigger,
            full,
            without_password(self.store.url),
        )
        return self.executor.enqueue(job)

    def refresh(self, trigger: str = "refresh") -> list[dict[str, Any]]:
        """Run every enabled, attached export once; one failure does not stop the others.

        With an :attr:`executor`, each run is queued instead (status ``queued``, its ``task`` id).
        """
        self._authorize("refresh")
        if self.executor is not None:
            self.executor.check()
        results: list[dict[str, Any]] = []
        for export in self.store.list_exports():
            if not export.enabled or export.detached:
                continue
            results.append(self._run_for_schedule(export.name, trigger))
        return results

    def _run_for_schedule(self, name: str, trigger: str) -> dict[str, Any]:
        try:
            if self.executor is not None:
                return {"export": name, "status": "queued", "task": self.queue_export(name, trigger=trigger)}
            run = self.run_export(name, trigger=trigger)
        except ExecutorError:
            raise  # the broker is down: no export can be queued
        except SegportError as exc:
            return {"export": name, "status": "failed", "error": str(exc)}
        return run.to_dict()

    def schedules(self) -> dict[str, str]:
        """Every cron job: ``refresh`` (the system schedule) and ``export:NAME`` per export schedule."""
        self._authorize("schedule.show")
        jobs = {}
        refresh = self.store.get_setting(REFRESH_SETTING)
        if refresh:
            jobs["refresh"] = refresh
        for export in self.store.list_exports():
            if export.schedule and export.enabled and not export.detached:
                jobs[f"export:{export.name}"] = export.schedule
        return jobs

    def fire(self, job: str) -> list[dict[str, Any]]:
        """Run a scheduler job by its name from :meth:`schedules`."""
        if job == "refresh":
            return self.refresh(trigger="schedule")
        return [self._run_for_schedule(job.removeprefix("export:"), "schedule")]

    def get_run(self, run_id: int) -> Run:
        self._authorize("runs.show")
        self._reap()
        return self.store.get_run(run_id)

    def list_runs(self, export: str | None = None, limit: int = 50) -> list[Run]:
        self._authorize("runs.list")
        self._reap()
        return self.store.list_runs(export, limit)

    def _reap(self) -> None:
        """Show runs of dead processes as interrupted."""
        self.store.reap_stale_runs()

    # -- schedule and audit ---------------------------------------------------------------------
    def set_schedule(self, cron: str | None) -> str | None:
        actor = self._authorize("schedule.set")
        value = validate_cron(cron) if cron else None
        with self.store.transaction():
            self.store.set_setting(REFRESH_SETTING, value)
            self.store.audit(actor.name, "schedule.set", "refresh", {"cron": value})
        return value

    def get_schedule(self) -> str | None:
        self._authorize("schedule.show")
        return self.store.get_setting(REFRESH_SETTING)

    def audit_entries(self, limit: int = 100) -> list[AuditEntry]:
        self._authorize("audit.list")
        return self.store.audit_entries(limit)


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


def _spec_hint(destination: str) -> str:
    """Where a config or options error points the operator: the destination's schemas."""
    return f"see 'segport plugins show {destination}'"


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ConfigError(f"unknown role {value!r}: use admin, contributor or viewer") from None


def _share(value: Share | str) -> Share:
    try:
        return Share(value)
    except ValueError:
        raise ConfigError(f"unknown share {value!r}: use admins or contributors") from None


def _check_mapping(mapping: Mapping[str, str], fields: FieldSpec) -> None:
    pattern = re.compile(fields.pattern)
    for dest, src in mapping.items():
        if dest.lower() == "email":
            raise ConfigError("map the email with --email FIELD, not --map email=...")
        if not src:
            raise ConfigError(f"--map {dest}= names no profile attribute: use --map {dest}=ATTRIBUTE")
        if dest not in fields.known and not (fields.allow_other and pattern.match(dest)):
            known = ", ".join(fields.known) or "none"
            raise ConfigError(f"unknown destination field {dest!r} (known: {known})")
