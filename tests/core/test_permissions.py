"""The role matrix of every Workspace verb, through the API and the CLI, and the governance rules.

Users: ada (admin), carl (contributor), vera (viewer) — see the ``ws`` fixture.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, cast

import pytest
from sqlalchemy import Executable, select

from segport import (
    ConfigError,
    ExitStatus,
    NotFound,
    PermissionDenied,
    PluginError,
    RunError,
    SegportError,
    Workspace,
    WorkspaceError,
    hookimpl,
)
from segport.cli import cli
from segport.models import SharedConnection
from segport.store import database_url, open_store
from segport.store.schema import audit, connections
from segport.testing import dump_database
from segport.testing.operator import command_of, command_paths

KEY = "SECRET-KEY-9f8e7d6c"
ROLES = {"ada": "admin", "carl": "contributor", "vera": "viewer"}
ADMIN = frozenset({"ada"})
CONTRIBUTORS = frozenset({"ada", "carl"})
EVERYONE = frozenset(ROLES)



def assert_one_error_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture
def world(ws: Workspace, make_profiles: Any, tmp_path: Path) -> SimpleNamespace:
    """Profiles, two segments, an admins-only and a shared connection, an export on each, one run."""
    profiles = make_profiles(6)
    ws.load_profiles(profiles)
    ws.define_segment("fr", "country = 'FR'")
    keys = tmp_path / "vip.txt"
    keys.write_text("p000001\np000002\n", encoding="utf-8")
    ws.load_segment("vip", keys)
    ws.add_connection("private", "memory", {"api_key": KEY}, agree_privacy=True)
    ws.add_connection("shared", "memory", {"api_key": KEY}, share="contributors", agree_privacy=True)
    for conn in ("private", "shared"):
        ws.add_export(f"exp-{conn}", connection=conn, segments=["fr"], email_field="email",
                      options={"audience_id": "aud1"})
    run = ws.run_export("exp-private")
    ws.create_token("ada-ci")
    return SimpleNamespace(profiles=profiles, keys=keys, run_id=run.id)


# -- the matrix -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verb:
    """One thing a user can ask for: through the API and (unless ``cli`` is None) the CLI.

    :param action: the permission checked, when it is not the verb's name (``[...]`` removed).
    :param allowed_error: what an allowed user still gets (the memory destination has no OAuth).
    """

    name: str
    api: Callable[[Workspace, SimpleNamespace], Any]
    cli: Callable[[SimpleNamespace], list[str]] | None
    roles: frozenset[str]
    action: str | None = None
    allowed_error: type[SegportError] | None = None

    @property
    def permission(self) -> str:
        return self.action or re.sub(r"\[.*\]", "", self.name)


def _export_verbs(conn: str, roles: frozenset[str]) -> list[Verb]:
    e = f"exp-{conn}"
    return [
        Verb(f"exports.add[{conn}]",
             lambda w, _, c=conn: w.add_export("exp-new", connection=c, segments=["fr"], email_field="email",
                                               options={"audience_id": "aud1"}),
             lambda _, c=conn: ["exports", "add", "exp-new", "--connection", c, "--segment", "fr", "--email", "email",
                                "--option", "audience_id=aud1"], roles),
        Verb(f"exports.edit[{conn}]", lambda w, _: w.edit_export(e, options={"tag_prefix": "x-"}),
             lambda _: ["exports", "edit", e, "--option", "tag_prefix=x-"], roles),
        Verb(f"exports.change[{conn}]", lambda w, _: w.change_export(e, schedule="0 3 * * *"), None, roles,
             action="exports.edit"),
        Verb(f"exports.list[{conn}]", lambda w, _: w.list_exports(), lambda _: ["exports", "list"], EVERYONE),
        Verb(f"exports.show[{conn}]", lambda w, _: w.get_export(e), lambda _: ["exports", "show", e], EVERYONE),
        Verb(f"exports.enable[{conn}]", lambda w, _: w.set_export_enabled(e, True),
             lambda _: ["exports", "enable", e], roles),
        Verb(f"exports.disable[{conn}]", lambda w, _: w.set_export_enabled(e, False),
             lambda _: ["exports", "disable", e], roles),
        Verb(f"exports.remove[{conn}]", lambda w, _: w.remove_export(e),
             lambda _: ["exports", "remove", e, "--yes"], roles),
        Verb(f"exports.run[{conn}]", lambda w, _: w.run_export(e), lambda _: ["exports", "run", e], roles),
        Verb(f"exports.queue[{conn}]", lambda w, _: w.queue_export(e), None, roles, action="exports.run",
             allowed_error=ConfigError),  # no executor here: the queued path is tests/core/test_workers.py
        # the memory destination cannot read members back: an allowed user gets that PluginError
        Verb(f"exports.verify[{conn}]", lambda w, _: w.verify_export(e), lambda _: ["exports", "verify", e], roles,
             action="exports.run", allowed_error=PluginError),
        Verb(f"exports.repair[{conn}]", lambda w, _: w.repair_export(e), lambda _: ["exports", "run", e, "--repair"],
             roles, action="exports.run", allowed_error=PluginError),
        Verb(f"exports.verify-every[{conn}]", lambda w, _: w.set_verify_every(e, 2),
             lambda _: ["exports", "edit", e, "--verify-every", "2"], roles, action="exports.edit"),
    ]


VERBS = [
    Verb("users.add", lambda w, _: w.add_user("newbie", "viewer"),
         lambda _: ["users", "add", "newbie", "--role", "viewer"], ADMIN),
    Verb("users.list", lambda w, _: w.list_users(), lambda _: ["users", "list"], EVERYONE),
    Verb("users.remove", lambda w, _: w.remove_user("vera"), lambda _: ["users", "remove", "vera", "--yes"], ADMIN),
    Verb("users.role", lambda w, _: w.set_user_role("vera", "contributor"),
         lambda _: ["users", "role", "vera", "contributor"], ADMIN),
    # another user's password: admins only (everyone sets their own: tests/core/test_identities.py); the
    # empty password (the CLI reads an empty stdin) is what an allowed user is refused
    Verb("users.passwd", lambda w, _: w.set_password("ada", ""),
         lambda _: ["users", "passwd", "ada", "--password-stdin"], ADMIN, allowed_error=ConfigError),
    Verb("users.invite", lambda w, _: w.invite_user("vera"), lambda _: ["users", "invite", "vera"], ADMIN),
    Verb("tokens.create", lambda w, _: w.create_token("mine"), lambda _: ["tokens", "create", "--name", "mine"],
         EVERYONE),
    Verb("tokens.list", lambda w, _: w.list_tokens(), lambda _: ["tokens", "list"], EVERYONE),
    Verb("tokens.list[all]", lambda w, _: w.list_tokens(every_user=True), lambda _: ["tokens", "list", "--all"],
         ADMIN),
    Verb("tokens.revoke", lambda w, _: w.revoke_token("ada-ci", user="ada"),
         lambda _: ["tokens", "revoke", "ada-ci", "--user", "ada", "--yes"], ADMIN),
    Verb("connections.add", lambda w, _: w.add_connection("third", "memory", {"api_key": KEY}, agree_privacy=True),
         lambda _: ["connections", "add", "third", "--type", "memory", "--config", json.dumps({"api_key": KEY}),
                    "--agree-privacy"], ADMIN),
    Verb("connections.list", lambda w, _: w.list_connections(), lambda _: ["connections", "list"], EVERYONE),
    Verb("connections.show", lambda w, _: w.get_connection("shared"),
         lambda _: ["connections", "show", "shared"], ADMIN),
    Verb("connections.secrets", lambda w, _: w.stored_secret_names("shared"), None, ADMIN,
         action="connections.show"),
    Verb("connections.checked", lambda w, _: w.checked_account("shared"), None, ADMIN, action="connections.show"),
    Verb("connections.test", lambda w, _: w.test_connection("shared"),
         lambda _: ["connections", "test", "shared"], ADMIN),
    Verb("connections.auth", lambda w, _: w.authorize_connection("shared", lambda url: None, timeout=1),
         lambda _: ["connections", "auth", "shared", "--no-browser", "--timeout", "1"], ADMIN,
         allowed_error=ConfigError),
    # the browser's flow (the web console): begin, then complete from the redirect; memory has no OAuth
    Verb("connections.auth[begin]", lambda w, _: w.begin_authorization("shared", "http://127.0.0.1:8400/oauth/callback"),
         None, ADMIN, action="connections.auth", allowed_error=ConfigError),
    Verb("connections.auth[complete]",
         lambda w, _: w.complete_authorization("shared", state="s", expected_state="s",
                                               redirect_uri="http://127.0.0.1:8400/oauth/callback",
                                               query={"state": "s", "code": "c"}),
         None, ADMIN, action="connections.auth", allowed_error=ConfigError),
    Verb("connections.set-cap", lambda w, _: w.set_profile_cap("shared", 10),
         lambda _: ["connections", "set-cap", "shared", "10"], ADMIN, action="connections.edit"),
    Verb("connections.edit", lambda w, _: w.edit_connection("shared", share="admins"),
         lambda _: ["connections", "edit", "shared", "--share", "admins"], ADMIN),
    Verb("connections.remove", lambda w, _: w.remove_connection("shared"),
         lambda _: ["connections", "remove", "shared", "--yes"], ADMIN),
    # whoever may use the connection may list its audiences; the memory destination cannot list them,
    # so an allowed user gets that ConfigError ("type the id")
    *(Verb(f"connections.audiences[{conn}]", lambda w, _, c=conn: w.list_audiences(c),
           lambda _, c=conn: ["connections", "audiences", c], roles, action="connections.use",
           allowed_error=ConfigError) for conn, roles in (("private", ADMIN), ("shared", CONTRIBUTORS))),
    Verb("profiles.load", lambda w, x: w.load_profiles(x.profiles), lambda x: ["profiles", "load", str(x.profiles)],
         CONTRIBUTORS),
    Verb("profiles.show", lambda w, _: w.get_profile("p000001"), lambda _: ["profiles", "show", "p000001"], EVERYONE),
    Verb("profiles.attributes", lambda w, _: w.attribute_names(), None, EVERYONE, action="profiles.show"),
    Verb("profiles.key", lambda w, _: w.profile_key(), None, EVERYONE, action="profiles.show"),
    Verb("profiles.list", lambda w, _: w.list_profiles(), lambda _: ["profiles", "list"], EVERYONE),
    Verb("profiles.count", lambda w, _: w.count_profiles(where="country = 'FR'"),
         lambda _: ["profiles", "count", "--where", "country = 'FR'"], EVERYONE, action="profiles.list"),
    Verb("profiles.remove", lambda w, _: w.remove_profiles(["p000005"]),
         lambda _: ["profiles", "remove", "p000005", "--yes"], CONTRIBUTORS),
    Verb("segments.load", lambda w, x: w.load_segment("vip2", x.keys),
         lambda x: ["segments", "load", "vip2", str(x.keys)], CONTRIBUTORS),
    Verb("segments.define", lambda w, _: w.define_segment("de", "country = 'DE'"),
         lambda _: ["segments", "define", "de", "--where", "country = 'DE'"], CONTRIBUTORS),
    Verb("segments.list", lambda w, _: w.list_segments(), lambda _: ["segments", "list"], EVERYONE),
    Verb("segments.attributes", lambda w, _: w.unknown_attributes("contry = 'FR'"), None, EVERYONE,
         action="profiles.show"),
    Verb("segments.remove", lambda w, _: w.remove_segment("vip"),
         lambda _: ["segments", "remove", "vip", "--yes"], CONTRIBUTORS),
    *_export_verbs("private", ADMIN),
    *_export_verbs("shared", CONTRIBUTORS),
    Verb("runs.list", lambda w, _: w.list_runs(), lambda _: ["runs", "list"], EVERYONE),
    Verb("runs.show", lambda w, x: w.get_run(x.run_id), lambda x: ["runs", "show", str(x.run_id)], EVERYONE),
    Verb("runs.rejects", lambda w, x: w.run_rejects(x.run_id), lambda x: ["runs", "rejects", str(x.run_id)],
         EVERYONE),
    Verb("runs.prune", lambda w, _: w.prune_runs("90d"), lambda _: ["runs", "prune", "--older-than", "90d", "--yes"],
         ADMIN),
    Verb("runs.retention[set]", lambda w, _: w.set_runs_retention("90d"), lambda _: ["runs", "retention", "90d"],
         ADMIN),
    Verb("runs.retention[show]", lambda w, _: w.runs_retention(), lambda _: ["runs", "retention"], EVERYONE,
         action="runs.list"),
    Verb("schedule.set", lambda w, _: w.set_schedule("0 3 * * *"), lambda _: ["schedule", "set", "0 3 * * *"], ADMIN),
    Verb("schedule.show", lambda w, _: w.get_schedule(), lambda _: ["schedule", "show"], EVERYONE),
    Verb("schedule.jobs", lambda w, _: w.schedules(), None, EVERYONE, action="schedule.show"),
    Verb("schedule.failures", lambda w, _: w.schedule_failures(), None, EVERYONE, action="schedule.show"),
    Verb("schedule.mark", lambda w, _: w.mark_schedule("refresh", None), None, ADMIN, action="refresh"),
    Verb("schedule.overview", lambda w, _: w.schedule_overview(), None, EVERYONE, action="schedule.show"),
    Verb("key.rotate", lambda w, _: w.rotate_key(), lambda _: ["rotate-key", "--yes"], ADMIN),
    Verb("refresh", lambda w, _: w.refresh(), lambda _: ["refresh"], ADMIN),
    Verb("scheduler", lambda w, _: w.require("refresh"), lambda _: ["scheduler"], ADMIN, action="refresh"),
    Verb("fire", lambda w, _: w.fire("refresh"), None, ADMIN, action="refresh"),
    Verb("audit.list", lambda w, _: w.audit_entries(), lambda _: ["audit", "list"], ADMIN),
    # the pages of the console's and the API's lists: each checks its list's permission
    Verb("audit.page", lambda w, _: w.audit_page(action="exports"), None, ADMIN, action="audit.list"),
    Verb("users.page", lambda w, _: w.users_page(role="viewer"), None, EVERYONE, action="users.list"),
    Verb("connections.page", lambda w, _: w.connections_page(), None, EVERYONE, action="connections.list"),
    Verb("segments.page", lambda w, _: w.segments_page(search="v"), None, EVERYONE, action="segments.list"),
    Verb("exports.page", lambda w, _: w.exports_page(enabled=True), None, EVERYONE, action="exports.list"),
    Verb("runs.page", lambda w, _: w.runs_page(status="succeeded"), None, EVERYONE, action="runs.list"),
]
CASES = [pytest.param(v, u, id=f"{u}-{v.name}") for v in VERBS for u in ROLES]


SHARED_SECRETS = select(connections.c.secrets).where(connections.c.name == "shared")


def query(home: Path, statement: Executable) -> list[Any]:
    """Rows of the workspace's database (SQLite or SEGPORT_DATABASE_URL) for a SQLAlchemy statement."""
    store = open_store(database_url(), home)
    try:
        return list(store.db.execute(statement).fetchall())
    finally:
        store.close()


