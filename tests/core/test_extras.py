"""Extras that install alone (issue 15, item 9): a missing module is an install step, never an unreachable service.

``pip install 'segport[postgres,workers]'`` left out ``packaging``, which kombu's Redis transport
imports: ``segport refresh`` then said "cannot reach the broker ... start Redis" while Redis
answered. Here each import is made to fail as it would in such a venv (``.ci/extras-smoke``
installs each extra alone for real).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import kombu.transport
import pytest

from segport import ConfigError, Workspace, WorkspaceError
from segport.executor import Executor, RunJob
from segport.extras import install_hint
from segport.governor import RedisGovernor
from segport.store import open_store


def without(monkeypatch: pytest.MonkeyPatch, *modules: str, forget: tuple[str, ...] = ()) -> None:
    """Make ``import`` of each module fail as if it were not installed; ``forget`` modules that imported them."""
    for name in list(sys.modules):
        if any(name == m or name.startswith(m + ".") for m in (*modules, *forget)):
            monkeypatch.delitem(sys.modules, name)
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # import raises ModuleNotFoundError(name=name)


@pytest.fixture
def no_packaging(monkeypatch: pytest.MonkeyPatch) -> None:
    """A venv without ``packaging``: kombu's Redis transport cannot be imported."""
    without(monkeypatch, "packaging", forget=("kombu.transport.redis",))
    monkeypatch.setattr(kombu.transport, "_transport_cache", {})


def assert_install_step(message: str, module: str, extra: str) -> None:
    assert f"the Python module {module!r}, which is not installed" in message
    assert f"pip install 'segport[{extra}]'" in message
    assert "cannot reach" not in message and "start Redis" not in message


def test_refresh_without_packaging_names_the_install_step_not_the_broker(
    ws: Workspace, run_cli: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch, no_packaging: None
) -> None:
    monkeypatch.setenv("SEGPORT_BROKER_URL", redis_url)  # Redis answers
    result = run_cli("--as", "ada", "refresh")
    lines = result.stderr.splitlines()
    assert result.exit_code == 3 and len(lines) == 1, result.output
    assert lines[0].startswith("error: SEGPORT_BROKER_URL is set, but queuing runs for workers needs")
    assert_install_step(lines[0], "packaging", "workers")
    assert lines[0].endswith("or unset SEGPORT_BROKER_URL to run exports in-process")


def test_the_worker_without_packaging_names_the_install_step(
    run_cli: Any, redis_url: str, monkeypatch: pytest.MonkeyPatch, no_packaging: None
) -> None:
    monkeypatch.setenv("SEGPORT_BROKER_URL", redis_url)
    result = run_cli("worker")
    assert result.exit_code == 3, result.output
    assert_install_step(result.stderr, "packaging", "workers")


def test_a_module_missing_when_the_broker_is_used_is_an_install_step(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = Executor(redis_url)
    executor.check()  # Redis answers

    def fails(*args: Any, **kwargs: Any) -> Any:
        raise ModuleNotFoundError("No module named 'packaging'", name="packaging")

    monkeypatch.setattr(executor.app, "connection_for_write", fails)
    monkeypatch.setattr(executor.app, "send_task", fails)
    monkeypatch.setattr(executor.app, "AsyncResult", fails)
    for call in (executor.check, lambda: executor.enqueue(RunJob("news", "/ws", "ada")), lambda: executor.wait("t1")):
        with pytest.raises(ConfigError) as caught:
            call()
        assert_install_step(str(caught.value), "packaging", "workers")


def test_without_celery_or_the_redis_client_the_install_step_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    without(monkeypatch, "celery")
    with pytest.raises(ConfigError) as caught:
        Executor("redis://127.0.0.1:6379/0")
    assert_install_step(str(caught.value), "celery", "workers")

    monkeypatch.undo()
    without(monkeypatch, "redis")
    with pytest.raises(ConfigError) as caught:
        Executor("redis://127.0.0.1:6379/0")
    assert_install_step(str(caught.value), "redis", "workers")
    with pytest.raises(ConfigError) as caught:
        RedisGovernor("redis://127.0.0.1:6379/0")
    assert_install_step(str(caught.value), "redis", "workers")


def test_a_postgresql_url_without_psycopg_names_the_install_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without(monkeypatch, "psycopg", forget=("segport.store.postgres",))
    with pytest.raises(WorkspaceError) as caught:
        open_store("postgresql://segport:pw@127.0.0.1:1/segport", tmp_path)
    assert str(caught.value) == (
        "a PostgreSQL database needs the Python module 'psycopg', which is not installed: "
        "pip install 'segport[postgres]' (it brings 'psycopg')"
    )


def test_an_import_error_without_a_module_name_quotes_its_first_line() -> None:
    exc = ImportError("no pq wrapper available.\nAttempts made:\n- couldn't import psycopg 'c' implementation")
    assert install_hint(exc, "postgres") == (
        "a PostgreSQL database needs a module that cannot be imported (no pq wrapper available.): "
        "pip install 'segport[postgres]'"
    )
