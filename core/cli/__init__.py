"""The ``segport`` command line: a thin layer over :class:`segport.Workspace`.

One error boundary: every failure becomes one ``error: ...`` line on stderr and its documented
:class:`ExitStatus` (README, "Exit codes"); ``--debug`` prints the traceback first and keeps the status.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any, NoReturn

import click

from ..errors import ExitStatus, SegportError
from ..http import TRANSPORT_ERRORS, unreachable
from ._common import State, with_hint
from ._connections import connections
from ._data import profiles, segments
from ._demo import demo
from ._exports import exports, runs
from ._plugins import plugins
from ._runs import runs_prune, runs_rejects, runs_retention  # noqa: F401 (registers the commands)
from ._sandbox import sandbox
from ._schedule import refresh, schedule, scheduler
from ._worker import worker
from ._workspace import audit, init, users

INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class SegportGroup(click.Group):
    """A click group that turns every failure into one line and its documented exit code."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        """Parse the global options; a usage error there is one line and exit 2 too."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            click.echo(f"error: {exc.format_message()} (see 'segport --help')", err=True)
            sys.exit(int(ExitStatus.USAGE))

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a failure becomes its one line and exit code (after its traceback with --debug)."""
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a reader that went away (| head) is found here, not at exit
            return result
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except SegportError as exc:
            fail(ctx, with_hint(exc), exc.exit_status)
        except click.UsageError as exc:  # one line, like every other error
            hint = f" (see 'segport {exc.ctx.command_path.partition(' ')[2]} --help')" if exc.ctx else ""
            fail(ctx, f"{exc.format_message()}{hint}", ExitStatus.USAGE)
        except BrokenPipeError:
            quiet_exit(ctx)
        except KeyboardInterrupt:
            fail(ctx, "interrupted", INTERRUPTED)
        except TRANSPORT_ERRORS as exc:  # a platform call made outside segport.http's client
            fail(ctx, str(unreachable(exc)), ExitStatus.UNREACHABLE)
        except Exception as exc:  # a bug: say so in one line, never the details (they may hold data)
            fail(
                ctx,
                f"internal error ({type(exc).__name__}): this is a bug; run the command again with --debug "
                "for the traceback and report it",
                ExitStatus.ERROR,
            )


def fail(ctx: click.Context, message: str, status: int) -> NoReturn:
    """Print ``error: message`` (after the traceback with --debug) and exit with ``status``."""
    state = ctx.find_object(State)
    if state is not None and state.debug:
        traceback.print_exc(file=sys.stderr)
    click.echo(f"error: {message}", err=True)
    ctx.exit(int(status))


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
@click.version_option(package_name="segport")
@click.pass_context
def cli(ctx: click.Context, home: str | None, database_url: str | None, user: str | None, debug: bool) -> None:
    """Export segments of customer profiles to email-marketing platforms.

    A failure prints one 'error:' line and exits with a code of README's table, e.g. 3 for an invalid
    config, 5 for an unknown name, 15 when the platform cannot be reached.
    """
    ctx.obj = State(home=home, user=user, debug=debug, database_url=database_url)
    ctx.call_on_close(ctx.obj.close)
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")


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
    audit,
):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="segport", standalone_mode=True) or ExitStatus.OK)