def assert_denial_audited(home: Path, before: str, user: str, action: str) -> None:
    """A refusal changes nothing but one audit entry: ``user`` was ``denied`` ``action``."""
    old = set(before.splitlines())
    added = [line for line in dump_database(home).splitlines() if line not in old]
    assert len(added) == 1 and added[0].startswith('INSERT INTO "audit"'), added
    latest = select(audit.c.user, audit.c.action, audit.c.target, audit.c.detail).order_by(audit.c.id.desc())
    row = query(home, latest)[0]
    assert row[:3] == (user, "denied", action)
    assert json.loads(row[3])["role"] == ROLES[user]


def assert_unknown_user_audited(home: Path, before: str, user: str, actions: list[str]) -> None:
    """Issue 15: the attempts of an unknown (or removed) user change nothing but one audit entry each:
    ``user`` was ``denied`` the action, for being unknown (the entry names no resource)."""
    old = set(before.splitlines())
    added = [line for line in dump_database(home).splitlines() if line not in old]
    assert len(added) == len(actions) and all(line.startswith('INSERT INTO "audit"') for line in added), added
    latest = select(audit.c.user, audit.c.action, audit.c.target, audit.c.detail).order_by(audit.c.id.desc())
    rows = query(home, latest.limit(len(actions)))
    assert sorted((r[0], r[1], r[2], json.loads(r[3])) for r in rows) == sorted(
        (user, "denied", action, {"reason": "unknown user"}) for action in actions
    )


