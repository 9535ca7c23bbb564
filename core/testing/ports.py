"""A free TCP port on the loopback interface, for the servers tests start (Redis, PostgreSQL, receivers)."""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port() -> int:
    """Return a port nothing listens on now on 127.0.0.1 (the OS's choice; the caller binds it soon after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
