"""Append JSON lines to a file so that concurrent writers never interleave them.

The run log tells which exports ran, when, with which outcome: a file it creates is private
(0600, missing folders 0700) whatever the umask. An existing file keeps the mode its owner gave
it; if other accounts have access to it, one warning per process says so.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any, Mapping

FILE_MODE = 0o600
FOLDER_MODE = 0o700
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
logger = logging.getLogger("segport_runlog")
_warned: set[Path] = set()  # shared run logs already warned about in this process


def append_line(path: Path, entry: Mapping[str, Any]) -> None:
    """Append ``entry`` to ``path`` as one JSON line, with a single ``write`` on an ``O_APPEND`` descriptor.

    Each such write lands whole at the end of the file, so lines written at the same time by
    several threads or processes never mix. Missing parent folders are created.

    :param path: the JSON-lines file (created if missing, mode 0600; missing folders 0700).
    :param entry: a JSON-serialisable object, written on one line.
    :raises OSError: the folder or file cannot be created or written, or the disk is full (a
        partial line is then ended with a newline, when possible, so later lines stay readable).
    """
    data = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    make_folders(path.parent)
    fd = open_private(path)
    try:
        written = os.write(fd, data)
        if written != len(data):
            try:
                os.write(fd, b"\n")
            except OSError:
                pass
            raise OSError(errno.ENOSPC, f"only {written} of {len(data)} bytes written")
    finally:
        os.close(fd)


def make_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each with mode 0700 (existing ones are left as they are)."""
    if folder.is_dir():
        return
    make_folders(folder.parent)
    try:
        folder.mkdir(mode=FOLDER_MODE)
    except FileExistsError:
        return
    os.chmod(folder, FOLDER_MODE)  # mkdir's mode went through the umask


def open_private(path: Path) -> int:
    """Return a descriptor appending to ``path``: a new file is created 0600; a shared existing one is warned about."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | _CLOEXEC, FILE_MODE)
    except FileExistsError:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _CLOEXEC, FILE_MODE)
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077 and path not in _warned:
            _warned.add(path)
            logger.warning(
                "run log %s is open to other accounts (mode %04o): chmod 600 it unless that is intended", path, mode
            )
        return fd
    os.fchmod(fd, FILE_MODE)  # exactly 0600, whatever the umask
    return fd
