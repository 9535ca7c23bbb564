"""Real-browser test fixtures: the distribution's headless ``chromium`` driven by Playwright's sync API.

Playwright starts the ``chromium`` on ``PATH`` (Debian's package; ``.ci/run`` installs it) through
``executable_path``: ``playwright install`` is never needed. Use them from a ``conftest.py``::

    from segport.testing.browser import browser, page, new_page  # noqa: F401

- ``browser`` (session): one headless Chromium per test process (per xdist worker);
- ``page``: a page in a fresh context (no cookies or storage from other tests) at :data:`DESKTOP`;
- ``new_page(viewport=PHONE)``: more pages, each in its own fresh context (e.g. two users at once,
  or a phone-sized one at :data:`PHONE`); all closed after the test.

Without ``chromium`` or the ``playwright`` package the tests using them skip, but fail under
``CI=true`` (as the PostgreSQL and Redis fixtures do).
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Callable, Iterator, NoReturn

import pytest

if TYPE_CHECKING:  # playwright is a test dependency (segport[test]); imported when a fixture is used
    from playwright.sync_api import Browser, Page, ViewportSize

#: The viewport of :func:`page`: the console's desktop size.
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
#: A phone-sized viewport (a 6.1-inch phone in portrait, in CSS pixels) for ``new_page(viewport=PHONE)``.
PHONE: ViewportSize = {"width": 390, "height": 844}

#: Chromium's switches: no sandbox (CI runs as root, where Chromium's sandbox refuses to start), no GPU,
#: and no background traffic (updates, sync, QUIC) that a test on loopback neither needs nor should wait on.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the browser tests must run in CI: {reason}")
    pytest.skip(f"no browser for the browser tests: {reason}")


def chromium_executable() -> str:
    """Return the path of the ``chromium`` on PATH; skip the test without it or Playwright (fail under CI=true)."""
    executable = shutil.which("chromium")
    if executable is None:
        _unavailable("chromium is not installed (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed (pip install 'segport[test]')")
    return executable


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Yield a headless Chromium (the ``chromium`` on PATH) for the session; skip without it (fail under CI)."""
    executable = chromium_executable()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Yield ``new_page(viewport=DESKTOP)``: a page in a new context; phone-sized ones are mobile with touch."""
    contexts = []

    def make(viewport: ViewportSize = DESKTOP) -> Page:
        phone = viewport["width"] < 600
        context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    """Return a page in a fresh browser context at :data:`DESKTOP` (1280x800), closed after the test."""
    return new_page()
