"""The console as a new user meets it: a workspace made with the CLI, ``segport serve`` in a subprocess.

Fixtures of the console's browser tests (imported by their module; the ``browser`` and ``page`` ones
come from this folder's conftest, so that one Chromium serves every browser test of a process).

``console`` (one per test module): ``segport init``, users ``ada`` (admin), ``carl`` (contributor) and
``vera`` (viewer) with passwords from ``segport users passwd --password-stdin``, profiles loaded and
segments defined with the CLI, a Mailchimp sandbox serving in this process (its OAuth consent page on),
then ``segport serve --port FREE`` until the module ends. The browser fixtures are
:mod:`segport.testing.browser`'s.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from segport.sandboxing import open_sandbox
from segport.testing.operator import Operator
from segport.testing.ports import free_port

PASSWORDS = {"ada": "ada-console-pw-1", "carl": "carl-console-pw-2", "vera": "vera-console-pw-3"}
ROLES = {"carl": "contributor", "vera": "viewer"}
# Six profiles; the Newsletter segment holds four of them, one with an address no platform takes.
PROFILES = """customer_id,email,first_name,newsletter
c01,ann.lee@segport-shop.net,Ann,yes
c02,bob.ross@segport-shop.net,Bob,yes
c03,cat.ng@segport-shop.net,Cat,no
c04,not-an-email,Dan,yes
c05,eve.fox@segport-shop.net,Eve,yes
c06,fay.wu@segport-shop.net,Fay,no
"""
NEWSLETTER = {"ann.lee@segport-shop.net": "Ann", "bob.ross@segport-shop.net": "Bob", "eve.fox@segport-shop.net": "Eve"}
INVALID_EMAIL = "not-an-email"
SCRIPT_NAME = "<script>document.title='pwned'</script>"
IMG_NAME = "\"><img src=x onerror=\"document.title='pwned'\">"
START_TIMEOUT_S = 60.0


class WriteHold:
    """Hold the sandbox's API writes (POST, PUT, PATCH, DELETE under /3.0) until :meth:`release`.

    A run started while the hold is on stays ``running`` at its first write, so its page can be read
    mid-run without racing the run; reads (ping, lists, merge fields) pass.
    """

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.open = threading.Event()
        self.open.set()
        self.waiting = threading.Event()
        self._respond = sandbox.respond
        sandbox.respond = self._gated

    def _gated(self, req: Any) -> Any:
        if req.method != "GET" and req.path.startswith("/3.0/") and not self.open.is_set():
            self.waiting.set()
            self.open.wait(60)
        return self._respond(req)

    def hold(self) -> None:
        """Hold the writes from now on."""
        self.waiting.clear()
        self.open.clear()

    def release(self) -> None:
        """Let the held writes (and every later one) through."""
        self.open.set()


@dataclass
class Console:
    """A running ``segport serve`` over a workspace made with the CLI, and the sandbox it writes to."""

    url: str
    home: Path
    operator: Operator
    sandbox: Any
    hold: WriteHold
    log: Path
    process: subprocess.Popen[bytes]
    notes: list[str] = field(default_factory=list)

    def server_log(self) -> str:
        """Return what the server wrote to stderr so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def writes(self) -> list[tuple[str, str]]:
        """Return the API calls that change something at the sandbox, in order."""
        return [(m, p) for m, p in self.sandbox.requests_log if m != "GET" and p.startswith("/3.0/")]

    def cli(self, *args: str, user: str = "ada", input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a CLI command on the server's workspace as ``user``."""
        operator = Operator(self.home, user)
        return operator(*args, input=input)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"segport serve exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"segport serve did not listen on {port} within {START_TIMEOUT_S:.0f}s:\n{log.read_text()}")


def _in_parallel(operator: Operator, commands: list[tuple[tuple[str, ...], str | None]]) -> None:
    """Run independent CLI commands at once (each one ``(args, stdin)``); each must succeed."""
    started = []
    for args, stdin in commands:
        process = subprocess.Popen(
            [sys.executable, "-m", "segport", *args],
            env=operator.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append((args, process, stdin))
    for args, process, stdin in started:
        out, err = process.communicate(stdin or "", timeout=300)
        assert process.returncode == 0 and "Traceback" not in err, f"segport {' '.join(args)}: {err}{out}"


def _make_workspace(home: Path, folder: Path) -> Operator:
    """Make the workspace as a new user would, with the CLI (independent commands side by side)."""
    ada = Operator.init(home, admin="ada")
    profiles = folder / "profiles.csv"
    profiles.write_text(PROFILES, encoding="utf-8")
    users = [(("users", "add", name, "--role", role), None) for name, role in ROLES.items()]
    _in_parallel(ada, [*users, (("profiles", "load", str(profiles), "--key", "customer_id"), None)])
    passwords = [(("users", "passwd", name, "--password-stdin"), f"{secret}\n") for name, secret in PASSWORDS.items()]
    segment = (("segments", "define", "Newsletter", "--where", "newsletter = 'yes'"), None)
    _in_parallel(ada, [*passwords, segment])
    return ada


def _open_mailchimp_sandbox() -> Any:
    from segport.sandboxing.registry import find_sandbox, sandbox_accepts

    factory = find_sandbox("mailchimp")
    assert factory is not None, "the Mailchimp plugin's sandbox is not installed"
    consent = {"oauth_consent": True} if sandbox_accepts(factory, "oauth_consent") else {}
    return open_sandbox("mailchimp", seed=17, **consent)


@pytest.fixture(scope="module", name="console")
def console_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """Serve a workspace made with the CLI (SQLite) with ``segport serve`` on a free port, for the module."""
    pytest.importorskip("uvicorn", reason="the web extra is not installed")
    folder = tmp_path_factory.mktemp("console")
    home = folder / "ws"
    ada = _make_workspace(home, folder)
    sandbox = _open_mailchimp_sandbox()
    sandbox.start()
    hold = WriteHold(sandbox)
    port = free_port()
    log = folder / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "segport", "serve", "--port", str(port)],
            env=ada.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process, log)
        yield Console(f"http://127.0.0.1:{port}", home, ada, sandbox, hold, log, process)
    finally:
        hold.release()
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        sandbox.stop()
        print("--- the end of segport serve's log ---", *log.read_text(errors="replace").splitlines()[-40:], sep="\n")


@pytest.fixture(name="attacker_site")
def attacker_site_fixture() -> Iterator[Callable[[str], str]]:
    """``attacker_site(html)``: serve ``html`` at ``/`` of another origin (another port), return its URL."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0])
            self.send_response(200 if body is not None else 404)
            kind = "text/javascript" if self.path.endswith(".js") else "text/html"
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(html: str, path: str = "/") -> str:
        pages[path] = html.encode("utf-8")
        return f"http://127.0.0.1:{server.server_address[1]}{path}"

    yield serve
    server.shutdown()
    thread.join()
    server.server_close()

