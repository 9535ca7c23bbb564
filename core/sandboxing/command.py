"""A command line for a sandbox module: :func:`serve_main` (``python -m segport_<name>.sandbox``)."""

from __future__ import annotations

import argparse
import errno
import math
import signal
import socket
import sys
import threading
from types import FrameType
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

from .faults import FaultSettingError, parse_kinds
from .server import SandboxServer

__all__ = ["listen_error", "serve_main"]

CANNOT_LISTEN = 3  # segport's exit status for an option that cannot be used (README, "Exit codes")

S = TypeVar("S", bound=SandboxServer)


def finite(text: str) -> float:
    """Return the float ``text`` spells, refusing NaN and the infinities (an argparse type)."""
    number = float(text)
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return number


FAULT_FLAGS: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("--member-fail-rate", finite),
    ("--hold-s", finite),
    ("--slow-ms", int),
    ("--retry-after-s", int),
    ("--fault-filter", str),
)
FAULT_FLAG_NAMES = ("member_fail_rate", "hold_s", "slow_ms", "retry_after_s", "fault_filter")


def serve_main(
    factory: Callable[..., S],
    describe: Callable[[S], Iterable[tuple[str, object]]],
    argv: Sequence[str] | None = None,
    prog: str | None = None,
    *,
    description: str | None = None,
    options: Sequence[str] = (),
    flags: Mapping[str, str] | None = None,
) -> int:
    """Serve ``factory(latency_ms=, fail_rate=, seed=, **options)`` until SIGINT/SIGTERM; return the exit status.

    Prints ``base_url`` and ``describe(sandbox)`` as ``key: value`` lines. ``options`` are extra string
    ``--flags`` (default None); ``flags`` are extra on/off ``--flags`` given to the factory as True
    when present ({flag: help}); ``--fault-kinds``, ``--member-fail-rate``, ``--hold-s``, ``--slow-ms``,
    ``--retry-after-s`` and ``--fault-filter`` go to :meth:`SandboxServer.set_faults` (kept across resets).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1")
    for flag, kind, default in (("--port", int, 0), ("--latency-ms", int, 0), ("--fail-rate", finite, 0.0)):
        parser.add_argument(flag, type=kind, default=default)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--fault-kinds", type=parse_kinds, default=None, help="e.g. 503,reset=2,timeout")
    for flag, convert in FAULT_FLAGS:
        parser.add_argument(flag, type=convert, default=None)
    for flag in options:
        parser.add_argument(flag, default=None)
    for flag, help_text in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=help_text)
    args = vars(parser.parse_args(argv))
    host, port = args.pop("host"), args.pop("port")
    faults = {"kinds": args.pop("fault_kinds")} | {name: args.pop(name) for name in FAULT_FLAG_NAMES}
    sandbox, stop = factory(**args), threading.Event()
    try:
        sandbox.set_faults(**faults, keep=True)
    except FaultSettingError as err:
        parser.error(str(err))

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    try:
        base_url = sandbox.start(host, port)
    except OSError as err:
        print(f"{parser.prog}: error: {listen_error(host, port, err)}", file=sys.stderr)
        return CANNOT_LISTEN
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        lines = [("base_url", base_url), *describe(sandbox)]
        print("\n".join(f"{key}: {value}" for key, value in lines), flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def listen_error(host: str, port: int, err: OSError) -> str:
    """Say in one line why a sandbox cannot listen on ``host:port``, and which option to change."""
    if err.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use: pass another --port, or --port 0 for any free one"
    if err.errno == errno.EACCES:
        return f"port {port} on {host} needs privileges: pass a port above 1023, or --port 0 for any free one"
    if isinstance(err, socket.gaierror) or err.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host!r}: it is no address of this machine (pass --host 127.0.0.1)"
    return f"cannot listen on {host}:{port} ({err.strerror or type(err).__name__}): pass another --host or --port"
