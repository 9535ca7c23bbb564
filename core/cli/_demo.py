"""``segport demo``: a complete export from nothing, against a destination's local sandbox.

It starts the sandbox, loads generated customers, defines two segments, adds a connection and an
export, runs it, changes a few profiles and one segment's membership, runs again (only the change
is sent), and prints what landed in the sandbox.
"""

from __future__ import annotations

import contextlib
import random
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import PluginError
from ..models import Run
from ..registry import default_registry
from ..workspace import Workspace
from ._common import emit_json, json_option, readable
from ._exports import print_run

if TYPE_CHECKING:
    from ..sandboxing import Sandbox

FIRST = (
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Guido",
    "Hedy",
    "Tim",
    "Katherine",
    "John",
    "Sophie",
    "Donald",
    "Joan",
    "Niklaus",
)
LAST = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Rossum",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
    "Backus",
    "Wilson",
    "Knuth",
    "Clarke",
    "Wirth",
)
CITIES = (
    ("Paris", "FR"),
    ("Lyon", "FR"),
    ("Berlin", "DE"),
    ("Hamburg", "DE"),
    ("London", "GB"),
    ("Madrid", "ES"),
    ("Boston", "US"),
    ("Austin", "US"),
    ("Toronto", "CA"),
    ("Dublin", "IE"),
)
DOMAIN = "segport-demo.net"
HEADER = "id,email,first_name,last_name,city,country,lifetime_value\n"


def write_customers(path: Path, count: int, seed: int = 7) -> None:
    """Synthetic customers; one in a hundred has a broken address, to show per-record rejects."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for i in range(count):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            city, country = rng.choice(CITIES)
            local = f"{first}.{last}{i}".lower().replace("-", "")
            email = f"{local}@{DOMAIN}" if i % 100 != 99 else f"{local}.at.{DOMAIN}"
            out.write(f"c{i:06d},{email},{first},{last},{city},{country},{rng.randint(0, 5000)}\n")


@click.command()
@click.argument("destinations", nargs=-1)
@click.option(
    "--profiles", "count", type=click.IntRange(100), default=3000, show_default=True, help="Customers to generate."
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to create the demo workspaces (default: a new temporary folder).",
)
@json_option
def demo(destinations: tuple[str, ...], count: int, directory: str | None, as_json: bool) -> None:
    """Run a demo export end to end against local sandboxes (no account, no network).

    DESTINATIONS default to every installed destination that ships a sandbox. With --json the story
    goes to stderr and stdout holds one document: each destination's workspace, runs and sandbox summary.
    """
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        document = _demo(destinations, count, directory)
    if as_json:
        emit_json(document)


def _demo(destinations: tuple[str, ...], count: int, directory: str | None) -> dict[str, Any]:
    """Run the demo, telling its story on stdout; return what it did as a JSON-ready document."""
    from ..sandboxing import open_sandbox, sandbox_names  # the segport.sandboxes entry points; loads http.server

    registry, shipped = default_registry(), set(sandbox_names())
    names = list(destinations) or [i.name for i in registry.infos() if i.status == "ok"]
    legs = [(name, registry.get(name)) for name in names]
    for name in destinations:
        if name not in shipped:
            raise PluginError(f"destination {name!r} ships no sandbox: choose another destination")
    legs = [(name, plugin) for name, plugin in legs if name in shipped]
    if not legs:
        raise PluginError("no installed destination ships a sandbox: install segport with its plugins")
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="segport-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    done: list[dict[str, Any]] = []
    for name, plugin in legs:
        server = open_sandbox(name, seed=7)
        click.echo(f"== {plugin.title}: sandbox serving at {server.start()}")
        try:
            with Workspace.create(root / name / "workspace", "admin") as ws:
                runs = _run_demo(ws, root / name, count, name, server)
                home = str(ws.home)
            click.echo("what landed in the sandbox:")
            summary = server.summary()
            for key, value in summary.items():
                click.echo(f"  {key}: {readable(value)}")
        finally:
            server.stop()
        done.append({"destination": name, "workspace": home, "runs": [r.to_dict() for r in runs], "sandbox": summary})
    click.echo(
        f"demo workspaces kept in {root} (e.g. segport --home {root / legs[0][0] / 'workspace'} --as admin runs list); "
        "delete the folder when done"
    )
    return {"directory": str(root), "demos": done}


def _renamed(row: str) -> str:
    """Return the same customer with a new first name."""
    fields = row.split(",")
    fields[2] = "Renamed"
    return ",".join(fields) + "\n"


def _run_demo(ws: Workspace, root: Path, count: int, destination: str, server: Sandbox) -> list[Run]:
    """Run the demo's two runs in ``ws``, telling the story; return their records."""
    click.echo(f"workspace: {ws.home}")
    customers = root / "customers.csv"
    write_customers(customers, count)
    click.echo(
        f"loaded {ws.load_profiles(customers).loaded:,} customers "
        "(one in a hundred has a broken address on purpose, to show how rejects are reported)"
    )
    ws.define_segment("VIP", "lifetime_value >= 4000")
    newsletter = root / "newsletter.txt"
    newsletter.write_text("".join(f"c{i:06d}\n" for i in range(0, count, 3)), encoding="utf-8")
    ws.load_segment("Newsletter", newsletter)
    for row in ws.list_segments():
        click.echo(f"segment {row.name}: {row.members:,} members")
    ws.add_connection("Demo sandbox", destination, server.demo_connection(), agree_privacy=True)
    ws.add_export(
        "demo-export",
        connection="Demo sandbox",
        segments=["VIP", "Newsletter"],
        email_field="email",
        mapping=server.demo_mapping(),
        options=server.demo_export_options(),
    )
    click.echo("-- first run: everyone is new")
    runs = [ws.run_export("demo-export")]
    print_run(runs[-1], as_json=False)
    changed = root / "changed.csv"
    rows = customers.read_text(encoding="utf-8").splitlines()[1:8:3]  # customers 0, 3 and 6
    changed.write_text(HEADER + "".join(_renamed(row) for row in rows), encoding="utf-8")
    ws.load_profiles(changed)
    newsletter.write_text("".join(f"c{i:06d}\n" for i in range(0, count, 3) if i not in (9, 12)), encoding="utf-8")
    ws.load_segment("Newsletter", newsletter)
    click.echo("-- second run: 3 profiles changed, 2 left the Newsletter segment; only that is sent")
    runs.append(ws.run_export("demo-export"))
    print_run(runs[-1], as_json=False)
    return runs
