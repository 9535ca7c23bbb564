"""What every kit class shares: :class:`DestinationKit`, its fixtures and its helpers.

:class:`~segport.testing.conformance.DestinationConformance` (the contract) and
:class:`~segport.testing.conformance_resilience.DestinationResilience` (crashes and faults) both build on
it: the destination loaded through its entry point, a :class:`~segport.testing.double.PlatformDouble`
started for each test, the double's connection and options validated, and every check run with logging
at DEBUG under the rule that no secret of the connection may appear in a log line or the output.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import pytest
import requests

from ..config import secret_fields, validate
from ..contract import BatchWriter, Destination, Outcome, OutcomeStatus, Record, RunContext
from ..pending import complete_batch
from ..registry import DESTINATIONS_GROUP, instantiate
from .double import PlatformDouble, PlatformMember, registered_double

try:  # responses is in segport[test]; the checks that need it fail with a hint without it
    import responses
except ImportError:  # pragma: no cover - exercised only without the test extra
    responses = None  # type: ignore[assignment]

__all__ = ["DestinationKit"]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class DestinationKit:
    """The fixtures and helpers of the kit's classes; subclass those, not this.

    :cvar entry_point: the plugin's name in the ``segport.destinations`` entry-point group.
    :cvar fields: destination field -> a sample value the records carry (default: a value for each of
        the spec's known fields).
    :cvar segments: two segment names the checks export (markers are created for them).
    :cvar batch_records: records in the full-batch check (default: the spec's ``batch_size``, at most 1000).
    """

    entry_point: ClassVar[str] = ""
    fields: ClassVar[Mapping[str, str] | None] = None
    segments: ClassVar[tuple[str, str]] = ("Kit Alpha", "Kit Beta")
    batch_records: ClassVar[int | None] = None

    # -- fixtures: override ``platform`` to bring your own double ------------------------------------------

    @pytest.fixture
    def destination(self) -> Destination:
        """Return the destination object, loaded through its entry point as the engine loads it."""
        return instantiate(self._name(), self._entry_point().load())

    @pytest.fixture
    def platform(self, destination: Destination) -> Iterator[PlatformDouble]:
        """Start the plugin's own sandbox (its ``segport.sandboxes`` entry point) on 127.0.0.1 for one test."""
        with registered_double(destination.name) as double:
            yield double

    @pytest.fixture
    def config(self, destination: Destination, platform: PlatformDouble) -> dict[str, Any]:
        """Return the double's connection config, validated with defaults applied (as the engine stores it)."""
        return validate(platform.connection(), destination.spec().connection_schema, "the double's connection")

    @pytest.fixture
    def options(self, destination: Destination, platform: PlatformDouble) -> dict[str, Any]:
        """Return the double's export options, validated with defaults applied."""
        return validate(platform.export_options(), destination.spec().export_schema, "the double's export options")

    @pytest.fixture(autouse=True)
    def _sample_fields(self, destination: Destination) -> None:
        """Set the fields the checks' records carry (from the ``destination`` fixture, overridden or not)."""
        self._fields = self.sample_fields(destination)

    @pytest.fixture(autouse=True)
    def _secrets_stay_out_of_logs(
        self, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> Iterator[None]:
        """Every check runs with logging at DEBUG; no log line or output may hold a secret of the connection."""
        caplog.set_level(logging.DEBUG)
        secrets: list[str] = []
        if "platform" in request.fixturenames:
            destination = request.getfixturevalue("destination")
            secrets = self._secrets(destination, request.getfixturevalue("platform").connection())
        yield
        out, err = capsys.readouterr()
        for stream, text in (("stdout", out), ("stderr", err)):
            assert_no_secret(text, secrets, f"the plugin's {stream}")
        for record in [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]:
            text = record.getMessage() + (caplog.handler.format(record) if record.exc_info else "")
            for secret in secrets:
                assert secret not in text, (
                    f"a secret of the connection appears in a log line of {record.name!r} "
                    f"({record.pathname}:{record.lineno}): never log credentials, URLs or headers that carry them"
                )

    # -- helpers for subclasses' own checks -----------------------------------------------------------

    def sample_fields(self, destination: Destination, tag: str = "kit") -> dict[str, str]:
        """Destination field -> value the records carry (``fields``, else one per known field)."""
        if self.fields is not None:
            return {name: f"{value} {tag}" for name, value in self.fields.items()}
        return {name: f"Kit {tag}" for name in list(destination.spec().fields.known)[:2]}

    def record(self, i: int, *, segments: set[str] | frozenset[str]) -> Record:
        """Return a new person ``kit.<i>@segport-test.net`` entering ``segments``, sample fields numbered ``i``."""
        fields = {name: f"{value} {i}" for name, value in self._fields.items()}
        marks = frozenset(segments)
        return Record(f"k{i}", f"kit.{i}@segport-test.net", fields, segments=marks, add=marks)

    def writer(
        self, destination: Destination, config: Mapping[str, Any], options: Mapping[str, Any], *, dry_run: bool = False
    ) -> BatchWriter:
        """Return a prepared writer on an authenticated session, as the engine builds one."""
        session = requests.Session()
        session.auth = destination.auth(config)
        context = RunContext("conformance", options, list(self.segments), list(self._fields), dry_run=dry_run)
        writer = destination.writer(session, config, context)
        writer.prepare()
        return writer

    def write(self, writer: BatchWriter, records: Sequence[Record]) -> dict[str, Outcome]:
        """``write_batch`` (a pending job polled to its end) with the outcome rules checked; the outcomes by key."""
        return self.check_outcomes(records, complete_batch(writer.write_batch(records)).outcomes)

    def check_outcomes(self, records: Sequence[Record], outcomes: Sequence[Outcome]) -> dict[str, Outcome]:
        """Exactly one outcome per record, a reason for every refusal; the outcomes by key."""
        keys = [o.key for o in outcomes]
        expected = [r.key for r in records]
        odd = sorted(k for k in set(keys) if keys.count(k) > 1 or k not in expected)
        assert sorted(keys) == sorted(expected), (
            f"write_batch returned {len(outcomes)} outcomes for {len(records)} records (missing "
            f"{sorted(set(expected) - set(keys))[:5]}, unexpected or repeated {odd[:5]}): return exactly one per record"
        )
        for outcome in outcomes:
            if outcome.status in (OutcomeStatus.REJECTED, OutcomeStatus.RETRYABLE, OutcomeStatus.SKIPPED):
                assert outcome.reason, f"{outcome.status.value} outcome of {outcome.key} has no reason: say why"
            assert outcome.status is not OutcomeStatus.FAILED, "FAILED is the engine's: return RETRYABLE"
        return {o.key: o for o in outcomes}

    def members_by_email(self, platform: PlatformDouble) -> dict[str, PlatformMember]:
        """Return the platform's people by normalised email; two people with one identity fail."""
        found: dict[str, PlatformMember] = {}
        for member in platform.members():
            key = member.email.strip().lower()
            assert key not in found, f"two people at the platform for {key}: the writer created a duplicate"
            found[key] = member
        return found

    def assert_member(
        self,
        member: PlatformMember,
        *,
        fields: Mapping[str, Any] | None = None,
        markers: set[str] | frozenset[str] | None = None,
        status: str | None = None,
    ) -> None:
        """Assert the person holds ``fields`` (at least), exactly ``markers`` among the kit's segments, ``status``."""
        for name, value in (fields or {}).items():
            assert member.fields.get(name) == value, (
                f"{member.email}: field {name!r} is {member.fields.get(name)!r} at the platform, expected {value!r}"
            )
        if markers is not None:
            held = set(member.markers) & set(self.segments)
            assert held == set(markers), (
                f"{member.email} carries {sorted(held)} at the platform, expected {sorted(markers)}"
            )
        if status is not None:
            assert member.status == status, f"{member.email}'s status changed from {status!r} to {member.status!r}"

    # -- internals ------------------------------------------------------------------------------------

    _fields: dict[str, str]  # set by the _sample_fields fixture

    def _name(self) -> str:
        if not self.entry_point:
            pytest.fail(f"{type(self).__name__}: set entry_point to your name in the {DESTINATIONS_GROUP} group")
        return self.entry_point

    def _entry_point(self) -> importlib.metadata.EntryPoint:
        found = importlib.metadata.entry_points(group=DESTINATIONS_GROUP, name=self._name())
        if not found:
            pytest.fail(
                f"no entry point {self._name()!r} in the {DESTINATIONS_GROUP!r} group: declare it in your "
                "distribution's metadata and reinstall it (pip install -e .)"
            )
        return next(iter(found))

    def _secrets(self, destination: Destination, config: Mapping[str, Any]) -> list[str]:
        names = secret_fields(destination.spec().connection_schema)
        return [v for k, v in config.items() if k in names and isinstance(v, str) and len(v) >= 6]

    def _assert_operator_message(self, exc: BaseException, destination: Destination, config: Mapping[str, Any]) -> None:
        text = str(exc)
        assert text.strip() and "\n" not in text, f"{type(exc).__name__} must say in one line what is wrong: {text!r}"
        secrets = self._secrets(destination, config)
        assert_no_secret(text, secrets, f"a {type(exc).__name__}")
        assert_no_secret(str(getattr(exc, "internal_message", "") or ""), secrets, "an internal_message")
        assert_no_secret(repr(exc.__cause__ or exc.__context__ or ""), secrets, "an exception's cause")


class every_call_answers:
    """Every HTTP call answers ``answer`` (a status, or an exception the transport raises)."""

    def __init__(self, answer: int | type[Exception], headers: Mapping[str, str]) -> None:
        if responses is None:
            pytest.fail("the conformance kit needs 'responses': install segport[test]")
        self.mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        for method in METHODS:
            if isinstance(answer, int):
                body = {"status": answer, "title": "conformance kit", "detail": f"every call answers {answer}"}
                self.mock.add(method, re.compile(r".*"), json=body, status=answer, headers=dict(headers))
            else:
                self.mock.add(method, re.compile(r".*"), body=answer("conformance kit: transport failure"))

    def __enter__(self) -> every_call_answers:
        self.mock.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.mock.stop()
        self.mock.reset()


def wrong_value(value: Any) -> Any:
    """Return a value of another JSON type than ``value``."""
    if isinstance(value, bool) or isinstance(value, str):
        return 12345
    if isinstance(value, (int, float)):
        return "not a number"
    return True


def assert_no_secret(text: str, secrets: Sequence[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{where} holds a secret of the connection: never put credentials in messages"


def snapshot(platform: PlatformDouble) -> list[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...], str]]:
    return sorted(
        (
            m.email.strip().lower(),
            tuple(sorted((k, repr(v)) for k, v in m.fields.items())),
            tuple(sorted(m.markers)),
            m.status,
        )
        for m in platform.members()
    )


def first_of(outcomes: Mapping[str, Outcome]) -> str:
    key, outcome = next(iter(outcomes.items()))
    return f"{len(outcomes)} such, e.g. {key}: {outcome.status.value} ({outcome.reason})"
