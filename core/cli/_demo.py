"""``segport demo``: a complete export, end to end through the engine, on generated data.

Until a platform sandbox ships, the destination is the in-memory one of :mod:`segport.testing`,
so the demo needs no network and no account.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import click

from ..plugins import make_manager
from ..registry import Registry
from ..testing.fakes import MemoryPlatform, memory_destination
from ..workspace import Workspace
from ._exports import print_run

COUNTRIES = ("FR", "DE", "US", "GB", "ES")


def write_demo_profiles(path: Path, count: int, seed: int = 7) -> None:
    """A CSV of synthetic customers (a few with broken emails, to show rejects)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        out.write("id,email,first_name,last_name,country,lifetime_value\n")
        for i in range(count):
            email = f"customer{i}@example.com" if i % 97 else f"customer{i}-at-example.com"
            out.write(f"c{i:07d},{email},First{i},Last{i},{rng.choice(COUNTRIES)},{rng.randint(0, 5000)}\n")


@click.command()
@click.option("--profiles", "count", type=click.IntRange(10), default=2000, show_default=True)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to create the demo workspace (default: a new temporary folder).",
)
def demo(count: int, directory: str | None) -> None:
    """Run a demo export end to end: load profiles, define segments, export, change, export again."""
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="segport-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    platform = MemoryPlatform(audiences={"demo-audience"})
    registry = Registry.from_plugins([memory_destination(platform, batch_size=500, max_concurrency=4)])
    profiles = root / "profiles.csv"
    write_demo_profiles(profiles, count)
    with Workspace.create(root / "workspace", "admin", registry=registry, pm=make_manager(autoload=False)) as ws:
        click.echo(f"workspace: {ws.home}")
        loaded = ws.load_profiles(profiles)
        click.echo(f"loaded {loaded['loaded']:,} profiles")
        ws.define_segment("VIP", "lifetime_value >= 4000")
        ws.define_segment("Europe", "country in ('FR', 'DE', 'GB', 'ES')")
        for row in ws.list_segments():
            click.echo(f"segment {row['name']}: {row['members']:,} members ({row['expression']})")
        ws.add_connection("Demo platform", "memory", {"api_key": "demo-key-not-secret"}, agree_privacy=True)
        ws.add_export(
            "vip-and-europe",
            connection="Demo platform",
            segments=["VIP", "Europe"],
            email_field="email",
            mapping={"FNAME": "first_name", "LNAME": "last_name"},
            options={"audience_id": "demo-audience"},
        )
        click.echo("-- first run (everything is new)")
        print_run(ws.run_export("vip-and-europe"), as_json=False)
        changed = root / "changed.csv"
        changed.write_text(
            "id,email,first_name,last_name,country,lifetime_value\n"
            "c0000001,customer1@example.com,Renamed,Last1,FR,4500\n",
            encoding="utf-8",
        )
        ws.load_profiles(changed)
        click.echo("-- second run (one profile changed: only it is sent)")
        print_run(ws.run_export("vip-and-europe"), as_json=False)
        tagged = sum(1 for m in platform.members.values() if m.markers)
        click.echo(f"the platform now holds {len(platform.members):,} members, {tagged:,} carrying segment markers")
