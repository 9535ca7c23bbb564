"""Every HTTP call of a run holds a slot of its credential's call governor until its answer is read."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
import requests

from segport.governor import GovernedAdapter


class Counting(BaseHTTPRequestHandler):
    """Answers slowly, with a body sent in pieces: a call is in flight until its last byte is written."""

    lock = threading.Lock()
    in_flight = 0
    peak = 0

    def do_GET(self) -> None:
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.peak = max(cls.peak, cls.in_flight)
        try:
            body = b"x" * 200_000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for start in range(0, len(body), 50_000):
                time.sleep(0.01)  # the client has the headers long before the last byte
                self.wfile.write(body[start : start + 50_000])
                self.wfile.flush()
        finally:
            with cls.lock:
                cls.in_flight -= 1

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Counting.in_flight = Counting.peak = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_parallel_calls_never_pass_the_limit_and_slots_are_held_until_the_body_is_read(server: str) -> None:
    gate = threading.BoundedSemaphore(2)
    with requests.Session() as session:
        session.mount("http://", GovernedAdapter(gate, pool_maxsize=8))
        with ThreadPoolExecutor(8) as pool:  # e.g. a parallel pre-flight beside running batches
            sizes = list(pool.map(lambda _: len(session.get(server, timeout=10).content), range(16)))
    assert sizes == [200_000] * 16
    assert Counting.peak == 2
