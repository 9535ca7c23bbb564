"""``segport plugins check NAME``: the conformance kit against an installed destination, from the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from segport import ExitStatus
from segport.testing.operator import Operator

pytestmark = pytest.mark.e2e


def test_an_installed_destination_passes_the_kit(tmp_path: Path) -> None:
    result = Operator(tmp_path / "ws")("plugins", "check", "campaignmonitor", "-k", "entry_point or specs or 401")
    assert "3 passed" in result.stdout
    assert "Warning" not in result.stdout + result.stderr  # segport's own modules are imported before pytest


def test_resilience_adds_the_crash_and_fault_checks(tmp_path: Path) -> None:
    args = ("plugins", "check", "campaignmonitor", "-k", "preflight or entry_point")
    assert "1 passed" in Operator(tmp_path / "ws")(*args).stdout  # the default kit has no resilience checks
    assert "3 passed" in Operator(tmp_path / "ws")(*args[:3], "--resilience", *args[3:]).stdout


def test_failing_checks_are_a_plugin_error(tmp_path: Path) -> None:
    result = Operator(tmp_path / "ws")("plugins", "check", "mailchimp", "-k", "no_such_check", check=False)
    assert result.returncode == ExitStatus.PLUGIN_ERROR
    assert result.stderr.strip().splitlines()[-1] == (
        "error: destination 'mailchimp' fails the conformance kit (pytest exit 5): fix the failures shown above"
    )


def test_an_unknown_destination_is_named(tmp_path: Path) -> None:
    result = Operator(tmp_path / "ws")("plugins", "check", "nosuch", check=False)
    assert result.returncode == ExitStatus.PLUGIN_ERROR
    assert result.stderr.startswith("error: unknown destination type 'nosuch'")
