"""Runs in the console: the history with its filters and counts, a run's live progress and its rejects."""

from __future__ import annotations

import re
import threading
from typing import Any, Callable, Sequence

import pytest
from fastapi.testclient import TestClient

from segport import Workspace
from segport.contract import BatchResult, Record
from segport.testing.fakes import MemoryPlatform, MemoryWriter
from segport.web import app as web_app
from segport.web import create_app
from segport.web.runner import ConsoleRuns

POLLING = 'hx-trigger="every 1s"'


def progress_region(html: str) -> str:
    """Return the opening tag of the run page's progress region."""
    found = re.search(r'<section id="progress"[^>]*>', html)
    assert found, html
    return found.group(0)


@pytest.fixture
def console_runs() -> list[ConsoleRuns]:
    """The console-runs object of the app under test (the app's state sits inside its middleware)."""
    return []


@pytest.fixture
def app(web_ws: Workspace, database_url: str | None, console_runs: list[ConsoleRuns], monkeypatch: Any) -> Any:
    """The app of ``segport serve``, its :class:`ConsoleRuns` kept in ``console_runs``."""

    class Kept(ConsoleRuns):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            console_runs.append(self)

    monkeypatch.setattr(web_app, "ConsoleRuns", Kept)
    return create_app(web_ws.home, database_url=database_url)


@pytest.fixture
def exported(web_ws: Workspace, memory_export: Callable[[Workspace, int], None], platform: MemoryPlatform) -> int:
    """Export ``all`` of 12 profiles ran once as carl; two addresses were rejected with a reason."""
    memory_export(web_ws, 12)
    web_ws.edit_connection("mem", share="contributors", check=False)
    platform.reject_emails = {"user3@example.com": "invalid <domain> & more", "user7@example.com": "fake address"}
    web_ws.context.user_name = "carl"
    try:
        run = web_ws.run_export("all")
    finally:
        web_ws.context.user_name = "ada"
    return run.id


def test_the_history_lists_runs_with_their_counts(signed_in: Callable[[str], TestClient], exported: int) -> None:
    page = signed_in("vera").get("/runs")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Runs</h1>" in html
    headers = re.findall(r'<th scope="col">([^<]+)</th>', html)
    assert headers == [
        "Run", "Export", "Status", "Trigger", "User", "Started", "Duration",
        "Created", "Updated", "Unchanged", "Exits", "Rejected", "Failed", "Skipped",
    ]  # fmt: skip
    row = re.search(rf'<a href="/runs/{exported}">Run {exported}</a>.*?</tr>', html, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
    assert cells[0:4] == ["all", "succeeded", "manual", "carl"]
    assert [c.strip() for c in cells[6:]] == ["10", "0", "0", "0", "2", "0", "0"]


def test_the_history_filters_by_status_and_trigger(signed_in: Callable[[str], TestClient], exported: int) -> None:
    browser = signed_in("carl")
    assert f"Run {exported}<" in browser.get("/runs?status=succeeded&trigger=manual&export=all").text
    assert f"Run {exported}<" not in browser.get("/runs?status=failed").text
    assert f"Run {exported}<" not in browser.get("/runs?trigger=api").text
    assert "No runs match these filters" in browser.get("/runs?export=other").text
    bad = browser.get("/runs?status=bogus").text
    assert "unknown run status" in bad


def test_a_finished_run_shows_its_counts_and_rejects(signed_in: Callable[[str], TestClient], exported: int) -> None:
    browser = signed_in("vera")
    html = browser.get(f"/runs/{exported}").text
    assert f"<h1>Run {exported}</h1>" in html
    assert "hx-trigger" not in progress_region(html)
    assert 'role="status"' in progress_region(html) and 'aria-live="polite"' in progress_region(html)
    assert '<progress aria-label="Records processed" max="12" value="12">' in html
    assert re.findall(r'<th scope="col">([^<]+)</th>', html) == ["Email", "Outcome", "Reason"]
    assert "<td>user3@example.com</td><td>rejected</td><td>invalid &lt;domain&gt; &amp; more</td>" in html
    assert "<td>user7@example.com</td><td>rejected</td><td>fake address</td>" in html
    fragment = browser.get(f"/runs/{exported}/progress").text
    assert "hx-trigger" not in progress_region(fragment)
    assert re.search(r'<section id="rejects"[^>]* hx-swap-oob="true"', fragment)  # the page gets them, no reload
    assert "<td>user3@example.com</td><td>rejected</td>" in fragment


def test_a_missing_run_is_a_404_page(signed_in: Callable[[str], TestClient]) -> None:
    answer = signed_in("vera").get("/runs/9999")
    assert answer.status_code == 404
    assert "run 9999" in answer.text.lower() or "9999" in answer.text


@pytest.mark.sqlite_only("the console's run thread and the page share one flow; both stores run the finished run")
def test_a_running_run_polls_its_progress_until_it_ends(
    console_runs: list[ConsoleRuns],
    signed_in: Callable[[str], TestClient],
    web_ws: Workspace,
    memory_export: Callable[[Workspace, int], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    memory_export(web_ws, 25)  # three batches of 10
    web_ws.edit_connection("mem", share="contributors", check=False)
    gate, first_batch = threading.Event(), threading.Event()
    write = MemoryWriter.write_batch

    def gated(self: MemoryWriter, records: Sequence[Record]) -> BatchResult:
        if first_batch.is_set():
            assert gate.wait(30), "the test never opened the gate"
        first_batch.set()
        return write(self, records)

    monkeypatch.setattr(MemoryWriter, "write_batch", gated)
    browser = signed_in("carl")
    web_ws.context.user_name = "carl"
    started = console_runs[0].start(web_ws, "all")
    web_ws.context.user_name = "ada"
    assert started.run_id is not None
    try:
        html = browser.get(f"/runs/{started.run_id}").text
        region = progress_region(html)
        assert f'hx-get="/runs/{started.run_id}/progress"' in region and POLLING in region
        assert 'hx-swap="outerHTML"' in region
        assert '<h2 id="rejects-title">' not in html  # no rejects while it runs
        fragment = browser.get(f"/runs/{started.run_id}/progress").text
        assert POLLING in progress_region(fragment)
        assert "of 25 selected profiles processed" in fragment
    finally:
        gate.set()
    for thread in [t for t in threading.enumerate() if t.name == "run-all"]:
        thread.join(30)
    fragment = browser.get(f"/runs/{started.run_id}/progress").text
    assert "hx-trigger" not in progress_region(fragment)
    assert "25 of 25 selected profiles processed" in fragment
    assert "No record was rejected, failed or skipped." in fragment
