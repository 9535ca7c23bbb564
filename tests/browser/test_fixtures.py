"""The browser fixtures themselves: a page served on loopback is loaded, clicked and read at both viewports."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import pytest

from segport.testing.browser import PHONE, chromium_executable

if TYPE_CHECKING:
    from playwright.sync_api import Page

HTML = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Counter</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><p id="count">0</p><button type="button" id="add">Add one</button>
<script src="/app.js"></script></body></html>"""
SCRIPT = b"""document.getElementById("add").addEventListener("click", () => {
  const count = document.getElementById("count");
  count.textContent = String(Number(count.textContent) + 1);
});"""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body, kind = {"/": (HTML, "text/html"), "/app.js": (SCRIPT, "text/javascript")}.get(
            self.path, (b"not found", "text/plain")
        )
        self.send_response(200 if body != b"not found" else 404)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """A page with a button, served over HTTP on 127.0.0.1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    thread.join()
    server.server_close()


def test_a_page_is_clicked_at_the_desktop_size(page: Page, site: str) -> None:
    page.goto(site)
    assert page.viewport_size == {"width": 1280, "height": 800}
    page.get_by_role("button", name="Add one").click()
    page.get_by_role("button", name="Add one").click()
    assert page.locator("#count").text_content() == "2"


def test_each_page_has_its_own_context_and_a_phone_size(new_page: Callable[..., Page], site: str) -> None:
    phone = new_page(viewport=PHONE)
    phone.context.add_cookies([{"name": "who", "value": "phone", "url": site}])
    phone.goto(site)
    assert phone.evaluate("[window.innerWidth, 'ontouchstart' in window]") == [390, True]
    phone.get_by_role("button", name="Add one").tap()
    assert phone.locator("#count").text_content() == "1"
    desktop = new_page()
    desktop.goto(site)
    assert desktop.context.cookies() == []  # a fresh context: nothing from the other page
    assert desktop.locator("#count").text_content() == "0"


def test_without_chromium_the_browser_tests_skip_but_fail_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on it
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        chromium_executable()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must run in CI: chromium is not installed"):
        chromium_executable()
