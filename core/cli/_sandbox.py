"""``segport sandbox NAME``: run a destination's local fake of its platform in the foreground."""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType

import click

from ..errors import PluginError
from ..registry import default_registry


@click.command()
@click.argument("destination")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port (default: any free one).")
@click.option("--latency-ms", type=click.IntRange(0), default=0, show_default=True, help="Delay per API call.")
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of API calls answered 429/500/503.",
)
@click.option("--seed", type=int, default=None, help="Seed for ids, keys and faults (reproducible runs).")
def sandbox(destination: str, host: str, port: int, latency_ms: int, fail_rate: float, seed: int | None) -> None:
    """Serve a local sandbox of a destination's platform until SIGINT/SIGTERM."""
    server = default_registry().get(destination).sandbox(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed)
    if server is None:
        raise PluginError(f"destination {destination!r} ships no sandbox")
    url = server.start(host, port)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    click.echo(f"{destination} sandbox serving at {url}")
    click.echo(f"connection config: {json.dumps(server.demo_connection())}")
    click.echo(f"export options: {json.dumps(server.demo_export_options())}", nl=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    click.echo("sandbox stopped")