@pytest.mark.parametrize(("verb", "user"), CASES)
def test_api_permission_matrix(verb: Verb, user: str, world: SimpleNamespace, act_as: Any, home: Path) -> None:
    actor = act_as(user)
    if user in verb.roles:
        if verb.allowed_error is None:
            verb.api(actor, world)  # must not raise
        else:
            with pytest.raises(verb.allowed_error):
                verb.api(actor, world)
        return
    before = dump_database(home)
    with pytest.raises(PermissionDenied) as info:
        verb.api(actor, world)
    assert f"'{user}'" in str(info.value) and ROLES[user] in str(info.value)
    assert info.value.exit_status is ExitStatus.PERMISSION_DENIED
    assert_denial_audited(home, before, user, verb.permission)


class _InstantScheduler:
    """Stands in for the scheduler loop, which would run until a signal."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def run(self, tick: float) -> None:
        pass


@pytest.mark.parametrize(("verb", "user"), [c for c in CASES if c.values[0].cli is not None])
def test_cli_permission_matrix(verb: Verb, user: str, world: SimpleNamespace, run_cli: Any, home: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert verb.cli is not None
    monkeypatch.setattr("segport.cli._schedule.Scheduler", _InstantScheduler)
    monkeypatch.setattr("signal.signal", lambda *args: None)  # keep pytest's own SIGINT handler
    before = dump_database(home)
    result = run_cli("--as", user, *verb.cli(world))
    assert "Traceback" not in result.output
    if user in verb.roles:
        expected = verb.allowed_error.exit_status if verb.allowed_error else ExitStatus.OK
        assert result.exit_code == expected, result.output
        return
    assert result.exit_code == ExitStatus.PERMISSION_DENIED, result.output
    line = assert_one_error_line(result.stderr)
    assert f"'{user}'" in line and f"({ROLES[user]})" in line
    assert result.stdout == ""
    assert_denial_audited(home, before, user, verb.permission)


def test_matrix_covers_every_workspace_action() -> None:
    """Each workspace verb appears once per connection kind (guards against a shrinking matrix)."""
    names = {re.sub(r"\[.*\]", "", v.name) for v in VERBS}
    assert names == {
        "users.add", "users.list", "users.remove", "users.role", "users.passwd", "users.invite", "tokens.create",
        "tokens.list", "tokens.revoke", "connections.add", "connections.list",
        "connections.show", "connections.secrets", "connections.checked", "connections.test", "connections.auth",
        "connections.set-cap",
        "connections.edit", "connections.remove", "connections.audiences", "exports.change",
        "profiles.load", "profiles.show", "profiles.attributes", "profiles.key", "profiles.list", "profiles.count",
        "profiles.remove",
        "segments.load", "segments.define", "segments.list", "segments.attributes",
        "segments.remove",
        "exports.add", "exports.edit", "exports.list", "exports.show", "exports.enable", "exports.disable",
        "exports.remove", "exports.run", "exports.queue", "exports.verify", "exports.repair", "exports.verify-every",
        "runs.list", "runs.show", "runs.rejects", "runs.prune",
        "runs.retention", "schedule.set", "schedule.show",
        "schedule.jobs", "schedule.failures", "schedule.mark", "schedule.overview", "key.rotate",
        "refresh", "scheduler", "fire", "audit.list",
        "audit.page", "users.page", "connections.page", "segments.page", "exports.page", "runs.page",
    }


# Commands that act for nobody: they open no workspace, or create it.
NO_ACTING_USER = {
    "init": "creates the workspace and its first admin",
    "demo": "runs in throwaway workspaces of its own",
    "sandbox": "serves a fake platform; opens no workspace",
    "plugins list": "lists installed code; opens no workspace",
    "plugins show": "shows a plugin's schemas; opens no workspace",
    "plugins check": "runs the conformance kit against doubles in throwaway workspaces; opens no workspace",
    "worker": "serves queued runs; each task opens its workspace as the user who queued it (checked then)",
    "serve": "serves the console and API; every request acts as its signed-in user (tests/web checks each route)",
    "connections notice": "prints the data-privacy notice",
    "completion": "prints a shell's completion script; names complete as the command line's user (checked then)",
}
# Public Workspace members that are not a user's request.
NOT_A_REQUEST = {
    "open": "opens a workspace as someone (checked on every request)",
    "create": "makes a workspace and its first admin",
    "close": "closes the database",
    "user": "the acting user itself (unknown: NotFound, see below)",
    **{part: "a part of the open workspace, not a request" for part in (
        "context", "home", "store", "vault", "registry", "pm", "retry", "executor"
    )},
}
# Service methods that other services call after their own check (not requests of a user).
# reached only inside other calls: retention after a run; a run's request (which checks the permission)
# and its execution, which Drift's verify and repair build on
SERVICE_HELPERS = {
    "full_config", "save_secrets", "export_for", "apply_retention", "request", "execute",
    "scheduled_repair",  # the scheduler's hook before a scheduled run (tests/plugins/*/test_drift.py)
    "password_target",  # the check 'users passwd' makes before it asks for the password (then set_password checks)
    # who a request of 'segport serve' is: they act for nobody yet (tests/core/test_identities.py)
    "login", "accept_invite", "start_session", "session_user", "end_session", "authenticate_token",
}
STUB_WORLD = SimpleNamespace(profiles=Path("p.csv"), keys=Path("k.txt"), run_id=1)


class _Called(Exception):
    pass


class _Spy:
    """Records which Workspace member a verb's API call reaches, without running it."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.names.append(name)
        raise _Called(name)


