"""``segport plugins``: the installed destinations and their specs (no workspace needed)."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import click

from ..errors import PluginContractError, PluginError
from ..registry import default_registry
from ._common import emit_json, emit_table, json_option


@click.group()
def plugins() -> None:
    """List, show and check the installed destination plugins."""


@plugins.command("list")
@json_option
def plugins_list(as_json: bool) -> None:
    """List destination plugins, loadable or broken (with the reason)."""
    rows = [info.to_dict() for info in default_registry().infos()]
    if as_json:
        emit_json(rows)
    else:
        emit_table(
            rows,
            ["name", "title", "distribution", "version", "status", "reason"],
            empty="no destination plugins installed",
        )


@plugins.command("show")
@click.argument("name")
@json_option
def plugins_show(name: str, as_json: bool) -> None:
    """Show a destination's connection and export schemas, fields and limits."""
    destination = default_registry().get(name)
    spec = destination.spec()
    document = {
        "name": destination.name,
        "title": destination.title,
        "auth_methods": list(spec.auth_methods),
        "limits": asdict(spec.limits),
        "fields": {"email": "required", **dict(spec.fields.known), "other": spec.fields.allow_other},
        "connection_schema": spec.connection_schema,
        "export_schema": spec.export_schema,
        "documentation_url": spec.documentation_url,
    }
    if as_json:
        emit_json(document)
        return
    click.echo(f"{destination.title} ({destination.name})")
    click.echo(f"  auth: {', '.join(spec.auth_methods)}")
    limits = spec.limits
    click.echo(f"  limits: batch {limits.batch_size}, concurrency {limits.max_concurrency}, cap {limits.profile_cap:,}")
    click.echo(
        f"  fields: email (required), {', '.join(spec.fields.known) or '-'}"
        + (", any other field of the destination" if spec.fields.allow_other else "")
    )
    for label, schema in (("connection", spec.connection_schema), ("export options", spec.export_schema)):
        required = set(schema.get("required", []))
        click.echo(f"  {label}:")
        for prop, sub in schema.get("properties", {}).items():
            default = f"default {json.dumps(sub['default'])}" if "default" in sub else ""
            marks = (("required", prop in required), ("secret", sub.get("writeOnly")), (default, default))
            flags = ", ".join(f for f, on in marks if on)
            click.echo(f"    {prop}{f' ({flags})' if flags else ''}: {sub.get('description', '')}".rstrip(": "))


CONFORMANCE_TEST = """from segport.testing import DestinationConformance


class TestConformance(DestinationConformance):
    entry_point = {name!r}
"""
RESILIENCE_TEST = """

from segport.testing import DestinationResilience


class TestResilience(DestinationResilience):
    entry_point = {name!r}
"""


@plugins.command("check", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.option(
    "--resilience", is_flag=True, help="Also run the crash and injected-fault checks (slower: about a minute)."
)
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@json_option
def plugins_check(name: str, resilience: bool, pytest_args: tuple[str, ...], as_json: bool) -> None:
    """Run the conformance kit against an installed destination (needs segport[test]).

    Extra arguments go to pytest, e.g. ``segport plugins check webhook -x -k identity``. With --json,
    pytest's report goes to stderr and stdout holds the verdict.
    """
    default_registry().get(name)  # unknown or broken: its one-line error, before pytest starts
    try:
        import pytest
        import responses  # noqa: F401 - the kit's retry checks need it
    except ImportError:
        raise PluginError("the conformance kit needs pytest and responses: pip install 'segport[test]'") from None
    with tempfile.TemporaryDirectory(prefix="segport-check-") as folder:
        root = Path(folder)
        (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # not the caller's configuration
        test = CONFORMANCE_TEST + (RESILIENCE_TEST if resilience else "")
        (root / "test_conformance.py").write_text(test.format(name=name), encoding="utf-8")
        args = ["-c", str(root / "pytest.ini"), "--rootdir", folder, "-p", "no:cacheprovider", "-q"]
        # segport is imported already (this is its CLI), so pytest cannot rewrite its asserts: say nothing of it
        args += ["-W", "ignore::pytest.PytestAssertRewriteWarning", *pytest_args]
        with contextlib.redirect_stdout(sys.stderr if as_json else sys.stdout):
            code = pytest.main([*args, str(root / "test_conformance.py")])
    verdict = {"destination": name, "resilience": resilience, "pytest_exit": int(code), "passed": code == 0}
    if code != 0:
        error = PluginContractError(
            f"destination {name!r} fails the conformance kit (pytest exit {int(code)}): fix the failures shown above"
        )
        error.details = {"check": verdict}
        raise error
    if as_json:
        emit_json(verdict)
