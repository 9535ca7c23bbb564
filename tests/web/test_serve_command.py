"""``segport serve`` as an operator starts it: where it listens, a busy port, and stopping it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.sqlite_only("the command's own behaviour; the pages and API run on both stores")


def segport(*args: str, home: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGPORT_")}
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "segport", "--home", str(home), *args], env=env, text=True, capture_output=True, **kwargs
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    assert segport("init", "--admin", "ada", home=home).returncode == 0
    return home


def test_a_busy_port_is_one_line_and_exit_3(workspace: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = segport("serve", "--port", str(port), home=workspace, timeout=60)
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "--port" in done.stderr and "Traceback" not in done.stderr


def test_it_serves_until_sigterm(workspace: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGPORT_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "segport", "--home", str(workspace), "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5) as answer:
                    assert answer.status == 200 and "Log in" in answer.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, "segport serve did not answer within 30 s"
                time.sleep(0.2)
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 143  # stopped by SIGTERM, as every command documents it (after a graceful shutdown)
    assert "Traceback" not in stderr
    assert f"segport console on http://127.0.0.1:{port}" in stderr
    assert '"GET /login" 200' in stderr  # the access log, one line per request
    assert (workspace / "web.key").stat().st_mode & 0o777 == 0o600
