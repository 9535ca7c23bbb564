"""Shared CLI plumbing: the invocation state, JSON/table output, small parsers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence, TypeVar

import click

from ..config import parse_option_value
from ..errors import ConfigError
from ..executor import Executor
from ..workspace import Workspace

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    """Global options and the lazily opened workspace of one invocation."""

    home: str | None
    user: str | None
    debug: bool
    database_url: str | None = field(default=None, repr=False)  # may hold a password
    _workspace: Workspace | None = field(default=None, repr=False)

    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = Workspace.open(
                self.home, user=self.user, database_url=self.database_url, executor=Executor.from_env()
            )
        return self._workspace

    def close(self) -> None:
        if self._workspace is not None:
            self._workspace.close()


pass_state = click.make_pass_decorator(State)


def json_option(func: F) -> F:
    """``--json``: print exactly one JSON document on stdout."""
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(func)


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def emit_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], empty: str = "(none)") -> None:
    """A plain aligned table for humans."""
    if not rows:
        click.echo(empty)
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items() if v)
    return str(value)


def parse_pairs(values: Iterable[str], option: str, *, as_json: bool = False) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values parse as JSON where they can when ``as_json``."""
    result: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} {item!r} must look like KEY=VALUE")
        result[key.strip()] = parse_option_value(value) if as_json else value.strip()
    return result
