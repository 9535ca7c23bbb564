"""Private files: what segport keeps about people is readable by its owner only, whatever the umask.

The workspace database holds emails, names and the audit trail; reject files hold emails and
reasons; the key file decrypts credentials. So every folder segport makes for them is 0700
(:data:`FOLDER_MODE`) and every file 0600 (:data:`FILE_MODE`): created with that mode by
``os.open`` and set exactly with ``fchmod`` (a umask can only take bits away, never add the
owner's). SQLite creates its ``-wal``, ``-shm`` and ``-journal`` files with the database file's
mode, so a database file created private keeps them private too.

A workspace made before (or copied with looser modes) is tightened when it is opened:
:func:`tighten` takes the group's and others' bits off segport's own folders and files only,
never off anything else a user keeps in the folder.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)
REJECTS_FOLDER = "rejects"  # in the workspace folder: a run's reject file is rejects/run-ID.jsonl
FILE_MODE = 0o600
FOLDER_MODE = 0o700
SHARED_BITS = 0o077  # the group's and others' permissions
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

__all__ = [
    "FILE_MODE",
    "FOLDER_MODE",
    "REJECTS_FOLDER",
    "create_file",
    "make_folder",
    "open_append",
    "tighten",
    "tighten_workspace",
]


def reject_path(home: Path, run_id: int) -> Path:
    """Return the absolute path of run ``run_id``'s reject file in the workspace folder ``home``."""
    return home.absolute() / REJECTS_FOLDER / f"run-{run_id}.jsonl"


def make_folder(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700; an existing folder keeps its mode."""
    try:
        path.mkdir(parents=True, mode=FOLDER_MODE)
    except FileExistsError:
        if not path.is_dir():
            raise
        return
    os.chmod(path, FOLDER_MODE)  # mkdir's mode went through the umask


def create_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; return whether it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return True


def open_append(path: Path) -> int:
    """Return a descriptor appending to ``path``; a missing file is created with mode 0600."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | _CLOEXEC, FILE_MODE)
    except FileExistsError:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return fd


def tighten(paths: Iterable[Path]) -> list[Path]:
    """Take the group's and others' bits off each of ``paths`` that has any; return the paths changed.

    Missing paths and symbolic links are skipped (a link's target is not segport's to change), and
    so are paths ``chmod`` refuses (another owner's file, a read-only mount): opening the workspace
    goes on, and the caller says what was changed.
    """
    changed: list[Path] = []
    for path in paths:
        try:
            found = os.lstat(path)
        except OSError:  # missing, or in a folder this account cannot search
            continue
        if stat.S_ISLNK(found.st_mode) or not found.st_mode & SHARED_BITS:
            continue
        try:
            os.chmod(path, stat.S_IMODE(found.st_mode) & ~SHARED_BITS)
        except OSError:
            continue
        changed.append(path)
    return changed


def tighten_workspace(home: Path, files: Iterable[Path]) -> list[Path]:
    """Tighten the workspace folder, its reject files and ``files`` (key, database); one notice says what changed.

    The notice is one warning of the ``segport.private`` logger (on stderr when logging is not
    configured, as in the CLI). Returns the paths changed.
    """
    rejects = home / REJECTS_FOLDER
    owned = [home, *files, rejects]
    if rejects.is_dir():
        owned += sorted(rejects.glob("*.jsonl"))
    changed = tighten(owned)
    if changed:
        log.warning("notice: %s", _tightened(home, changed))
    return changed


def _tightened(home: Path, changed: list[Path]) -> str:
    """Return the notice's text: which folders and files other accounts could read, now private."""
    folders = [p for p in changed if p.is_dir()]
    files = [p for p in changed if not p.is_dir()]

    def names(paths: list[Path]) -> str:
        shown = [str(p.relative_to(home)) if p.is_relative_to(home) and p != home else str(p) for p in paths[:5]]
        more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
        return ", ".join(shown) + more

    parts = [f"{len(folders)} folder(s) to 0700 ({names(folders)})"] if folders else []
    parts += [f"{len(files)} file(s) to 0600 ({names(files)})"] if files else []
    return f"other accounts could read the workspace at {home}: tightened {' and '.join(parts)}"
