"""Shell completion: click's, plus the workspace's connection, export, segment and user names.

``eval "$(segport completion bash)"`` (or zsh, fish) installs it; click then calls ``segport`` with
``_SEGPORT_COMPLETE`` set. Commands and options complete from the command tree; names complete from
the workspace the command line names (``--home``, ``--database-url``, ``--as``, or their variables),
only those the acting user may list, and quietly nothing on any error (no workspace, no user).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import click
from click.shell_completion import CompletionItem, get_completion_class

from ._common import emit_json, json_option

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_SEGPORT_COMPLETE"
Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def _global(ctx: click.Context, name: str) -> Any:
    """Return a global option's value on the command line being completed (before or after the command)."""
    root = ctx.find_root()
    late = root.meta.get("segport.late_globals", {})
    return late.get(name, root.params.get(name))


def workspace_names(kind: str) -> Completer:
    """Complete the names of ``kind`` (connection, export, segment, user) the acting user may list."""

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        try:
            from ..services.names import visible_names
            from ..workspace import Workspace

            with Workspace.open(
                _global(ctx, "home"), user=_global(ctx, "user"), database_url=_global(ctx, "database_url")
            ) as ws:
                names = visible_names(ws.context, kind)
        except Exception:  # completion says nothing rather than fail in the middle of a command line
            return []
        return _matching(names, incomplete)

    return complete


def destination_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Complete the installed destination plugins' names (no workspace needed)."""
    try:
        from ..registry import default_registry

        names = [info.name for info in default_registry().infos()]
    except Exception:
        return []
    return _matching(names, incomplete)


def _matching(names: list[str], incomplete: str) -> list[CompletionItem]:
    folded = incomplete.casefold()
    return [CompletionItem(name) for name in names if name.casefold().startswith(folded)]


#: A NAME argument of a command in one of these groups names an existing object of that kind
#: (except in ``add``, which names a new one).
GROUP_KINDS = {"connections": "connection", "exports": "export", "segments": "segment", "users": "user"}
OPTION_KINDS = {"--connection": "connection", "--segment": "segment", "--export": "export"}


def _completer(path: tuple[str, ...], param: click.Parameter) -> Completer | None:
    """How ``param`` of the command at ``path`` completes, from its name and the command's group."""
    if isinstance(param, click.Option):
        kind = next((OPTION_KINDS[opt] for opt in param.opts if opt in OPTION_KINDS), None)
        if kind:
            return workspace_names(kind)
        return destination_names if "--type" in param.opts and path[:1] == ("connections",) else None
    if param.name in ("destination", "destinations") or (path[:1] == ("plugins",) and param.name == "name"):
        return destination_names
    if param.name == "name" and len(path) == 2 and path[0] in GROUP_KINDS and path[1] != "add":
        return workspace_names(GROUP_KINDS[path[0]])
    return None


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


def complete_names(root: click.Group) -> None:
    """Give every name argument and option of the tree (commands added later too) its completion.

    A parameter that has its own ``shell_complete`` keeps it.
    """
    for path, command in _commands(root):
        for param in command.params:
            if getattr(param, "_custom_shell_complete", None) is None:
                completer = _completer(path, param)
                if completer is not None:
                    param._custom_shell_complete = completer


@click.command()
@click.argument("shell", type=click.Choice(SHELLS), metavar="SHELL")
@json_option
@click.pass_context
def completion(ctx: click.Context, shell: str, as_json: bool) -> None:
    """Print the completion script of SHELL (bash, zsh or fish) for segport.

    Commands, options and the workspace's connection, export, segment and user names complete.
    Install it with, in ~/.bashrc: eval "$(segport completion bash)"; in ~/.zshrc:
    eval "$(segport completion zsh)"; for fish: segport completion fish > ~/.config/fish/completions/segport.fish
    """
    cls = get_completion_class(shell)
    assert cls is not None  # one of SHELLS: click ships all three
    script = cls(ctx.find_root().command, {}, "segport", COMPLETE_VAR).source()
    emit_json({"shell": shell, "script": script}) if as_json else click.echo(script)
