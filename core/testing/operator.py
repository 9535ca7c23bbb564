"""Drive the real ``segport`` CLI in a subprocess, as an operator would (for end-to-end tests).

Also name its commands (:func:`command_paths`, :func:`command_of`), for tests that must cover every one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import click


class Operator:
    """Runs ``python -m segport`` against one workspace, acting as one user.

    The environment is the caller's minus every ``SEGPORT_*`` variable, plus ``SEGPORT_HOME`` and
    ``SEGPORT_USER``, so a developer's shell never leaks into a test.
    """

    def __init__(self, home: str | Path, user: str | None = "ada") -> None:
        self.home = Path(home)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SEGPORT_")}
        self.env["SEGPORT_HOME"] = str(self.home)
        if user:
            self.env["SEGPORT_USER"] = user

    @classmethod
    def init(cls, home: str | Path, *, admin: str = "ada", database_url: str | None = None) -> Operator:
        """Run ``segport init --admin ADMIN`` in ``home`` and return an operator acting as ``admin``.

        The workspace's database is ``database_url`` when given.
        """
        op = cls(home, admin)
        if database_url is not None:
            op.env["SEGPORT_DATABASE_URL"] = database_url
        op("init", "--admin", admin)
        return op

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 300, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one command; with ``check``, a non-zero exit fails. A traceback always fails.

        Its stdin is ``input``, or empty (never the test's terminal: a confirmation would wait on it).
        """
        result = subprocess.run(
            [sys.executable, "-m", "segport", *args],
            env=self.env,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert "Traceback" not in result.stderr, result.stderr
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        """Start a command in the background (e.g. to kill it mid-run)."""
        return subprocess.Popen(
            [sys.executable, "-m", "segport", *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def run_json(self, export: str, *options: str, check: bool = True) -> dict[str, Any]:
        """Run ``exports run EXPORT --json`` and return the run record."""
        document: dict[str, Any] = json.loads(self("exports", "run", export, *options, "--json", check=check).stdout)
        return document


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> set[str]:
    """Every leaf command under ``group``, as ``"group command"`` (e.g. ``"exports run"``)."""
    paths: set[str] = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            paths |= command_paths(command, (*prefix, name))
        else:
            paths.add(" ".join((*prefix, name)))
    return paths


def command_of(group: click.Group, args: Sequence[str]) -> str:
    """Return the command an argument list invokes under ``group``, as :func:`command_paths` names it."""
    command: click.Command = group
    path: list[str] = []
    for arg in args:
        if not isinstance(command, click.Group):
            break
        command = command.commands[arg]
        path.append(arg)
    return " ".join(path)
