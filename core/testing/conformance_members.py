"""The kit's checks of the optional ``BatchWriter.read_members`` (:class:`MemberReadChecks`); skipped without it."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from ..config import validate
from ..contract import BatchWriter, Destination, Record, RunContext, reads_members
from ..errors import UnknownAudienceError
from ..pipeline.verify import same_value
from .double import PlatformDouble
from .kit import DestinationKit, snapshot

__all__ = ["MemberReadChecks"]


class MemberReadChecks(DestinationKit):
    """Check that a writer reading its members back reads what it wrote, changes nothing, knows a missing list.

    Add it to a plugin's conformance class beside :class:`~segport.testing.DestinationConformance`
    (``class TestConformance(DestinationConformance, MemberReadChecks)``); each check is skipped for
    a writer that does not implement ``read_members``.
    """

    def _reader(self, destination: Destination, config: dict[str, Any], options: dict[str, Any]) -> BatchWriter:
        writer = self.writer(destination, config, options)
        if not reads_members(writer):
            pytest.skip("the writer does not implement the optional read_members")
        return writer

    def test_read_members_reads_back_what_was_written(
        self, destination: Destination, config: dict[str, Any], options: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """People written are read back with their fields and markers; an unknown address is left out."""
        writer = self._reader(destination, config, options)
        alpha, beta = self.segments
        both, one = self.record(0, segments={alpha, beta}), self.record(1, segments={alpha})
        self.write(writer, [both, one])
        leaving = Record(both.key, both.email, both.fields, frozenset({beta}), remove=frozenset({alpha}),
                         upsert=False, new=False)  # fmt: skip
        self.write(writer, [leaving])
        stranger = "kit.stranger@segport-test.net"
        before = snapshot(platform)
        found = writer.read_members([both.email, one.email, stranger])
        assert snapshot(platform) == before, "read_members changed the platform: it must only read"
        assert stranger not in found, f"read_members reported {stranger}, whom the platform does not know"
        for record, markers in ((both, {beta}), (one, {alpha})):
            state = found.get(record.email)
            assert state is not None, f"read_members left out {record.email}, who is at the platform"
            assert state.subscribed, f"{record.email} was written as a new subscriber but reads {state.status!r}"
            assert set(state.markers) == markers, (
                f"{record.email} reads markers {sorted(state.markers)}, expected {sorted(markers)}: "
                "report the export's segments whose marker the person carries"
            )
            for name, value in record.fields.items():
                if name in state.fields:
                    assert same_value(value, state.fields[name]), (
                        f"{record.email}: field {name} reads {state.fields[name]!r}, written {value!r}"
                    )

    def test_read_members_reports_an_unknown_audience(
        self, destination: Destination, config: dict[str, Any], options: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """``read_members`` on an audience/list that does not exist raises ``UnknownAudienceError``."""
        self._reader(destination, config, options)
        unknown = platform.unknown_export_options()
        if unknown is None:
            pytest.skip("the double names no unknown audience/list (PlatformDouble.unknown_export_options)")
        wrong = validate(unknown, destination.spec().export_schema, "the double's unknown export options")
        with pytest.raises(UnknownAudienceError):
            self._unprepared(destination, config, wrong).read_members([self.record(0, segments=set()).email])

    def _unprepared(self, destination: Destination, config: dict[str, Any], options: dict[str, Any]) -> BatchWriter:
        """Return a writer as ``exports verify`` builds one: authenticated, never prepared."""
        session = requests.Session()
        session.auth = destination.auth(config)
        context = RunContext("conformance", options, list(self.segments), list(self._fields), dry_run=True, repair=True)
        return destination.writer(session, config, context)
