"""The kit's checks of the optional ``Destination.list_audiences`` (:class:`AudienceListChecks`); skipped without it."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from ..contract import Audience, Destination, lists_audiences
from ..errors import AuthError
from .double import PlatformDouble
from .kit import DestinationKit, every_call_answers, snapshot

__all__ = ["AudienceListChecks"]


class AudienceListChecks(DestinationKit):
    """Check that a destination listing its audiences names the double's, changes nothing, reports refused keys.

    Add it to a plugin's conformance class beside :class:`~segport.testing.DestinationConformance`
    (``class TestConformance(DestinationConformance, AudienceListChecks)``); each check is skipped for
    a destination that does not implement ``list_audiences``.
    """

    def _lister(self, destination: Destination) -> None:
        if not lists_audiences(destination):
            pytest.skip("the destination does not implement the optional list_audiences")

    def test_list_audiences_names_the_export_audience(
        self, destination: Destination, config: dict[str, Any], options: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """The audience/list the double's export options name is listed by that id, once; nothing changes."""
        self._lister(destination)
        self.write(self.writer(destination, config, options), [self.record(0, segments=set(self.segments))])
        before = snapshot(platform)
        with requests.Session() as session:
            session.auth = destination.auth(config)
            found = destination.list_audiences(session, config)
        assert snapshot(platform) == before, "list_audiences changed the platform: it must only read"
        assert isinstance(found, list) and all(isinstance(a, Audience) for a in found), (
            f"list_audiences returned {found!r}: return a list of segport.Audience"
        )
        ids = [a.id for a in found]
        assert all(isinstance(i, str) and i.strip() for i in ids), f"an audience without an id: {found!r}"
        assert len(set(ids)) == len(ids), f"an audience is listed twice: {ids}"
        for audience in found:
            assert isinstance(audience.name, str) and "\n" not in audience.name, (
                f"audience {audience.id}: its name must be one line of text, not {audience.name!r}"
            )
            count = audience.member_count
            assert count is None or (type(count) is int and count >= 0), (
                f"audience {audience.id}: member_count {count!r} is neither None nor a count"
            )
        named = {str(value) for value in options.values() if isinstance(value, str)}
        assert named & set(ids), (
            f"list_audiences listed {ids}, none of them named by the double's export options {options}: list "
            "every audience the credentials can write to, by the id the export options take"
        )

    def test_list_audiences_turns_401_into_auth_error(self, destination: Destination, config: dict[str, Any]) -> None:
        """A 401 while listing is :class:`segport.AuthError`, one line, without the secret."""
        self._lister(destination)
        with every_call_answers(401, {}), requests.Session() as session:
            session.auth = destination.auth(config)
            with pytest.raises(AuthError) as caught:
                destination.list_audiences(session, config)
        self._assert_operator_message(caught.value, destination, config)