def method_of(verb: Verb) -> str:
    spy = _Spy()
    with pytest.raises(_Called):
        verb.api(cast(Workspace, spy), STUB_WORLD)
    return spy.names[0]


def test_matrix_covers_every_cli_command() -> None:
    """A new command fails here until it joins VERBS (or NO_ACTING_USER, with the reason)."""
    covered = {command_of(cli, v.cli(STUB_WORLD)) for v in VERBS if v.cli is not None}
    every = command_paths(cli)
    assert not covered & set(NO_ACTING_USER)
    assert every - covered - set(NO_ACTING_USER) == set(), "commands missing from the permission matrix"
    assert covered | set(NO_ACTING_USER) == every


def test_matrix_covers_every_public_workspace_method() -> None:
    """A new public Workspace method fails here until it joins VERBS (or NOT_A_REQUEST, with the reason)."""
    public = {name for name, _ in inspect.getmembers(Workspace) if not name.startswith("_")}
    covered = {method_of(v) for v in VERBS}
    assert public - covered - set(NOT_A_REQUEST) == set(), "Workspace methods missing from the permission matrix"
    assert covered <= public and not covered & set(NOT_A_REQUEST)


def test_matrix_reaches_every_service_method(world: SimpleNamespace) -> None:
    """Every public service method is a request some Workspace method (so some VERB) makes."""
    from segport import services

    facade = inspect.getsource(Workspace)
    for service in (services.Governance, services.Connections, services.Catalog, services.Profiles,
                    services.Exports, services.Runs, services.History, services.Schedules, services.Drift,
                    services.Identities):
        for name, _ in inspect.getmembers(service, inspect.isfunction):
            if not name.startswith("_") and name not in SERVICE_HELPERS:
                assert f".{name}(" in facade, f"{service.__name__}.{name} is reached by no Workspace method"


