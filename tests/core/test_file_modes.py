"""Private files (issue 15, item 4): under umask 022, what segport writes is 0600 in 0700 folders.

The workspace folder, its key, its SQLite database with the WAL and shared-memory files, the reject
files and the run log hold emails, names, the audit trail and what decrypts the credentials: other
local accounts must not read them. Both stores: PostgreSQL keeps the folder, the key and the reject
files on disk too. A workspace with looser modes is tightened when opened, with one notice.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from segport import Registry, RetryPolicy, Workspace
from segport.plugins import make_manager
from segport.testing.fakes import MemoryPlatform
from segport_runlog import appender, hooks

RETRY = RetryPolicy(attempts=2, base=0.001)
REJECTED = {"user3@example.com": "spam trap", "user7@example.com": "looks fake"}


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    """The usual umask, which leaves new files readable by every account (restored after the test)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def run_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "logs" / "segport" / "runs.jsonl"  # both folders are missing: the run log makes them
    monkeypatch.setenv("SEGPORT_RUN_LOG", str(path))
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def modes_under(folder: Path) -> dict[str, int]:
    """Every folder (the top one included) and file under ``folder``, with its mode."""
    found = {".": mode(folder)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = mode(path)
    return found


def loose(found: dict[str, int], folder: Path) -> dict[str, str]:
    """The entries of ``found`` that are not private: folders other than 0700, files other than 0600."""
    wrong = {}
    for name, bits in found.items():
        wanted = 0o700 if (folder / name).is_dir() else 0o600
        if bits != wanted:
            wrong[name] = oct(bits)
    return wrong


def make_workspace(home: Path, registry: Registry, database_url: str | None, make_profiles: Any) -> Workspace:
    """A workspace with the run log plugin and one export of 12 profiles to the memory destination."""
    pm = make_manager(autoload=False, plugins=[hooks])
    ws = Workspace.create(home, "ada", database_url=database_url, registry=registry, pm=pm, retry=RETRY)
    ws.load_profiles(make_profiles(12))
    ws.define_segment("all", "email is not empty")
    ws.add_connection("Newsletter", "memory", {"api_key": "memory-key-0001"}, agree_privacy=True)
    options = {"audience_id": "aud1"}
    ws.add_export("news", connection="Newsletter", segments=["all"], email_field="email", options=options)
    return ws


def test_every_file_segport_writes_is_private_under_umask_022(
    home: Path,
    registry: Registry,
    platform: MemoryPlatform,
    database_url: str | None,
    make_profiles: Any,
    run_log: Path,
) -> None:
    platform.reject_emails = dict(REJECTED)
    ws = make_workspace(home, registry, database_url, make_profiles)
    try:
        run = ws.run_export("news")
        assert run.counts["rejected"] == 2 and run.reject_file is not None
        reject_file = Path(run.reject_file)
        assert reject_file.parent.parent == home
        if database_url is None:  # SQLite: the write-ahead log and shared memory exist while the database is open
            assert {"segport.db", "segport.db-wal", "segport.db-shm"} <= set(modes_under(home))
        open_modes = modes_under(home)
    finally:
        ws.close()

    assert {"secret.key", reject_file.relative_to(home).as_posix()} <= set(open_modes)
    assert loose(open_modes, home) == {}
    assert loose(modes_under(home), home) == {}
    assert mode(run_log) == 0o600
    assert mode(run_log.parent) == 0o700 and mode(run_log.parent.parent) == 0o700


@pytest.mark.sqlite_only("the database file and its WAL/SHM files are SQLite's")
def test_a_database_file_outside_the_folder_is_private_too(
    home: Path, registry: Registry, tmp_path: Path, make_profiles: Any
) -> None:
    database = tmp_path / "elsewhere" / "segport.sqlite"
    database.parent.mkdir()
    with make_workspace(home, registry, f"sqlite:///{database}", make_profiles) as ws:
        ws.run_export("news")
        files = sorted(database.parent.iterdir())
        assert [p.name for p in files] == ["segport.sqlite", "segport.sqlite-shm", "segport.sqlite-wal"]
        assert {p.name: oct(mode(p)) for p in files} == {p.name: "0o600" for p in files}


def loosen(home: Path) -> None:
    """Open the workspace's folders and files to every account, as an older segport under umask 022 left them."""
    for path in [home, *home.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def test_an_existing_workspace_is_tightened_on_open_with_one_notice(
    home: Path,
    registry: Registry,
    platform: MemoryPlatform,
    database_url: str | None,
    make_profiles: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    platform.reject_emails = dict(REJECTED)
    with make_workspace(home, registry, database_url, make_profiles) as ws:
        reject_file = Path(ws.run_export("news").reject_file or "")
    notes = home / "notes.txt"  # the user's own file in the folder: not segport's to change
    notes.write_text("mine\n", encoding="utf-8")
    loosen(home)

    caplog.set_level(logging.WARNING)
    with Workspace.open(home, "ada", registry=registry):
        pass
    notices = [r.getMessage() for r in caplog.records if r.getMessage().startswith("notice:")]
    assert len(notices) == 1
    assert str(home) in notices[0] and "secret.key" in notices[0] and reject_file.name in notices[0]
    assert ("segport.db" in notices[0]) == (database_url is None)
    assert loose(modes_under(home), home) == {"notes.txt": "0o644"}

    caplog.clear()
    with Workspace.open(home, "ada", registry=registry):  # nothing left to tighten: no notice
        pass
    assert not [r for r in caplog.records if r.getMessage().startswith("notice:")]


def test_the_cli_prints_the_notice_as_one_line_on_stderr(
    home: Path, registry: Registry, database_url: str | None, make_profiles: Any
) -> None:
    make_workspace(home, registry, database_url, make_profiles).close()
    loosen(home)

    result = subprocess.run(
        [sys.executable, "-m", "segport", "--home", str(home), "--as", "ada", "users", "list"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "ada" in result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("notice: other accounts could read the workspace at"), lines
    assert "0700" in lines[0] and "0600" in lines[0]
    assert loose(modes_under(home), home) == {}


def test_creating_a_workspace_in_an_existing_open_folder_makes_it_private(
    home: Path, registry: Registry, database_url: str | None
) -> None:
    home.mkdir()
    os.chmod(home, 0o755)
    Workspace.create(home, "ada", database_url=database_url, registry=registry).close()
    assert loose(modes_under(home), home) == {}


def test_an_existing_shared_run_log_is_kept_and_named_in_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(appender, "_warned", set())
    shared = tmp_path / "runs.jsonl"
    shared.write_text("", encoding="utf-8")
    os.chmod(shared, 0o640)  # the operator's choice, e.g. for a log shipper's group

    caplog.set_level(logging.WARNING, logger="segport_runlog")
    appender.append_line(shared, {"event": "run.started"})
    appender.append_line(shared, {"event": "run.finished"})
    assert mode(shared) == 0o640 and len(shared.read_text(encoding="utf-8").splitlines()) == 2
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and str(shared) in warnings[0] and "0640" in warnings[0]
