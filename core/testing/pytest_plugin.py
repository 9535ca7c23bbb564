"""segport's pytest plugin (entry point ``pytest11``): fixtures for destination plugin tests.

``strict_responses`` is a ``responses.RequestsMock`` that fails on any unmatched call and on any
registered call left unfired. Parametrize it indirectly with ``ORDERED`` to check call order::

    from segport.testing.pytest_plugin import ORDERED

    @ORDERED
    def test_refresh_then_retry(strict_responses): ...
"""

from __future__ import annotations

from typing import Iterator

import pytest

try:  # responses is a test dependency (segport[test]); without it the fixture is absent
    import responses
    from responses.registries import FirstMatchRegistry, OrderedRegistry
except ImportError:  # pragma: no cover - exercised only without the test extra
    responses = None  # type: ignore[assignment]

if responses is not None:
    ORDERED = pytest.mark.parametrize("strict_responses", [OrderedRegistry], indirect=True, ids=["ordered"])

    @pytest.fixture
    def strict_responses(request: pytest.FixtureRequest) -> Iterator[responses.RequestsMock]:
        """Yield a strict ``responses`` mock; parametrized with ``ORDERED`` it also checks the order of calls."""
        registry = getattr(request, "param", FirstMatchRegistry)
        with responses.RequestsMock(assert_all_requests_are_fired=True, registry=registry) as mock:
            yield mock