# -- what contributors and viewers see ------------------------------------------------------------
@pytest.mark.parametrize("user", ["carl", "vera"])
def test_non_admins_see_shared_connections_by_name_and_type_only(user: str, world: SimpleNamespace, act_as: Any,
                                                                  run_cli: Any) -> None:
    assert act_as(user).list_connections() == [SharedConnection(name="shared", type="memory")]
    result = run_cli("--as", user, "connections", "list", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"name": "shared", "type": "memory"}]
    human = run_cli("--as", user, "connections", "list")
    assert human.exit_code == 0 and "shared" in human.stdout
    for hidden in ("private", "demo", "account", "admins", KEY):
        assert hidden not in human.stdout


def test_admins_see_every_connection_in_full(world: SimpleNamespace, ws: Workspace) -> None:
    rows = {c.name: c.to_dict() for c in ws.list_connections()}
    assert set(rows) == {"private", "shared"}
    assert rows["shared"]["config"] == {"account": "demo"} and rows["shared"]["share"] == "contributors"
    assert KEY not in json.dumps(rows)


# -- the acting user ------------------------------------------------------------------------------
def test_missing_acting_user_api(world: SimpleNamespace, act_as: Any) -> None:
    with pytest.raises(PermissionDenied, match=r"no acting user") as raised:
        act_as(None).list_users()
    assert raised.value.param == "user" and "--" not in str(raised.value)  # the CLI adds its flag


