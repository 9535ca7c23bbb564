"""Fixtures the built-in plugins' unit tests share: the strict HTTP mock and a session to send through it."""

from __future__ import annotations

from typing import Iterator

import pytest
import requests
import responses


@pytest.fixture
def rsps(strict_responses: responses.RequestsMock) -> responses.RequestsMock:
    """The strict mock of segport's pytest plugin; ``@ORDERED`` also checks call order."""
    return strict_responses


@pytest.fixture
def session() -> Iterator[requests.Session]:
    """A session without credentials, closed after the test (set ``session.auth`` to add them)."""
    with requests.Session() as http:
        yield http
