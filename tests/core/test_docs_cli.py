"""docs/cli.md is every command's real ``--help``, rendered by click; this test keeps it that way.

Regenerate the page after changing a command, an option or a help text::

    python tests/core/test_docs_cli.py
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from segport.cli import cli

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "cli.md"
REGENERATE = "python tests/core/test_docs_cli.py"
WIDTH = 100  # help is wrapped at this width, whatever the terminal

INTRO = f"""# Command reference

Every `segport` command with its `--help`, as the CLI prints it. The page is generated from the
commands themselves (`{REGENERATE}`) and a test fails when it differs from what the
CLI prints. Exit codes, roles and worked examples are in the [README](../README.md).

Global options (`--home`, `--database-url`, `--as`, `--debug`, `--json`) go before or after the
command. With `--json` every command prints one JSON document on stdout, a failure too:
`{{"error": {{"code": 5, "status": "NOT_FOUND", "message": "...", "suggestions": [...]}}}}` (`code` is the
exit code, `status` its name, `message` the line stderr shows after `error: `; README, "JSON output
and errors"). Shell completion of commands, options and the workspace's names:
`eval "$(segport completion bash)"` (or `zsh`, `fish`; see [segport completion](#segport-completion)).

Destructive commands (`connections remove`, `exports remove`, `segments remove`, `users remove`,
`profiles remove`, and `profiles load --replace` when it would remove profiles) ask for confirmation
on a terminal; without one they are refused (exit 2, nothing changed) unless `--yes` is given.
Scripts written before this change must add `--yes`.
"""


def commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The argument path of ``command`` and of every visible command under it, depth first, by name."""
    yield path
    if isinstance(command, click.Group):
        context = click.Context(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            if sub is not None and not sub.hidden:
                yield from commands(sub, (*path, name))


def help_text(path: tuple[str, ...]) -> str:
    """``segport <path> --help`` as the CLI prints it, with no SEGPORT_* variable from the caller's shell."""
    runner = CliRunner(env={name: None for name in os.environ if name.startswith("SEGPORT_")})
    result = runner.invoke(cli, [*path, "--help"], prog_name="segport", terminal_width=WIDTH)
    assert result.exit_code == 0, result.output
    return result.output


def render() -> str:
    """The whole page: an index, then one section per command with its help in a text block."""
    paths = list(commands(cli))
    index = "\n".join(f"- [{title(p)}](#{anchor(p)})" for p in paths)
    sections = "\n".join(f"## {title(p)}\n\n```text\n{help_text(p).rstrip()}\n```\n" for p in paths)
    return f"{INTRO}\n{index}\n\n{sections}"


def title(path: tuple[str, ...]) -> str:
    return " ".join(("segport", *path))


def anchor(path: tuple[str, ...]) -> str:
    """GitHub's anchor for the section heading (lower case, spaces to hyphens)."""
    return title(path).replace(" ", "-")


def test_cli_reference_matches_the_help_the_cli_prints() -> None:
    expected = render()
    current = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
    if current != expected:
        lines = difflib.unified_diff(current.splitlines(True), expected.splitlines(True), "docs/cli.md", "--help")
        diff = "".join(list(lines)[:60])
        raise AssertionError(f"docs/cli.md differs from the CLI's --help; regenerate it with `{REGENERATE}`\n{diff}")


def test_cli_reference_covers_every_command() -> None:
    page = PAGE.read_text(encoding="utf-8")
    for leaf in ("segport exports run", "segport connections add", "segport sandbox", "segport plugins check"):
        assert f"\n## {leaf}\n" in page
        assert f"Usage: {leaf} [OPTIONS]" in page


def test_readme_links_the_cli_reference() -> None:
    assert "(docs/cli.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


if __name__ == "__main__":
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}", file=sys.stderr)
