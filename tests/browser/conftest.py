"""Real-browser tests: headless Chromium from the distribution, driven by Playwright (segport.testing.browser)."""

from segport.testing.browser import browser, new_page, page  # noqa: F401
