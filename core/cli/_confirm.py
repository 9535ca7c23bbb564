"""Confirmation of destructive commands: asked on a terminal, ``--yes`` everywhere else."""

from __future__ import annotations

import sys
from typing import Any, Callable, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def yes_option(func: F) -> F:
    """``--yes``/``-y``: do not ask before a destructive change (required without a terminal)."""
    return click.option(
        "--yes", "-y", "yes", is_flag=True, help="Do not ask for confirmation (required when stdin is no terminal)."
    )(func)


def confirm(question: str, yes: bool) -> None:
    """Ask ``question`` on a terminal unless ``yes``; without a terminal, refuse unless ``yes``.

    A refusal is a usage error (exit 2) that names ``--yes``; a "no" on the terminal exits 1 with
    "aborted: nothing changed", and nothing is changed in either case.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"{question.rstrip('?')}: confirm with --yes (stdin is no terminal to ask on)")
    if not click.confirm(question, default=False, err=True):
        click.echo("aborted: nothing changed", err=True)
        raise click.exceptions.Exit(1)