def test_missing_acting_user_cli(world: SimpleNamespace, run_cli: Any) -> None:
    result = run_cli("users", "list")
    assert result.exit_code == ExitStatus.PERMISSION_DENIED
    assert "no acting user" in assert_one_error_line(result.stderr)


def test_unknown_user_api(world: SimpleNamespace, act_as: Any, home: Path) -> None:
    before = dump_database(home)
    with pytest.raises(NotFound, match="unknown user 'mallory'"):
        act_as("mallory").define_segment("x", "country = 'FR'")
    assert_unknown_user_audited(home, before, "mallory", ["segments.define"])


def test_unknown_user_cli(world: SimpleNamespace, run_cli: Any, home: Path) -> None:
    before = dump_database(home)
    result = run_cli("--as", "mallory", "segments", "define", "x", "--where", "country = 'FR'")
    assert result.exit_code == ExitStatus.NOT_FOUND
    assert "unknown user 'mallory'" in assert_one_error_line(result.stderr)
    assert_unknown_user_audited(home, before, "mallory", ["segments.define"])


def test_segport_user_env_is_the_default_acting_user(world: SimpleNamespace, run_cli: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGPORT_USER", "vera")
    result = run_cli("schedule", "set", "0 3 * * *")
    assert result.exit_code == ExitStatus.PERMISSION_DENIED
    assert "'vera' (viewer)" in assert_one_error_line(result.stderr)


# -- the privacy consent --------------------------------------------------------------------------
def test_connection_add_without_privacy_consent_is_refused(ws: Workspace, run_cli: Any, home: Path) -> None:
    before = dump_database(home)
    result = run_cli("--as", "ada", "connections", "add", "c", "--type", "memory",
                     "--config", json.dumps({"api_key": KEY}))
    assert result.exit_code != 0
    assert result.exit_code == ExitStatus.CONFIG_ERROR
    assert "--agree-privacy" in assert_one_error_line(result.stderr)
    assert dump_database(home) == before
    with pytest.raises(ConfigError, match="data-privacy consent") as raised:
        ws.add_connection("c", "memory", {"api_key": KEY})
    assert raised.value.param == "agree_privacy" and "--" not in str(raised.value)
    assert ws.list_connections() == []


def test_connection_add_records_privacy_consent_and_audits(ws: Workspace, run_cli: Any) -> None:
    result = run_cli("--as", "ada", "connections", "add", "c", "--type", "memory",
                     "--config", json.dumps({"api_key": KEY}), "--agree-privacy", "--json")
    assert result.exit_code == 0, result.output
    added = json.loads(result.stdout)
    assert added["privacy_agreed_by"] == "ada"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", added["privacy_agreed_at"])
    stored = ws.get_connection("c")
    assert (stored.privacy_agreed_by, stored.privacy_agreed_at) == ("ada", added["privacy_agreed_at"])
    audit = run_cli("--as", "ada", "audit", "list", "--json")
    assert audit.exit_code == 0
    entries = [e for e in json.loads(audit.stdout) if e["action"] == "connections.add"]
    assert len(entries) == 1
    assert entries[0]["user"] == "ada" and entries[0]["target"] == "c"
    assert entries[0]["detail"]["privacy_agreed"] is True


# -- removing a connection ------------------------------------------------------------------------
def test_removing_a_connection_detaches_exports_and_erases_secrets(world: SimpleNamespace, ws: Workspace,
                                                                    run_cli: Any, home: Path) -> None:
    token = query(home, SHARED_SECRETS)[0][0]
    assert token  # encrypted secrets were stored
    result = run_cli("--as", "ada", "connections", "remove", "shared", "--yes")
    assert result.exit_code == 0, result.output
    assert "1 export(s) detached" in result.stdout

    shown = run_cli("--as", "ada", "exports", "show", "exp-shared", "--json")
    export = json.loads(shown.stdout)
    assert export["detached"] is True and export["enabled"] is False and export["connection"] == "shared"
    listed = {e["name"]: e for e in json.loads(run_cli("--as", "ada", "exports", "list", "--json").stdout)}
    assert listed["exp-shared"]["detached"] is True and listed["exp-private"]["detached"] is False
    assert "export:exp-shared" not in ws.schedules()

    rows = query(home, SHARED_SECRETS)
    assert all(secrets is None for (secrets,) in rows)  # the row is gone, or its secrets are NULL
    with pytest.raises(RunError, match="detached"):
        ws.run_export("exp-shared")
    ws.close()  # checkpoint the WAL: the ciphertext must not linger in the files
    raw = b"".join(p.read_bytes() for p in home.iterdir() if p.name.startswith("segport.db"))
    assert token not in raw


def test_connection_remove_is_audited(world: SimpleNamespace, ws: Workspace) -> None:
    assert ws.remove_connection("shared") == 1
    entry = ws.audit_entries(1)[0]
    assert (entry.action, entry.target, entry.detail) == ("connections.remove", "shared", {"detached_exports": 1})


# -- a policy plugin has the first word -----------------------------------------------------------
class Policy:
    """Denies ada adding users; lets vera set the schedule; says nothing otherwise."""

    @hookimpl
    def segport_permission(self, user: Any, action: str, resource: object) -> bool | None:
        return {("ada", "users.add"): False, ("vera", "schedule.set"): True}.get((user.name, action))


def test_permission_hook_overrides_the_role_matrix(world: SimpleNamespace, ws: Workspace, act_as: Any) -> None:
    ws.pm.register(Policy())
    with pytest.raises(PermissionDenied, match="'ada' \\(admin\\) may not users add: a permission policy plugin"):
        ws.add_user("newbie", "viewer")
    assert act_as("vera").set_schedule("0 3 * * *") == "0 3 * * *"
    with pytest.raises(PermissionDenied):
        act_as("vera").refresh()  # no verdict: the matrix decides
    ws.set_profile_cap("shared", 5)


def test_cli_shared_connection_is_usable_by_contributors(ws: Workspace, run_cli: Any, make_profiles: Any) -> None:
    ws.load_profiles(make_profiles(3))
    ws.define_segment("fr", "country = 'FR'")
    added = run_cli("--as", "ada", "connections", "add", "team", "--type", "memory", "--share", "contributors",
                    "--config", json.dumps({"api_key": KEY}), "--agree-privacy", "--json")
    assert added.exit_code == 0 and json.loads(added.stdout)["share"] == "contributors"
    assert json.loads(run_cli("--as", "carl", "connections", "list", "--json").stdout) == [
        {"name": "team", "type": "memory"}]
    result = run_cli("--as", "carl", "exports", "add", "mine", "--connection", "team", "--segment", "fr",
                     "--email", "email", "--option", "audience_id=aud1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["owner"] == "carl"
    run = run_cli("--as", "carl", "exports", "run", "mine", "--json")
    assert run.exit_code == 0 and json.loads(run.stdout)["user"] == "carl"


# -- removed users --------------------------------------------------------------------------------
def test_a_removed_user_can_do_nothing(world: SimpleNamespace, ws: Workspace, act_as: Any, run_cli: Any,
                                       home: Path) -> None:
    removed = run_cli("--as", "ada", "users", "remove", "carl", "--yes")
    assert removed.exit_code == 0, removed.output
    assert removed.stdout == "removed user 'carl' (contributor)\n"
    assert [u.name for u in ws.list_users()] == ["ada", "vera"]
    entry = ws.audit_entries(1)[0]
    assert (entry.user, entry.action, entry.target, entry.detail) == ("ada", "users.remove", "carl",
                                                                     {"role": "contributor"})
    before = dump_database(home)
    carl = act_as("carl")
    for verb in VERBS:
        with pytest.raises(NotFound, match="unknown user 'carl'"):
            verb.api(carl, world)
        if verb.cli is not None:
            result = run_cli("--as", "carl", *verb.cli(world))
            assert result.exit_code == ExitStatus.NOT_FOUND, (verb.name, result.output)
            assert "unknown user 'carl'" in assert_one_error_line(result.stderr) and result.stdout == ""
    # not even which exports and connections exist
    for args in (["exports", "run", "nope"], ["exports", "remove", "nope"], ["exports", "edit", "nope"],
                 ["exports", "add", "x", "--connection", "nope", "--segment", "fr", "--email", "email"]):
        result = run_cli("--as", "carl", *args)
        assert "unknown user 'carl'" in assert_one_error_line(result.stderr), args
    # every refused attempt is audited (issue 15), the unknown user's too, and nothing else changed
    attempts = [v.permission for v in VERBS] + [v.permission for v in VERBS if v.cli is not None]
    attempts += ["exports.run", "exports.remove", "exports.edit", "exports.add"]
    assert_unknown_user_audited(home, before, "carl", attempts)


def test_the_last_admin_cannot_be_removed(world: SimpleNamespace, ws: Workspace, run_cli: Any, home: Path) -> None:
    before = dump_database(home)
    result = run_cli("--as", "ada", "users", "remove", "ada")
    assert result.exit_code == ExitStatus.CONFIG_ERROR
    assert "'ada' is the last admin: add another admin first" in assert_one_error_line(result.stderr)
    assert dump_database(home) == before
    ws.add_user("grace", "admin")
    ws.remove_user("ada")  # another admin remains: an admin may even remove themself
    with pytest.raises(NotFound, match="unknown user 'ada'"):
        ws.list_users()
    result = run_cli("--as", "grace", "users", "remove", "nobody")
    assert result.exit_code == ExitStatus.NOT_FOUND and "unknown user 'nobody'" in result.stderr


def test_what_a_removed_user_did_stays(world: SimpleNamespace, ws: Workspace, act_as: Any) -> None:
    act_as("carl").add_export("carls", connection="shared", segments=["fr"], email_field="email",
                              options={"audience_id": "aud1"})
    ws.remove_user("carl")
    assert ws.get_export("carls").owner == "carl"
    assert ws.run_export("carls").status.value == "succeeded"  # an admin still runs it


# -- denied attempts are audited ------------------------------------------------------------------
def test_denied_attempts_are_in_the_audit_log(world: SimpleNamespace, act_as: Any, run_cli: Any) -> None:
    assert run_cli("--as", "vera", "schedule", "set", "0 3 * * *").exit_code == ExitStatus.PERMISSION_DENIED
    with pytest.raises(PermissionDenied):
        act_as("carl").run_export("exp-private")
    result = run_cli("--as", "ada", "audit", "list", "--json")
    assert result.exit_code == 0, result.output
    denied = [e for e in json.loads(result.stdout) if e["action"] == "denied"]
    assert [(e["user"], e["target"], e["detail"]) for e in denied] == [
        ("carl", "exports.run", {"role": "contributor", "resource": "exp-private"}),
        ("vera", "schedule.set", {"role": "viewer"}),
    ]
    human = run_cli("--as", "ada", "audit", "list")
    assert "denied" in human.stdout and "schedule.set" in human.stdout
    denied_again = run_cli("--as", "carl", "audit", "list")  # reading the log is itself refused, and logged
    assert denied_again.exit_code == ExitStatus.PERMISSION_DENIED
    assert act_as("ada").audit_entries(1)[0].target == "audit.list"


def test_a_policy_plugin_denial_is_audited(world: SimpleNamespace, ws: Workspace, home: Path) -> None:
    ws.pm.register(Policy())
    before = dump_database(home)
    with pytest.raises(PermissionDenied, match="a permission policy plugin"):
        ws.add_user("newbie", "viewer")
    assert_denial_audited(home, before, "ada", "users.add")


def test_a_denial_is_still_a_denial_when_the_audit_cannot_be_written(
    world: SimpleNamespace, act_as: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    vera = act_as("vera")

    def read_only() -> Any:
        raise WorkspaceError("the workspace database is busy or read-only")

    monkeypatch.setattr(vera.store, "transaction", read_only)
    with pytest.raises(PermissionDenied, match="'vera' \\(viewer\\) may not schedule set"):
        vera.set_schedule("0 3 * * *")


# -- contributors never see connection config -----------------------------------------------------
ACCOUNT = "acct-7f3a9c"  # a non-secret config value of the shared connection


@pytest.mark.parametrize("user", ["carl", "vera"])
def test_non_admins_never_see_connection_config(user: str, world: SimpleNamespace, ws: Workspace, act_as: Any,
                                                run_cli: Any) -> None:
    """README's rule: non-admins see a shared connection's name and type, nothing else, anywhere."""
    ws.add_connection("team", "memory", {"api_key": KEY, "account": ACCOUNT}, share="contributors",
                      agree_privacy=True, profile_cap=4321)
    act_as("carl").add_export("on-team", connection="team", segments=["fr"], email_field="email",
                              options={"audience_id": "aud1"})
    run = act_as("carl").run_export("on-team")
    seen: list[str] = []
    for args in (["connections", "list"], ["users", "list"], ["exports", "list"], ["exports", "show", "on-team"],
                 ["runs", "list"], ["runs", "show", str(run.id)], ["segments", "list"], ["schedule", "show"],
                 ["profiles", "show", "p000000"]):
        for fmt in ([], ["--json"]):
            result = run_cli("--as", user, *args, *fmt)
            assert result.exit_code == 0, (args, result.output)
            seen.append(result.output)
    if user == "carl":
        again = run_cli("--as", user, "exports", "run", "on-team", "--json")
        assert again.exit_code == 0
        seen.append(again.output)
        dry = run_cli("--as", user, "exports", "run", "on-team", "--dry-run")
        seen.append(dry.output)
    actor = act_as(user)
    seen.append(json.dumps([c.to_dict() for c in actor.list_connections()]))
    seen.append(json.dumps([r.to_dict() for r in actor.list_runs()], default=str))
    seen.append(json.dumps(actor.get_export("on-team").to_dict()))
    for text in seen:
        for hidden in (ACCOUNT, KEY, "4321", "4,321", "privacy_agreed", "export_user", "'admins'"):
            assert hidden not in text, (hidden, text)
    for args in (["connections", "show", "team"], ["connections", "test", "team"]):
        result = run_cli("--as", user, *args)
        assert result.exit_code == ExitStatus.PERMISSION_DENIED and result.stdout == ""
        assert ACCOUNT not in result.stderr
    for call in (lambda w: w.get_connection("team"), lambda w: w.stored_secret_names("team"),
                 lambda w: w.test_connection("team")):
        with pytest.raises(PermissionDenied) as info:
            call(actor)
        assert ACCOUNT not in str(info.value)
