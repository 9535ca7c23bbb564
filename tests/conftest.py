"""Shared fixtures: a workspace on a temporary folder with the in-memory destination.

Tests that use a workspace (``ws``, ``act_as``, ``hooked_ws``, ``run_cli``, or ``database_url``
itself) run twice: ``[sqlite]`` (the workspace's own ``segport.db``) and ``[postgres]`` (a fresh
database of a throwaway cluster, named by ``SEGPORT_DATABASE_URL``, so the CLI and every
``Workspace.open`` of the test use it too). ``@pytest.mark.sqlite_only("why")`` keeps a test on
SQLite. Without PostgreSQL binaries the ``[postgres]`` tests skip, but fail under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, settings

from segport import Registry, RetryPolicy, Workspace
from segport.cli import cli
from segport.plugins import make_manager
from segport.registry import set_default_registry
from segport.store import open_store
from segport.testing.fakes import MemoryPlatform, memory_destination
from segport.testing.postgres import PostgresCluster, PostgresUnavailable
from segport.testing.redis import RedisServer

# Every fuzz test (tests/**/test_fuzz.py): reproducible (derandomized, no example database), no
# deadline on a loaded machine; SEGPORT_FUZZ_EXAMPLES=5000 explores further.
settings.register_profile(
    "segport",
    max_examples=int(os.environ.get("SEGPORT_FUZZ_EXAMPLES", "150")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
settings.load_profile("segport")
FAST_RETRY = RetryPolicy(attempts=4, base=0.001, cap=0.01)
STORES = ("sqlite", "postgres")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker more than the cores (``--maxprocesses`` caps it).

    Many tests wait on sandboxes, subprocesses and the scheduler's minute, not on the CPU: a third
    worker on 2 cores fills that time (about a third of the suite's wall time was idle CPU).
    """
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end tests first (in their order), then the rest.

    The e2e tests take seconds to minutes each, the others well under one: queued first, the long ones
    spread over the workers while the short ones fill in at the end, instead of one long test (the
    example plugin's, the last file collected) running alone while the other workers sit idle.
    """
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only(reason): runs against the SQLite store only, for that reason")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test using a workspace runs against both stores, unless marked ``sqlite_only``."""
    chosen = any("database_url" in m.args[0] for m in metafunc.definition.iter_markers("parametrize"))
    if "database_url" in metafunc.fixturenames and not chosen:
        stores = ["sqlite"] if metafunc.definition.get_closest_marker("sqlite_only") else list(STORES)
        metafunc.parametrize("database_url", stores, indirect=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for the session (initdb in a temporary folder, a free loopback port)."""
    try:
        cluster = PostgresCluster.start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL is not available: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server for the session (a free loopback port, no persistence, a temporary folder)."""
    try:
        server = RedisServer()
    except FileNotFoundError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc}: CI must run the worker and shared-governor tests")
        pytest.skip(str(exc))
    with server:
        yield server.url


@pytest.fixture
def database_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str | None]:
    """None for the SQLite store; for PostgreSQL the URL of a new database, also in SEGPORT_DATABASE_URL."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield None
        return
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    monkeypatch.setenv("SEGPORT_DATABASE_URL", url)
    yield url
    cluster.drop_database(url)


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashes() -> Iterator[None]:
    """Argon2id at its cheapest parameters in tests: the real ones cost half a second per hash, by design."""
    try:
        from argon2 import PasswordHasher, profiles
    except ImportError:  # the web extra is not installed: no password is hashed
        yield
        return
    from segport.services import identities

    saved = identities._hasher
    identities._hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
    yield
    identities._hasher = saved


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SEGPORT_* setting inherited from the developer's shell: workspace, user, key, plugin narrowing, hooks."""
    for name in [n for n in os.environ if n.startswith("SEGPORT_")]:  # workspace, user, key, hook plugins
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def platform() -> MemoryPlatform:
    return MemoryPlatform()


@pytest.fixture
def registry(platform: MemoryPlatform) -> Iterator[Registry]:
    """The memory destination as the process-wide registry (what the CLI sees)."""
    reg = Registry.from_plugins([memory_destination(platform, batch_size=10, max_concurrency=3)])
    set_default_registry(reg)
    yield reg
    set_default_registry(None)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def ws(home: Path, registry: Registry, database_url: str | None) -> Iterator[Workspace]:
    """A new workspace acting as admin 'ada' (also users 'carl' contributor, 'vera' viewer)."""
    workspace = Workspace.create(
        home, "ada", database_url=database_url, registry=registry, pm=make_manager(autoload=False), retry=FAST_RETRY
    )
    workspace.add_user("carl", "contributor")
    workspace.add_user("vera", "viewer")
    yield workspace
    workspace.close()


@pytest.fixture
def act_as(ws: Workspace) -> Any:
    """``act_as('carl')``: the same workspace acting as another user (closed at teardown)."""
    opened: list[Workspace] = []

    def open_as(name: str | None) -> Workspace:
        other = Workspace.open(ws.home, user=name, registry=ws.registry, pm=ws.pm, retry=ws.retry)
        opened.append(other)
        return other

    yield open_as
    for other in opened:
        other.close()


@pytest.fixture
def make_profiles(tmp_path: Path) -> Any:
    """``make_profiles(rows, start=0, name='profiles.csv')`` writes a CSV and returns its path."""

    def make(rows: int, *, start: int = 0, name: str = "profiles.csv") -> Path:
        return write_profiles(tmp_path / name, rows, start=start)

    return make


@pytest.fixture
def memory_export(tmp_path: Path) -> Callable[[Workspace, int], None]:
    """``memory_export(ws, count)``: ``count`` profiles (``p000``, ``user0@example.com``, ``First0``...),
    segment ``All`` (every email), connection ``mem`` and export ``all`` to the memory destination."""

    def make(ws: Workspace, count: int) -> None:
        rows = ["id,email,first_name"] + [f"p{i:03d},user{i}@example.com,First{i}" for i in range(count)]
        (tmp_path / "profiles.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        ws.load_profiles(tmp_path / "profiles.csv")
        ws.define_segment("All", "email is not empty")
        ws.add_connection("mem", "memory", {"api_key": "memory-key-0001"}, agree_privacy=True)
        options = {"audience_id": "aud1"}
        ws.add_export(
            "all",
            connection="mem",
            segments=["All"],
            email_field="email",
            mapping={"FNAME": "first_name"},
            options=options,
        )

    return make


@pytest.fixture
def hooked_ws(
    home: Path, registry: Registry, make_profiles: Any, database_url: str | None
) -> Iterator[Callable[..., Workspace]]:
    """``hooked_ws(*hook_plugins, export="vip-news", rows=12)``: a workspace with those hook plugins and
    one export of ``rows`` profiles (segment ``all``) to the memory destination; closed at teardown."""
    opened: list[Workspace] = []

    def make(*plugins: Any, export: str = "vip-news", rows: int = 12) -> Workspace:
        pm = make_manager(autoload=False, plugins=plugins)
        workspace = Workspace.create(home, "ada", registry=registry, pm=pm, retry=RetryPolicy(attempts=2, base=0.001))
        opened.append(workspace)
        workspace.load_profiles(make_profiles(rows))
        workspace.define_segment("all", "email is not empty")
        workspace.add_connection("Newsletter", "memory", {"api_key": "memory-key-0001"}, agree_privacy=True)
        options = {"audience_id": "aud1"}
        workspace.add_export(export, connection="Newsletter", segments=["all"], email_field="email", options=options)
        return workspace

    yield make
    for workspace in opened:
        workspace.close()


def write_profiles(path: Path, rows: int, *, start: int = 0) -> Path:
    """A CSV of ``rows`` profiles: id, email, first_name, last_name, country, age."""
    lines = ["id,email,first_name,last_name,country,age"]
    for i in range(start, start + rows):
        country = ("FR", "DE", "US")[i % 3]
        lines.append(f"p{i:06d},User{i}@Example.com,First{i},Last{i},{country},{18 + i % 60}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def run_cli(home: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch, database_url: str | None) -> Any:
    """Invoke the CLI in-process: ``run_cli('--as', 'ada', 'users', 'list')`` -> click Result."""
    monkeypatch.setattr("segport.workspace.make_manager", lambda: make_manager(autoload=False))
    monkeypatch.setattr("segport.workspace.RetryPolicy", lambda: FAST_RETRY)

    def invoke(*args: str, input: str | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(cli, ["--home", str(home), *args], input=input, catch_exceptions=True)

    return invoke


@pytest.fixture
def committed_so_far() -> Callable[..., int]:
    """``committed_so_far(home, database_url=None)``: records the latest run has committed so far ("created"),
    read straight from the workspace's database (its ``segport.db``, or the PostgreSQL one) while it runs."""

    def committed(home: Path, database_url: str | None = None) -> int:
        if database_url is not None:
            store = open_store(database_url, home)
            try:
                runs = store.list_runs(limit=1)
            finally:
                store.close()
            return runs[0].counts.get("created", 0) if runs else 0
        db = sqlite3.connect(f"file:{home / 'segport.db'}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT counts FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        except sqlite3.OperationalError:
            return 0
        finally:
            db.close()
        return int(json.loads(row[0]).get("created", 0)) if row else 0

    return committed
