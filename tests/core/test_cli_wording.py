"""The CLI's words to a new user: help hints, plurals, "did you mean" a time zone, "no" to a confirmation."""

from __future__ import annotations

import os
import pty
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from segport.cli._common import counted
from segport.cli._runs import _print_prune
from segport.services.history import PruneReport
from segport.testing.operator import Operator

pytestmark = pytest.mark.e2e


def test_an_unknown_command_points_at_the_root_help_with_one_space(tmp_path: Path) -> None:
    op = Operator.init(tmp_path / "ws")
    result = op("bogus", check=False)
    assert result.returncode == 2
    assert result.stderr == "error: No such command 'bogus'. (see 'segport --help')\n"
    nested = op("exports", "bogus", check=False)
    assert nested.stderr == "error: No such command 'bogus'. (see 'segport exports --help')\n"


@pytest.mark.parametrize(
    "args, command",
    [(["--as"], "segport"), (["users", "list", "--as"], "segport users list"),
     (["--home", "ws", "exports", "list", "--as"], "segport exports list")],
)
def test_an_option_without_its_value_points_at_its_command_help(
    tmp_path: Path, args: list[str], command: str
) -> None:
    op = Operator.init(tmp_path / "ws")
    result = op(*args, check=False)
    assert result.returncode == 2
    assert result.stderr == f"error: Option '--as' requires an argument. (see '{command} --help')\n"


def test_counts_are_singular_for_one() -> None:
    assert [counted(1, "reject file"), counted(0, "run"), counted(2048, "byte")] == [
        "1 reject file", "0 runs", "2,048 bytes"
    ]
    report = PruneReport("30d", "2026-11-07T00:00:00+00:00", False, runs=1, outcomes=1, files=1, bytes=1, run_ids=[4])

    def show() -> None:
        _print_prune(report, False)

    output = CliRunner().invoke(click.command()(show)).output
    assert output.splitlines()[0] == (
        "removed 1 run started before 2026-11-07T00:00:00+00:00 (older than 30d), 1 outcome, 1 reject file (1 byte)"
    )


def test_a_time_zone_in_the_wrong_case_gets_its_right_name(tmp_path: Path) -> None:
    op = Operator.init(tmp_path / "ws")
    result = op("schedule", "set", "@daily", "--timezone", "europe/paris", check=False)
    assert result.returncode == 4
    assert "did you mean Europe/Paris?" in result.stderr
    unknown = op("schedule", "set", "@daily", "--timezone", "Mars/Base", check=False)
    assert unknown.returncode == 4 and "did you mean" not in unknown.stderr


def on_a_terminal(op: Operator, answer: bytes, *args: str) -> tuple[int, str]:
    """Run ``segport ARGS`` on a pseudo-terminal, answer its question with ``answer``; its exit code and output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: segport, its stdin, stdout and stderr the terminal
        os.execve(sys.executable, [sys.executable, "-m", "segport", *args], op.env)
    output = b""
    while b"[y/N]" not in output:
        chunk = os.read(fd, 1024)
        assert chunk, output
        output += chunk
    os.write(fd, answer + b"\n")
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the terminal closed with the child
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode()


def test_no_to_a_confirmation_exits_1_and_changes_nothing(tmp_path: Path, database_url: str | None) -> None:
    op = Operator.init(tmp_path / "ws", database_url=database_url)
    op("users", "add", "bob", "--role", "viewer")
    status, output = on_a_terminal(op, b"n", "users", "remove", "bob")
    assert status == 1, output
    assert "remove user 'bob'" in output and output.rstrip().endswith("aborted: nothing changed")
    assert "bob" in op("users", "list").stdout
