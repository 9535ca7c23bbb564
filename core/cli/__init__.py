"""The ``segport`` command line: a thin layer over :class:`segport.Workspace`.

One error boundary: every failure becomes one ``error: ...`` line on stderr and its documented
:class:`ExitStatus` (README, "Exit codes"); ``--debug`` prints the traceback first and keeps the status.
With ``--json`` (before or after the command) a failure also prints one JSON object on stdout:
``{"error": {"code": 5, "status": "NOT_FOUND", "message": "..."}}`` (README, "JSON output").
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from ..errors import ExitStatus, NotFound, SegportError
from ..http import TRANSPORT_ERRORS, unreachable
from ..models import Run
from . import _config as config_file
from ._common import State, emit_json, plain, start_debug_logging, with_hint
from ._completion import complete_names, completion
from ._connections import connections
from ._data import segments
from ._demo import demo
from ._exports import exports, runs
from ._globals import WORDS_KEY, accept_global_options, help_hint, json_in_args
from ._keys import rotate_key
from ._plugins import plugins
from ._profiles import profiles
from ._runs import runs_prune, runs_rejects, runs_retention  # noqa: F401 (registers the commands)
from ._sandbox import sandbox
from ._schedule import refresh, schedule, scheduler
from ._serve import serve
from ._signals import Terminated, sigterm_interrupts
from ._tokens import tokens
from ._worker import worker
from ._workspace import audit, init, users

JSON_KEY = "segport.json"  # ctx.meta: --json is among the command-line words


class SegportGroup(click.Group):
    """A click group that turns every failure into one line and its documented exit code."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        """Parse the global options; a usage error there is one line and exit 2 too."""
        wants_json = json_in_args(args)
        words = list(args)
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            message = f"{one_line(exc.format_message())} (see 'segport --help')"
            click.echo(f"error: {message}", err=True)
            if wants_json:
                emit_json(error_document(message, ExitStatus.USAGE))
            sys.exit(int(ExitStatus.USAGE))
        ctx.meta[JSON_KEY] = wants_json
        ctx.meta[WORDS_KEY] = words
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a failure becomes its one line and exit code (after its traceback with --debug)."""
        try:
            with sigterm_interrupts():  # SIGTERM stops a run as Ctrl-C does: recorded, resumable
                result = super().invoke(ctx)
            sys.stdout.flush()  # a reader that went away (| head) is found here, not at exit
            return result
        except click.exceptions.Exit as exc:
            # "no" to a confirmation (_confirm.py) exits 1; another status was chosen by a command that
            # printed its own document (exports verify: 16, drift found)
            if exc.exit_code == 1 and wants_json(ctx):
                emit_json(error_document("aborted: nothing changed", exc.exit_code))
            raise
        except click.exceptions.Abort:
            if wants_json(ctx):
                emit_json(error_document("aborted", ExitStatus.ERROR))
            raise
        except SegportError as exc:
            fail(ctx, with_hint(exc), exc.exit_status, exc)
        except click.UsageError as exc:  # one line, like every other error
            fail(ctx, f"{one_line(exc.format_message())}{help_hint(ctx, exc)}", ExitStatus.USAGE)
        except BrokenPipeError:
            quiet_exit(ctx)
        except Terminated as exc:
            fail(ctx, str(exc), ExitStatus.TERMINATED, run=exc.run)
        except KeyboardInterrupt:
            fail(ctx, "interrupted", ExitStatus.INTERRUPTED)
        except TRANSPORT_ERRORS as exc:  # a platform call made outside segport.http's client
            fail(ctx, str(unreachable(exc)), ExitStatus.UNREACHABLE)
        except Exception as exc:  # a bug: say so in one line, never the details (they may hold data)
            fail(
                ctx,
                f"internal error ({type(exc).__name__}): this is a bug; run the command again with --debug "
                "for the traceback and report it",
                ExitStatus.ERROR,
            )


def fail(
    ctx: click.Context, message: str, status: int, error: SegportError | None = None, *, run: Run | None = None
) -> NoReturn:
    """Print ``error: message`` (after the traceback with --debug) and exit with ``status``.

    With ``--json``, also print the failure as one JSON object on stdout (:func:`error_document`).
    """
    state = ctx.find_object(State)
    if state is not None and state.debug:
        traceback.print_exc(file=sys.stderr)
    message = printable(message)
    click.echo(f"error: {message}", err=True)
    if wants_json(ctx):
        emit_json(error_document(message, status, error, run=run))
    ctx.exit(int(status))


