"""``segport sandbox NAME``: run a destination's local fake of its platform in the foreground."""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType
from typing import Any

import click

from ..errors import ConfigError
from ..registry import default_registry
from ._common import Finite, json_flag

KINDS_HELP = (  # the kinds of segport.sandboxing.FAULT_KINDS (imported only when used: it loads http.server)
    "Fault kinds drawn at --fail-rate, with optional weights: status codes (429, 500, 503; Mailchimp: 403 too), "
    "429-retry-after, reset, reset-applied, cut, timeout, slow. Example: '503,429-retry-after,reset=2,timeout'. "
    "Default: 429,500,503."
)


@click.command()
@click.argument("destination")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port (default: any free one).")
@click.option("--latency-ms", type=click.IntRange(0), default=0, show_default=True, help="Delay per API call.")
@click.option(
    "--fail-rate",
    type=Finite(0, 1),
    default=0.0,
    show_default=True,
    help="Share of API calls answered with a fault (see --fault-kinds).",
)
@click.option("--fault-kinds", default=None, help=KINDS_HELP)
@click.option(
    "--member-fail-rate",
    type=Finite(0, 1),
    default=None,
    help="Share of addresses that batch calls refuse as per-member errors (the same ones on every call).",
)
@click.option("--hold-s", type=Finite(0, 600), default=None, help="How long a 'timeout' fault holds a call.")
@click.option("--slow-ms", type=click.IntRange(0), default=None, help="Extra delay of a 'slow' fault.")
@click.option("--retry-after-s", type=click.IntRange(0), default=None, help="Retry-After of a '429-retry-after' fault.")
@click.option(
    "--fault-filter",
    default=None,
    metavar="REGEX",
    help="Inject faults only into calls whose 'METHOD /path' matches, e.g. 'POST .*/import'.",
)
@click.option("--seed", type=int, default=None, help="Seed for ids, keys and faults (reproducible runs).")
@click.option(
    "--api-key", default=None, metavar="KEY", help="The API key the sandbox accepts (default: a generated one)."
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    default=None,
    metavar="N",
    help="Calls in flight per credential before 429 (default: the sandbox's, 10 for Mailchimp and Campaign Monitor).",
)
@click.option(
    "--compliance",
    "compliance",
    multiple=True,
    metavar="EMAIL",
    help="Mailchimp: an address in compliance state (subscribing it is refused). Repeatable.",
)
@click.option(
    "--suppressed",
    "suppressed",
    multiple=True,
    metavar="EMAIL",
    help="Campaign Monitor: an address on the client's suppression list. Repeatable.",
)
@click.option(
    "--oauth-consent",
    is_flag=True,
    help="Show the platform's OAuth consent page (Allow, Deny) on its authorize URL instead of approving at once.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    callback=json_flag,  # a failure to start is one JSON error object too
    help='Print one JSON line {"base_url", "api_key", "list_id", "client_id"} once serving, and nothing else.',
)
def sandbox(
    destination: str,
    host: str,
    port: int,
    latency_ms: int,
    fail_rate: float,
    seed: int | None,
    fault_kinds: str | None,
    api_key: str | None,
    max_connections: int | None,
    compliance: tuple[str, ...],
    suppressed: tuple[str, ...],
    oauth_consent: bool,
    as_json: bool,
    **faults: Any,
) -> None:
    """Serve a local sandbox of a destination's platform until SIGINT/SIGTERM.

    Its set-up and test API (/_sandbox/state, /_sandbox/faults, ...) are described in docs/sandboxes.md.
    """
    from ..sandboxing import open_sandbox  # the segport.sandboxes entry points; loads http.server

    default_registry().get(destination)  # an unknown or broken destination is reported first, as before
    options = {"api_key": api_key, "max_connections": max_connections, "oauth_consent": oauth_consent or None}
    server = open_sandbox(
        destination,
        latency_ms=latency_ms,
        fail_rate=fail_rate,
        seed=seed,
        **{name: value for name, value in options.items() if value is not None},
    )
    _set_faults(server, fault_kinds, faults)
    _seed_addresses(server, destination, compliance, suppressed)
    try:
        url = server.start(host, port)
    except OSError as err:
        from ..sandboxing.command import listen_error

        raise ConfigError(listen_error(host, port, err)) from None
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if as_json:
        click.echo(json.dumps(server.describe()))
    else:
        click.echo(f"{destination} sandbox serving at {url}")
        click.echo(f"connection config: {json.dumps(server.demo_connection())}")
        click.echo(f"export options: {json.dumps(server.demo_export_options())}", nl=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    if not as_json:
        click.echo("sandbox stopped")


def _seed_addresses(server: object, destination: str, compliance: tuple[str, ...], suppressed: tuple[str, ...]) -> None:
    """Flag ``--compliance`` addresses (``mark_compliance``) and suppress ``--suppressed`` ones (``suppress``)."""
    for flag, method, emails in (
        ("--compliance", "mark_compliance", compliance),
        ("--suppressed", "suppress", suppressed),
    ):
        if not emails:
            continue
        mark = getattr(server, method, None)
        if not callable(mark):
            raise click.UsageError(f"{flag}: the {destination} sandbox has no such setting")
        for email in emails:
            if "@" not in email:
                raise click.UsageError(f"{flag}: {email!r} is not an email address")
            mark(email)


def _set_faults(server: object, kinds: str | None, faults: dict[str, Any]) -> None:
    """Apply the fault options (kept across ``/_sandbox/reset``); a bad one is a usage error."""
    from ..sandboxing import FaultInjection, FaultSettingError, parse_kinds

    given = {name: value for name, value in faults.items() if value is not None}
    if kinds is None and not given:
        return
    if not isinstance(server, FaultInjection):
        raise click.UsageError("this sandbox takes --fail-rate and --latency-ms only")
    try:
        server.set_faults(kinds=None if kinds is None else parse_kinds(kinds), **given, keep=True)
    except FaultSettingError as err:
        flag = "--fault-kinds" if err.name.startswith("kinds") else "--" + err.name.replace("_", "-")
        raise click.UsageError(f"{flag}: {err if err.name.startswith('kinds.') else err.detail}") from None
