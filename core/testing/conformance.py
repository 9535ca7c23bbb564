"""The destination conformance kit: what every segport destination must do, as pytest tests.

Subclass :class:`DestinationConformance` in your plugin's tests and name your entry point::

    from segport.testing import DestinationConformance

    class TestConformance(DestinationConformance):
        entry_point = "webhook"          # your name in the segport.destinations group

The kit runs your plugin against a :class:`~segport.testing.double.PlatformDouble`: by default the
sandbox your distribution registers under ``segport.sandboxes``, started on 127.0.0.1 for each test (override
the ``platform`` fixture to bring another). Every check is one test, named after the rule it checks;
a failure says which rule broke and how to fix it. Both built-in plugins pass exactly this kit.

What it checks: the entry point loads; the specs are valid JSON Schema and secrets are ``writeOnly``; a
sample config validates and broken ones fail by path; the auth handler sets credentials, its check
accepts good ones and turns a 401 into :class:`segport.AuthError`; the writer returns exactly one
outcome per record; per-record errors in a successful answer become rejects; 429/5xx/transport
failures become retryable (with the platform's Retry-After); resending a batch is idempotent; email
identity is case-insensitive; leaving a segment removes only the marker; an unknown audience/list is
reported; secrets never appear in logs or errors; an export runs end to end through the engine.
"""

from __future__ import annotations

import csv
import importlib.metadata
import logging
import re
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import pytest
import requests

from ..config import schema_properties, secret_fields, validate
from ..contract import BatchWriter, Destination, Outcome, OutcomeStatus, Record, RunContext
from ..dispatcher import RetryPolicy
from ..errors import (
    AuthError,
    ConfigValidationError,
    RetryableDestinationError,
    SegportError,
    UnknownAudienceError,
)
from ..http import TRANSPORT_ERRORS
from ..models import RunStatus
from ..pending import complete_batch
from ..registry import DESTINATIONS_GROUP, Registry, instantiate
from .concurrency import ConcurrencyChecks
from .double import PlatformDouble, PlatformMember, registered_double

try:  # responses is in segport[test]; the checks that need it fail with a hint without it
    import responses
except ImportError:  # pragma: no cover - exercised only without the test extra
    responses = None  # type: ignore[assignment]

__all__ = ["DestinationConformance"]

SECRET_NAME = re.compile(r"(?i)(key|token|secret|password|passwd|credential)")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
RETRY_AFTER_S = 7
TRANSIENT: Sequence[tuple[str, int | type[Exception], dict[str, str]]] = (
    ("429 with Retry-After", 429, {"Retry-After": str(RETRY_AFTER_S)}),
    ("429", 429, {}),
    ("500", 500, {}),
    ("502", 502, {}),
    ("503", 503, {}),
    ("504", 504, {}),
    ("connection reset", requests.ConnectionError, {}),
    ("read timeout", requests.ReadTimeout, {}),
)
FAST_RETRY = RetryPolicy(attempts=4, base=0.001, cap=0.01)


