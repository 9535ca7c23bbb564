"""The ``segport`` command line: a thin layer over :class:`segport.Workspace`.

One error boundary: a :class:`SegportError` becomes one ``error: ...`` line on stderr and its
:class:`ExitStatus`; ``--debug`` shows tracebacks instead.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import ExitStatus, SegportError
from ._common import State, with_hint
from ._connections import connections
from ._data import profiles, segments
from ._demo import demo
from ._exports import exports, runs
from ._plugins import plugins
from ._sandbox import sandbox
from ._schedule import refresh, schedule, scheduler
from ._worker import worker
from ._workspace import audit, init, users


class SegportGroup(click.Group):
    """A click group that turns segport errors into one line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a segport error becomes its one line and exit code (a traceback with --debug)."""
        try:
            return super().invoke(ctx)
        except SegportError as exc:
            state = ctx.find_object(State)
            if state is not None and state.debug:
                raise
            click.echo(f"error: {with_hint(exc)}", err=True)
            ctx.exit(int(exc.exit_status))
        except click.UsageError as exc:  # one line, like every other error
            hint = f" (see 'segport {exc.ctx.command_path.partition(' ')[2]} --help')" if exc.ctx else ""
            click.echo(f"error: {exc.format_message()}{hint}", err=True)
            ctx.exit(int(ExitStatus.USAGE))
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            ctx.exit(130)


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
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="segport")
@click.pass_context
def cli(ctx: click.Context, home: str | None, database_url: str | None, user: str | None, debug: bool) -> None:
    """Export segments of customer profiles to email-marketing platforms."""
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