def printable(message: str) -> str:
    """Return ``message`` with its control characters escaped (a typed path holding a line break stays on one line)."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in message)


def one_line(message: str) -> str:
    """Return click's message on one line (a choice's list comes one value a line)."""
    return " ".join(message.split())


def wants_json(ctx: click.Context) -> bool:
    """Whether this invocation was given ``--json`` (before or after the command, parsed or not)."""
    state = ctx.find_object(State)
    return bool(ctx.meta.get(JSON_KEY)) or (state is not None and state.json)


def status_name(status: int) -> str:
    """Return the exit status's name in README's table (``NOT_FOUND``, ``INTERRUPTED``...)."""
    try:
        return ExitStatus(status).name
    except ValueError:
        return "ERROR"


def error_document(
    message: str, status: int, error: SegportError | None = None, *, run: Run | None = None
) -> dict[str, Any]:
    """Return a failure as JSON: ``{"error": {"code", "status", "message"[, "suggestions"]}}``.

    Beside ``error``: ``run``, the run record when the failure ended a run, and any ``details`` of the error.
    """
    body: dict[str, Any] = {"code": int(status), "status": status_name(status), "message": message}
    if isinstance(error, NotFound) and error.suggestions:
        body["suggestions"] = list(error.suggestions)
    document: dict[str, Any] = {"error": body}
    run = run if run is not None else (error.run if error is not None else None)
    if run is not None:
        document["run"] = run.to_dict()
    if error is not None and error.details:
        document.update({key: plain(value) for key, value in error.details.items() if key != "error"})
    return document


def quiet_exit(ctx: click.Context) -> NoReturn:
    """Exit 0 without a word once the reader of stdout went away (``segport audit list | head -1``)."""
    try:  # later writes and the final flush go nowhere instead of failing again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is no file (click's test runner)
        pass
    ctx.exit(int(ExitStatus.OK))


@click.group(cls=SegportGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="SEGPORT_HOME",
    default=None,
    help="Workspace folder (default: $SEGPORT_HOME or ./.segport).",
)
@click.option(
    "--database-url",
    envvar="SEGPORT_DATABASE_URL",
    default=None,
    help="Workspace database: postgresql://USER:PASSWORD@HOST:PORT/DB or sqlite:///PATH "
    "(default: $SEGPORT_DATABASE_URL or segport.db in the workspace folder).",
)
@click.option("--as", "user", envvar="SEGPORT_USER", default=None, help="Acting user (default: $SEGPORT_USER).")
@click.option(
    "--debug", is_flag=True, help="Show debug logs, and an error's traceback before its line (same exit code)."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document, a failure too (same as the command's --json)."
)
@click.version_option(package_name="segport", help="Show the version and exit.")
@click.pass_context
def cli(
    ctx: click.Context, home: str | None, database_url: str | None, user: str | None, debug: bool, as_json: bool
) -> None:
    """Export segments of customer profiles to email-marketing platforms.

    The global options can also come from a segport.toml (in the current folder or the workspace
    folder, or the file $SEGPORT_CONFIG names): keys home, database_url, user (or as), debug; the
    command line and the environment win over it.

    A failure prints one 'error:' line and exits with a code of README's table, e.g. 3 for an invalid
    config, 5 for an unknown name, 15 when the platform cannot be reached; with --json it also prints
    {"error": {"code", "status", "message"}} on stdout. The global options may also follow the command
    (segport exports list --as ada). Shell completion: see 'segport completion --help'.
    """
    given: dict[str, Any] = {"home": home, "user": user, "debug": debug, "database_url": database_url}
    path = config_file.find(home if given_explicitly(ctx, "home") else None)
    if path is not None:  # command line > environment > config file > defaults
        for name, value in config_file.load(path).items():
            if not given_explicitly(ctx, name):
                given[name] = value
    home, user, database_url = given["home"], given["user"], given["database_url"]
    debug = bool(given["debug"])
    ctx.obj = State(home=home, user=user, debug=debug, database_url=database_url, json=as_json)
    ctx.call_on_close(ctx.obj.close)
    if debug:
        start_debug_logging()


for command in (
    demo,
    sandbox,
    init,
    users,
    plugins,
    connections,
    profiles,
    segments,
    exports,
    runs,
    schedule,
    refresh,
    scheduler,
    worker,
    serve,
    audit,
    tokens,
    rotate_key,
    completion,
):
    cli.add_command(command)

# after every command is added: the whole tree, whatever its commands
accept_global_options(cli)
complete_names(cli)


def given_explicitly(ctx: click.Context, name: str) -> bool:
    """Whether the global option ``name`` came from the command line or the environment."""
    return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="segport", standalone_mode=True) or ExitStatus.OK)
