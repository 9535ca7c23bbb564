"""Reading a password on the command line, and durations of credentials (``--expires 90d``)."""

from __future__ import annotations

import sys

import click

from ..errors import InputError
from ..services.history import parse_age


def age_seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """Return an option's duration in seconds (None: not given): a whole number and s, min, h, d or w (``90d``).

    What is not one, or is zero, is a usage error.
    """
    if value is None:
        return None
    try:
        seconds = int(parse_age(value).total_seconds())
    except InputError:
        raise click.BadParameter(
            f"{value!r} is no duration: give a whole number and a unit, s, min, h, d or w (e.g. 90d)", ctx, param
        ) from None
    if seconds <= 0:
        raise click.BadParameter("give a duration longer than zero", ctx, param)
    return seconds


def _terminal() -> bool:
    return sys.stdin.isatty()


def read_password(from_stdin: bool) -> str:
    """Return the password: stdin's content without its final line break, or asked twice, hidden, on a terminal.

    Without a terminal and without ``from_stdin`` it is a usage error (exit 2): nothing is asked.
    """
    if from_stdin:
        return sys.stdin.read().rstrip("\r\n")
    if not _terminal():
        raise click.UsageError("no terminal to ask for the password on: pass it on stdin with --password-stdin")
    password: str = click.prompt("New password", hide_input=True, confirmation_prompt="Repeat it", err=True)
    return password