class DestinationConformance(ConcurrencyChecks):
    """Subclass with ``entry_point`` set; pytest collects every ``test_*`` check below.

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
        """The destination object, loaded through its entry point as the engine loads it."""
        return instantiate(self._name(), self._entry_point().load())

    @pytest.fixture
    def platform(self, destination: Destination) -> Iterator[PlatformDouble]:
        """The plugin's own sandbox (its ``segport.sandboxes`` entry point), started on 127.0.0.1 for one test."""
        with registered_double(destination.name) as double:
            yield double

    @pytest.fixture
    def config(self, destination: Destination, platform: PlatformDouble) -> dict[str, Any]:
        """The double's connection config, validated with defaults applied (as the engine stores it)."""
        return validate(platform.connection(), destination.spec().connection_schema, "the double's connection")

    @pytest.fixture
    def options(self, destination: Destination, platform: PlatformDouble) -> dict[str, Any]:
        """The double's export options, validated with defaults applied."""
        return validate(platform.export_options(), destination.spec().export_schema, "the double's export options")

    @pytest.fixture(autouse=True)
    def _sample_fields(self, destination: Destination) -> None:
        """The fields the checks' records carry (from the ``destination`` fixture, overridden or not)."""
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
            _assert_no_secret(text, secrets, f"the plugin's {stream}")
        for record in [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]:
            text = record.getMessage() + (caplog.handler.format(record) if record.exc_info else "")
            for secret in secrets:
                assert secret not in text, (
                    f"a secret of the connection appears in a log line of {record.name!r} "
                    f"({record.pathname}:{record.lineno}): never log credentials, URLs or headers that carry them"
                )

    # -- discovery and specs ---------------------------------------------------------------------------

    def test_entry_point_loads(self) -> None:
        """The name is registered under ``segport.destinations`` and the engine's registry loads it."""
        plugin = self._entry_point().load()
        assert isinstance(plugin, type) and issubclass(plugin, Destination), (
            f"entry point {self._name()!r} points at {plugin!r}: point it at your Destination subclass"
        )
        assert plugin.name == self._name(), (
            f"{plugin.__name__}.name is {plugin.name!r} but the entry point is {self._name()!r}: make them equal"
        )
        assert Registry().get(self._name()).name == self._name()

    def test_specs_are_valid_json_schema(self, destination: Destination) -> None:
        """Both schemas pass JSON Schema 2020-12 and the spec meta-schema; limits are positive (checked at load)."""
        spec = destination.spec()
        assert spec.connection_schema.get("type") == "object" and spec.export_schema.get("type") == "object"
        assert spec.auth_methods, "DestinationSpec.auth_methods names at least one way to authenticate"

    def test_secrets_are_write_only(self, destination: Destination) -> None:
        """Every property that looks like a credential is ``writeOnly: true``, so it is encrypted and hidden."""
        schema = destination.spec().connection_schema
        secret = secret_fields(schema)
        looks_secret = sorted(name for name, _ in schema_properties(schema) if SECRET_NAME.search(name))
        missing = [name for name in looks_secret if name not in secret]
        assert not missing, (
            f"connection properties {missing} look like credentials but are not writeOnly: add "
            '"writeOnly": true to each in your spec, or the engine stores and shows them in clear'
        )

    def test_sample_config_and_options_validate(self, destination: Destination, platform: PlatformDouble) -> None:
        """The double's connection and export options validate against the specs."""
        spec = destination.spec()
        validate(platform.connection(), spec.connection_schema, "the double's connection")
        validate(platform.export_options(), spec.export_schema, "the double's export options")

    def test_broken_config_fails_by_path(self, destination: Destination, config: dict[str, Any]) -> None:
        """A wrong-typed value fails with its JSON path; a missing required one is named; no secret echoed."""
        schema = destination.spec().connection_schema
        secrets = self._secrets(destination, config)
        for name, value in config.items():
            broken = {**config, name: _wrong_value(value)}
            with pytest.raises(ConfigValidationError) as caught:
                validate(broken, schema, "connection")
            assert any(line.startswith(f"$.{name}") for line in caught.value.errors), (
                f"a wrong value of {name!r} was reported as {caught.value.errors}: errors must name '$.{name}'"
            )
            _assert_no_secret(str(caught.value), secrets, "a config validation error")
        for name in schema.get("required", []):
            with pytest.raises(ConfigValidationError) as caught:
                validate({k: v for k, v in config.items() if k != name}, schema, "connection")
            assert name in str(caught.value), f"a missing required {name!r} was reported as {caught.value}"

    # -- auth ------------------------------------------------------------------------------------------

    def test_auth_sets_credentials(self, destination: Destination, config: dict[str, Any]) -> None:
        """The auth handler changes an outgoing request (a header, the URL or the body)."""
        request = requests.Request("GET", destination.base_url(config) or "http://127.0.0.1/").prepare()
        before = (request.url, dict(request.headers), request.body)
        destination.auth(config)(request)
        assert (request.url, dict(request.headers), request.body) != before, (
            "the auth handler left the request unchanged: set the credentials in __call__ (e.g. an "
            "Authorization header) and return the request"
        )

    def test_auth_check_accepts_valid_credentials(self, destination: Destination, config: dict[str, Any]) -> None:
        """``check`` makes a call with good credentials and describes the account in one line."""
        with requests.Session() as session:
            session.auth = auth = destination.auth(config)
            account = auth.check(session)
        assert isinstance(account, str) and account.strip() and "\n" not in account, (
            f"check() returned {account!r}: return a short one-line description of the account"
        )
        _assert_no_secret(account, self._secrets(destination, config), "check()'s account description")

    def test_auth_check_turns_401_into_auth_error(self, destination: Destination, config: dict[str, Any]) -> None:
        """A 401 from the platform is :class:`segport.AuthError`, one line, without the secret."""
        with _every_call_answers(401, {}), requests.Session() as session:
            session.auth = auth = destination.auth(config)
            with pytest.raises(AuthError) as caught:
                auth.check(session)
        self._assert_operator_message(caught.value, destination, config)

    # -- the writer ----------------------------------------------------------------------------------

    def test_writer_returns_one_outcome_per_record(
        self, destination: Destination, config: dict[str, Any], options: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """A full batch of new people: one outcome per record, all delivered, all at the platform."""
        limit = destination.spec().limits.batch_size
        count = max(1, min(limit, self.batch_records or 1000))
        alpha = self.segments[0]
        records = [self.record(i, segments={alpha}) for i in range(count)]
        outcomes = self.write(self.writer(destination, config, options), records)
        undelivered = {k: o for k, o in outcomes.items() if not o.status.delivered}
        assert not undelivered, f"records of a valid batch were not delivered: {_first(undelivered)}"
        landed = self.members_by_email(platform)
        missing = [r.email for r in records if r.email not in landed]
        assert not missing, f"{len(missing)} records reported delivered are not at the platform, e.g. {missing[:3]}"
        for r in records:
            self.assert_member(landed[r.email], fields=r.fields, markers={alpha})

    def test_per_record_errors_become_rejects(
        self, destination: Destination, config: dict[str, Any], options: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """A successful answer that refuses one person: that record is rejected (or retryable) with a reason."""
        records = [self.record(i, segments={self.segments[0]}) for i in range(3)]
        refused = records[1]
        platform.refuse(refused.email)
        outcomes = self.write(self.writer(destination, config, options), records)
        bad = outcomes[refused.key]
        assert bad.status in (OutcomeStatus.REJECTED, OutcomeStatus.RETRYABLE), (
            f"the platform refused {refused.email} inside its answer but the writer reported {bad.status.value}: "
            "read the answer's per-record errors and return Outcome.rejected(key, reason) for them"
        )
        for r in (records[0], records[2]):
            assert outcomes[r.key].status.delivered, f"{r.email} was not refused but got {outcomes[r.key]}"
        assert refused.email not in self.members_by_email(platform) or bad.status is OutcomeStatus.RETRYABLE

    @pytest.mark.parametrize("fault", TRANSIENT, ids=[t[0] for t in TRANSIENT])
    def test_throttling_and_server_errors_are_retryable(
        self,
        fault: tuple[str, int | type[Exception], dict[str, str]],
        destination: Destination,
        config: dict[str, Any],
        options: dict[str, Any],
    ) -> None:
        """429, 5xx and transport failures: the batch raises :class:`RetryableDestinationError` (carrying
        the platform's Retry-After), lets a transport error of ``requests`` propagate, or makes every
        outcome retryable."""
        _, answer, headers = fault
        writer = self.writer(destination, config, options)
        records = [self.record(i, segments={self.segments[0]}) for i in range(3)]
        with _every_call_answers(answer, headers):
            try:
                result = complete_batch(writer.write_batch(records))
            except TRANSPORT_ERRORS:
                if isinstance(answer, int):
                    raise
                return  # a transport error of requests may propagate: the engine retries it
            except RetryableDestinationError as exc:
                self._assert_operator_message(exc, destination, config)
                if headers.get("Retry-After"):
                    assert exc.retry_after == RETRY_AFTER_S, (
                        f"the platform answered Retry-After: {RETRY_AFTER_S} but the error carries "
                        f"retry_after={exc.retry_after}: pass segport.http.retry_after(response)"
                    )
                return
            except SegportError as exc:
                pytest.fail(
                    f"a transient {fault[0]} became {type(exc).__name__}: {exc} (raise RetryableDestinationError)"
                )
        outcomes = self.check_outcomes(records, result.outcomes)
        final = {k: o.status.value for k, o in outcomes.items() if o.status is not OutcomeStatus.RETRYABLE}
        assert not final, f"a transient {fault[0]} made records final: {final}; they must be retryable"

    def test_refused_credentials_during_a_run_are_an_auth_error(
        self, destination: Destination, config: dict[str, Any], options: dict[str, Any]
    ) -> None:
        """A 401 while writing (a key revoked mid-run) raises :class:`segport.AuthError`: retrying cannot help."""
        writer = self.writer(destination, config, options)
        with _every_call_answers(401, {}), pytest.raises(AuthError) as caught:
            complete_batch(writer.write_batch([self.record(0, segments={self.segments[0]})]))
        self._assert_operator_message(caught.value, destination, config)

    @pytest.mark.parametrize("status", [403, 404])
    def test_forbidden_or_missing_is_not_retried(
        self, status: int, destination: Destination, config: dict[str, Any], options: dict[str, Any]
    ) -> None:
        """A 403 or 404 while writing is final: a fatal :class:`segport.SegportError` (auth, unknown audience,
        forbidden) or rejected records, never delivered nor retried, and no secret in what it says."""
        writer = self.writer(destination, config, options)
        records = [self.record(i, segments={self.segments[0]}) for i in range(2)]
        with _every_call_answers(status, {}):
            try:
                result = complete_batch(writer.write_batch(records))
            except RetryableDestinationError as exc:
                pytest.fail(f"a {status} became retryable ({exc}): retrying cannot help, raise a fatal error")
            except SegportError as exc:
                self._assert_operator_message(exc, destination, config)
                return
        outcomes = self.check_outcomes(records, result.outcomes)
        wrong = {k: o.status.value for k, o in outcomes.items() if o.status is not OutcomeStatus.REJECTED}
        assert not wrong, f"a {status} on every call left records {wrong}: raise a fatal error or reject them"
        secrets = self._secrets(destination, config)
        for outcome in outcomes.values():
            _assert_no_secret(outcome.reason or "", secrets, "a reject reason")

    def test_resending_a_batch_is_idempotent(
        self, destination: Destination, config: dict[str, Any], options: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """The same batch twice (an answer lost, the engine retries): same people, fields and markers."""
        records = [self.record(i, segments=set(self.segments[: 1 + i % 2])) for i in range(5)]
        writer = self.writer(destination, config, options)
        self.write(writer, records)
        first = _snapshot(platform)
        second = self.write(writer, records)
        again = {k: o for k, o in second.items() if not o.status.delivered}
        assert not again, f"resending a delivered batch was not delivered: {_first(again)}"
        assert _snapshot(platform) == first, "resending a delivered batch changed the platform: make writes upserts"

    def test_email_identity_is_case_insensitive(
        self, destination: Destination, config: dict[str, Any], options: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """A person stored as ``Grace.Hopper@Example.COM`` is the record ``grace.hopper@example.com``."""
        stored = "Grace.Hopper@Example.COM"
        platform.seed_member(stored, self.sample_fields(destination, "old"))
        record = Record(
            "grace",
            stored.lower(),
            self.sample_fields(destination, "new"),
            segments=frozenset({self.segments[0]}),
            add=frozenset({self.segments[0]}),
        )
        outcome = self.write(self.writer(destination, config, options), [record])["grace"]
        assert outcome.status.delivered, f"the record for an existing person was not delivered: {outcome}"
        same = [m for m in platform.members() if m.email.strip().lower() == record.email]
        assert len(same) == 1, (
            f"{len(same)} people at the platform for {record.email}: identify people by the normalised email "
            "(trimmed, lower-cased; hash it the way the platform does) so an existing person is updated"
        )
        self.assert_member(same[0], fields=record.fields, markers={self.segments[0]})

    def test_leaving_a_segment_removes_only_the_marker(
        self, destination: Destination, config: dict[str, Any], options: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """A person who leaves a segment loses its marker and keeps the rest: person, status, fields."""
        alpha, beta = self.segments
        both = frozenset(self.segments)
        leaver, stayer = self.record(0, segments=both), self.record(1, segments=both)
        writer = self.writer(destination, config, options)
        self.write(writer, [leaver, stayer])
        before = self.members_by_email(platform)
        leaving = Record(
            leaver.key,
            leaver.email,
            leaver.fields,
            frozenset({beta}),
            remove=frozenset({alpha}),
            upsert=False,
            new=False,
        )
        self.write(writer, [leaving])
        after = self.members_by_email(platform)
        self.assert_member(
            after[leaver.email], fields=leaver.fields, markers={beta}, status=before[leaver.email].status
        )
        self.assert_member(after[stayer.email], fields=stayer.fields, markers=set(both))
        gone = Record(
            leaver.key, leaver.email, leaver.fields, frozenset(), remove=frozenset({beta}), upsert=False, new=False
        )
        self.write(writer, [gone])
        final = self.members_by_email(platform)
        assert leaver.email in final, "a person who left every segment was deleted: remove only the markers"
        self.assert_member(final[leaver.email], fields=leaver.fields, markers=set(), status=before[leaver.email].status)

    def test_unknown_audience_is_reported(
        self, destination: Destination, config: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """``prepare`` with an audience/list that does not exist raises :class:`segport.UnknownAudienceError`."""
        unknown = platform.unknown_export_options()
        if unknown is None:
            pytest.skip("the double names no unknown audience/list (PlatformDouble.unknown_export_options)")
        options = validate(unknown, destination.spec().export_schema, "the double's unknown export options")
        with pytest.raises(UnknownAudienceError) as caught:
            self.writer(destination, config, options)
        self._assert_operator_message(caught.value, destination, config)

    def test_dry_run_prepare_sends_no_person(
        self, destination: Destination, config: dict[str, Any], options: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """``prepare`` in a dry run changes no person at the platform."""
        before = _snapshot(platform)
        self.writer(destination, config, options, dry_run=True)
        assert _snapshot(platform) == before

    # -- through the engine ---------------------------------------------------------------------------

    def test_export_runs_end_to_end(self, destination: Destination, platform: PlatformDouble, tmp_path: Path) -> None:
        """A workspace exports two segments, sends nothing the second time, then moves one marker."""
        from ..plugins import make_manager
        from ..workspace import Workspace

        alpha, beta = self.segments
        fields = self.sample_fields(destination, "e2e")
        mapping = {name: f"attr_{i}" for i, name in enumerate(fields)}
        rows = [
            {"id": f"p{i}", "email": f"kit.e2e.{i}@example.com", **{a: f"{fields[f]} {i}" for f, a in mapping.items()}}
            for i in range(6)
        ]
        rows[0]["email"] = "  Kit.E2E.Mixed@Example.COM "
        profiles = tmp_path / "profiles.csv"
        with profiles.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        for name, keys in ((alpha, "p0 p1 p2 p3"), (beta, "p2 p3 p4 p5")):
            (tmp_path / f"{name}.txt").write_text("\n".join(keys.split()) + "\n", encoding="utf-8")
        registry = Registry.from_plugins([type(destination)])
        ws = Workspace.create(
            tmp_path / "ws", "ada", registry=registry, pm=make_manager(autoload=False), retry=FAST_RETRY
        )
        try:
            ws.load_profiles(profiles)
            for name in self.segments:
                ws.load_segment(name, tmp_path / f"{name}.txt")
            ws.add_connection("kit", destination.name, platform.connection(), agree_privacy=True)
            ws.add_export(
                "kit-export",
                connection="kit",
                segments=list(self.segments),
                email_field="email",
                mapping=mapping,
                options=platform.export_options(),
            )
            first = ws.run_export("kit-export")
            assert first.status is RunStatus.SUCCEEDED, f"the first run ended {first.status.value}: {first.error}"
            emails = {f"kit.e2e.{i}@example.com" for i in range(1, 6)} | {"kit.e2e.mixed@example.com"}
            landed = self.members_by_email(platform)
            assert emails <= set(landed), f"not at the platform after a run: {sorted(emails - set(landed))}"
            self.assert_member(
                landed["kit.e2e.2@example.com"], fields={f: f"{v} 2" for f, v in fields.items()}, markers={alpha, beta}
            )
            self.assert_member(landed["kit.e2e.mixed@example.com"], markers={alpha})
            second = ws.run_export("kit-export")
            sent = {k: v for k, v in second.counts.items() if k != "unchanged" and v}
            assert second.status is RunStatus.SUCCEEDED and not sent, f"a run with no change sent {sent}"
            (tmp_path / f"{alpha}.txt").write_text("p1\np2\np3\n", encoding="utf-8")
            ws.load_segment(alpha, tmp_path / f"{alpha}.txt")
            third = ws.run_export("kit-export")
            assert third.status is RunStatus.SUCCEEDED, f"the third run ended {third.status.value}: {third.error}"
            self.assert_member(self.members_by_email(platform)["kit.e2e.mixed@example.com"], markers=set())
        finally:
            ws.close()

    # -- helpers for subclasses' own checks -----------------------------------------------------------

    def sample_fields(self, destination: Destination, tag: str = "kit") -> dict[str, str]:
        """Destination field -> value the records carry (``fields``, else one per known field)."""
        if self.fields is not None:
            return {name: f"{value} {tag}" for name, value in self.fields.items()}
        return {name: f"Kit {tag}" for name in list(destination.spec().fields.known)[:2]}

    def record(self, i: int, *, segments: set[str] | frozenset[str]) -> Record:
        """A new person ``kit.<i>@example.com`` entering ``segments``, with the sample fields numbered ``i``."""
        fields = {name: f"{value} {i}" for name, value in self._fields.items()}
        marks = frozenset(segments)
        return Record(f"k{i}", f"kit.{i}@example.com", fields, segments=marks, add=marks)

    def writer(
        self, destination: Destination, config: Mapping[str, Any], options: Mapping[str, Any], *, dry_run: bool = False
    ) -> BatchWriter:
        """A prepared writer on an authenticated session, as the engine builds one."""
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
        """The platform's people by normalised email; two people with one identity fail."""
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
        """The person holds ``fields`` (at least), exactly ``markers`` among the kit's segments, ``status``."""
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
        _assert_no_secret(text, secrets, f"a {type(exc).__name__}")
        _assert_no_secret(str(getattr(exc, "internal_message", "") or ""), secrets, "an internal_message")
        _assert_no_secret(repr(exc.__cause__ or exc.__context__ or ""), secrets, "an exception's cause")


class _every_call_answers:
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

    def __enter__(self) -> _every_call_answers:
        self.mock.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.mock.stop()
        self.mock.reset()


def _wrong_value(value: Any) -> Any:
    """A value of another JSON type than ``value``."""
    if isinstance(value, bool) or isinstance(value, str):
        return 12345
    if isinstance(value, (int, float)):
        return "not a number"
    return True


def _assert_no_secret(text: str, secrets: Sequence[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{where} holds a secret of the connection: never put credentials in messages"


def _snapshot(platform: PlatformDouble) -> list[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...], str]]:
    return sorted(
        (
            m.email.strip().lower(),
            tuple(sorted((k, repr(v)) for k, v in m.fields.items())),
            tuple(sorted(m.markers)),
            m.status,
        )
        for m in platform.members()
    )


def _first(outcomes: Mapping[str, Outcome]) -> str:
    key, outcome = next(iter(outcomes.items()))
    return f"{len(outcomes)} such, e.g. {key}: {outcome.status.value} ({outcome.reason})"
