"""Shared CLI plumbing: the invocation state, JSON/table output, small parsers."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence, TypeVar

import click

from ..config import parse_option_value
from ..errors import ConfigError, SegportError
from ..executor import Executor
from ..services.changes import describe
from ..workspace import Workspace

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    """Global options and the lazily opened workspace of one invocation."""

    home: str | None
    user: str | None
    debug: bool
    database_url: str | None = field(default=None, repr=False)  # may hold a password
    json: bool = False  # --json was given: output, and a failure too, is one JSON document
    _workspace: Workspace | None = field(default=None, repr=False)

    def set_option(self, name: str, value: Any) -> None:
        """Set a global option given after the command (``--as``, ``--home``, ...), before the workspace opens."""
        if name == "debug" and value and not self.debug:
            start_debug_logging()
        setattr(self, name, value)

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


def start_debug_logging() -> None:
    """``--debug``: log at DEBUG level on stderr."""
    import logging

    logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")


SQL_INT_MAX = 2**63 - 1  # the largest integer the stores' columns hold


class Count(click.IntRange):
    """An integer range whose values also fit the stores' 64-bit columns (help shows the range as given)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Return the integer, refused (a usage error) past the range or past :data:`SQL_INT_MAX`."""
        number = super().convert(value, param, ctx)
        if number > SQL_INT_MAX:
            self.fail(f"it is larger than {SQL_INT_MAX}", param, ctx)
        return number


class Finite(click.FloatRange):
    """A float range that also refuses NaN and the infinities (which compare as inside any range)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Return the float, refused (a usage error) when it is not a finite number in the range."""
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


# How to set, on the command line, the service argument an error names (``SegportError.param``):
# the services' messages name no flag, the CLI adds its own.
FLAG_HINTS = {
    "user": "pass --as NAME or set SEGPORT_USER; see 'segport users list'",
    "home": "pass --home FOLDER; 'segport init --admin NAME' creates a workspace",
    "database_url": "pass --database-url or set SEGPORT_DATABASE_URL; 'segport init --admin NAME' creates a workspace",
    "agree_privacy": "see 'segport connections notice', then pass --agree-privacy",
    "profile_cap": "pass --profile-cap N",
    "share": "pass --share admins or --share contributors",
    "segments": "pass --segment NAME, once per segment",
    "email_field": "pass --email FIELD",
    "mapping": "pass --map FIELD=ATTRIBUTE",
    "enabled": "see 'segport exports enable --help'",
}


def with_hint(error: SegportError) -> str:
    """Return the error's one line, with how to fix it on the command line when it names an argument."""
    hint = FLAG_HINTS.get(error.param or "")
    return f"{error} ({hint})" if hint else str(error)


def json_flag(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """Return a command's ``--json``, also true after the global ``--json``; mark the invocation as wanting JSON."""
    state = ctx.find_object(State)
    if state is None:
        return value
    state.json = state.json or value
    return state.json


JSON_HELP = 'Print one JSON document; a failure prints {"error": {"code", "status", "message"}}.'


def json_option(func: F) -> F:
    """``--json``: print exactly one JSON document on stdout (a failure's too)."""
    return click.option("--json", "as_json", is_flag=True, callback=json_flag, help=JSON_HELP)(func)


def counted(number: int, noun: str) -> str:
    """Return ``number`` with ``noun``, plural unless it is 1: ``1 reject file``, ``2,048 bytes``."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: models become their ``to_dict()``, in lists too."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


def emit_json(document: Any) -> None:
    """Print one standard JSON document (models as their ``to_dict()``).

    A non-finite number (NaN or infinity, e.g. in a profile stored before loading refused them) is
    printed as ``null``, as JavaScript's ``JSON.stringify`` does: standard JSON has no such values.
    """
    data = plain(document)
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(data), indent=2, ensure_ascii=False, default=str, allow_nan=False)
    click.echo(text)


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def emit_table(rows: Sequence[Any], columns: Sequence[str], empty: str = "(none)") -> None:
    """Print a plain aligned table for humans (rows are dicts or models)."""
    if not rows:
        click.echo(empty)
        return
    cells = [[_cell(plain(row).get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(readable(v, nested=True) for v in value)
    if isinstance(value, dict):
        return " ".join(f"{k}={readable(v, nested=True)}" for k, v in value.items() if v)
    return readable(value)


def readable(value: Any, *, nested: bool = False) -> str:
    """Return ``value`` as text for humans, never a Python repr.

    None is ``-``, booleans ``yes``/``no``, lists ``a, b``, mappings ``k=v, k2=v2`` (in braces when nested).
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        text = ", ".join(readable(v, nested=True) for v in value)
        return f"[{text}]" if nested else (text or "-")
    if isinstance(value, dict):
        if value and all(_is_change(c) for c in value.values()):  # an edit's changes: field: old -> new; ...
            return describe(value)
        text = ", ".join(f"{k}={readable(v, nested=True)}" for k, v in value.items())
        return f"{{{text}}}" if nested else (text or "-")
    return str(value)


def _is_change(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"old", "new"}


def emit_fields(data: Any, indent: int = 0) -> None:
    """Print a record (a mapping or model) as ``key: value`` lines for humans; a mapping value is indented below."""
    pad = " " * indent
    for key, value in plain(data).items():
        if isinstance(value, dict) and value and not all(_is_change(c) for c in value.values()):
            click.echo(f"{pad}{key}:")
            emit_fields(value, indent + 2)
        else:
            click.echo(f"{pad}{key}: {readable(value)}")


def parse_pairs(values: Iterable[str], option: str, *, as_json: bool = False) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values parse as JSON where they can when ``as_json``."""
    result: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} {item!r} must look like KEY=VALUE")
        try:
            result[key.strip()] = parse_option_value(value) if as_json else value.strip()
        except ConfigError as exc:
            raise ConfigError(f"{option} {key.strip()!r}: {exc}") from None
    return result
