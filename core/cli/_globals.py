"""Global options after the command: ``segport exports list --as ada`` as ``segport --as ada exports list``.

:func:`accept_global_options` gives every command and group of the tree (those added later too) a
hidden copy of each global option, unless it has an option of that name itself (its own wins, so
none is shadowed) or passes unknown options on (``plugins check`` gives them to pytest). A copy
given on the command line sets the invocation's :class:`State`, where the group's own option put
its value; ``--json`` marks the invocation as wanting JSON, failures included.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import click

from ._common import State

#: Where the global options given after the command are kept for shell completion (no State then).
LATE_KEY = "segport.late_globals"


def _late(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Put a global option given after the command where the group's own would have put it."""
    if value is None or value is False or param.name is None:
        return value
    ctx.find_root().meta.setdefault(LATE_KEY, {})[param.name] = value
    state = ctx.find_object(State)
    if state is not None:
        state.set_option(param.name, value)
    return value


GLOBAL_OPTIONS: dict[str, Callable[[], click.Option]] = {
    "--home": lambda: click.Option(
        ["--home"], type=click.Path(file_okay=False), help="Workspace folder (as before the command)."
    ),
    "--database-url": lambda: click.Option(["--database-url"], help="Workspace database (as before the command)."),
    "--as": lambda: click.Option(["--as", "user"], help="Acting user (as before the command)."),
    "--debug": lambda: click.Option(
        ["--debug"], is_flag=True, help="Debug logs and tracebacks (as before the command)."
    ),
    "--json": lambda: click.Option(["--json"], is_flag=True, help="Print one JSON document, a failure too."),
}


def walk(command: click.Command) -> Iterator[click.Command]:
    """``command`` and every command and group under it."""
    yield command
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            yield from walk(sub)


def accept_global_options(root: click.Group) -> None:
    """Let every command under ``root`` take the global options after its name (idempotent)."""
    for command in walk(root):
        if command is root or command.ignore_unknown_options:
            continue  # the words after a pass-through command (plugins check's pytest options) are not ours
        taken = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        for flag, make in GLOBAL_OPTIONS.items():
            if flag in taken:
                continue  # the command's own option of that name (e.g. its --json) stays as it is
            option = make()
            option.hidden = True
            option.expose_value = False
            option.callback = _late
            command.params.append(option)


def json_in_args(args: list[str]) -> bool:
    """Whether ``--json`` is among the command-line words (before a ``--``), parsed or not."""
    words = args[: args.index("--")] if "--" in args else args
    return "--json" in words


#: ctx.meta of the root: the command-line words, for :func:`help_hint` when click names no context.
WORDS_KEY = "segport.words"


def help_hint(ctx: click.Context, error: click.UsageError) -> str:
    """Return `` (see 'segport COMMAND --help')`` for a usage error, naming the command it is about.

    click gives no context with an option's missing value (``exports list --as``): the command is
    then the deepest one the command-line words name.
    """
    if error.ctx is not None:
        words = error.ctx.command_path.split()[1:]  # the program's own name, however run, is "segport"
    else:
        words, command = [], ctx.find_root().command
        for word in ctx.find_root().meta.get(WORDS_KEY, []):
            if not isinstance(command, click.Group):
                break
            sub = command.commands.get(word)
            if sub is not None:
                words.append(word)
                command = sub
    return f" (see '{' '.join(['segport', *words])} --help')"
