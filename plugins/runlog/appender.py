"""Append JSON lines to a file so that concurrent writers never interleave them."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any, Mapping


def append_line(path: Path, entry: Mapping[str, Any]) -> None:
    """Append ``entry`` to ``path`` as one JSON line, with a single ``write`` on an ``O_APPEND`` descriptor.

    Each such write lands whole at the end of the file, so lines written at the same time by
    several threads or processes never mix. Missing parent folders are created.

    :param path: the JSON-lines file (created if missing, mode 0666 less the umask).
    :param entry: a JSON-serialisable object, written on one line.
    :raises OSError: the folder or file cannot be created or written, or the disk is full (a
        partial line is then ended with a newline, when possible, so later lines stay readable).
    """
    data = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
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
