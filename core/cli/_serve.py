"""``segport serve``: the web console and HTTP API over the workspace, with uvicorn (the ``web`` extra)."""

from __future__ import annotations

import logging
import socket
import sys

import click

from ..errors import ConfigError
from ..executor import Executor
from ..extras import install_hint
from ._common import State, pass_state
from ._progress import stamp


class _Stamped(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{stamp()} {record.getMessage()}"


def _listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket first, so a busy port is one line and exit 3, not uvicorn's traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}): pick a free port with --port") from None
    sock.set_inheritable(True)
    return sock


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8400, show_default=True, help="Port to listen on.")
@click.option(
    "--public-url",
    default=None,
    help="Where browsers reach the server, for invite links and OAuth redirects (default: http://HOST:PORT); "
    "an https:// URL marks the cookies Secure.",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="IP",
    help="A reverse proxy whose X-Forwarded-For/-Proto headers are believed (repeatable); none by default.",
)
@pass_state
def serve(state: State, host: str, port: int, public_url: str | None, trusted_proxies: tuple[str, ...]) -> None:
    """Serve the web console and the HTTP API (/api/v1) until Ctrl-C or SIGTERM.

    People sign in with the password set by 'segport users passwd' or an invite link; programs send
    an API token from 'segport tokens create' as 'Authorization: Bearer TOKEN'.
    """
    try:
        import uvicorn

        from ..web import create_app
    except ImportError as exc:
        raise ConfigError(install_hint(exc, "web")) from None
    sock = _listen(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    url = (public_url or f"http://{shown_host}:{sock.getsockname()[1]}").rstrip("/")
    app = create_app(
        state.home if state.home is not None else _default_home(),
        database_url=state.database_url,
        executor=Executor.from_env(),
        public_url=url,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Stamped())
    web_log = logging.getLogger("segport.web")
    web_log.addHandler(handler)
    web_log.setLevel(logging.INFO)
    web_log.propagate = False
    config = uvicorn.Config(
        app,
        access_log=False,  # segport.web logs each request without query strings or tokens
        log_level="warning",
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) or None,
        server_header=False,
    )
    click.echo(f"{stamp()} segport console on {url} (Ctrl-C stops it)", err=True)
    uvicorn.Server(config).run(sockets=[sock])


def _default_home() -> str:
    from ..opening import default_home

    return str(default_home())
