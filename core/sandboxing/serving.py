"""The HTTP/1.1 server under a sandbox: threads, keep-alive, and the connection-level faults (reset, cut)."""

from __future__ import annotations

import io
import socket
import socketserver
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from .messages import Request, Response, parse_query

__all__ = ["HttpServer", "Responder"]


class Responder(Protocol):
    """What the server asks of a sandbox for each request."""

    def respond(self, req: Request) -> Response:
        """Return the answer to ``req`` (its ``drop`` says how to break the connection instead)."""

    def bad_json(self, found: str | None) -> Exception:
        """Return the error :meth:`Request.json` raises for a body that is not a JSON object."""

    def encode_body(self, req: Request, body: Any) -> bytes:
        """Encode a response body as bytes."""


class HttpServer(ThreadingHTTPServer):
    """A threaded server answering every request through ``responder``.

    :meth:`close_connections` drops the open keep-alive connections (stop).
    """

    daemon_threads = allow_reuse_address = True
    request_queue_size = 128  # listen backlog: bursts of new connections must not wait for SYN retries

    def __init__(self, address: tuple[str, int], responder: Responder) -> None:
        self.responder = responder
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        """Bind without the reverse-DNS lookup of ``HTTPServer.server_bind``."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients dropping connections are normal; stay quiet."""

    def close_connections(self) -> None:
        """Shut down every open connection (their handler threads then end)."""
        with self.conn_lock:
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # headers and body leave in one write (flushed after each request)
    server: HttpServer

    def setup(self) -> None:
        super().setup()
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request log."""

    def _handle(self) -> None:
        responder, url = self.server.responder, urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        req = Request(self.command, url.path, parse_query(url.query), raw, headers, bad_json=responder.bad_json)
        try:
            resp = responder.respond(req)
            if resp.drop == "reset":
                self._reset()
                return
            body = resp.raw
            if body is None:
                body = b"" if resp.body is None else responder.encode_body(req, resp.body)
        except Exception:  # a hook failed: answer 500 rather than drop the connection
            resp, body = Response(500), b""
        self.send_response(resp.status)
        if body:
            self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if resp.drop == "cut":  # half the body, then an orderly close: the client reads a short body
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def _reset(self) -> None:
        """Close the connection with a TCP reset (SO_LINGER 0), sending nothing."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.wfile.close()
        self.connection.close()  # the last reference: the kernel sends RST, not FIN
        self.wfile = io.BytesIO()  # what the server still flushes after the handler goes nowhere

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle
