"""The writer checks of the kit: outcomes, errors, idempotence, identity, markers, a run (:class:`WriterChecks`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pytest
import requests

from ..config import validate
from ..contract import Destination, OutcomeStatus, Record
from ..errors import AuthError, RetryableDestinationError, SegportError, UnknownAudienceError
from ..http import TRANSPORT_ERRORS
from ..models import RunStatus
from ..pending import complete_batch
from ..pipeline.dispatcher import RetryPolicy
from ..registry import Registry
from .double import PlatformDouble
from .files import write_keys, write_rows
from .kit import DestinationKit, assert_no_secret, every_call_answers, first_of, snapshot

__all__ = ["WriterChecks"]

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


class WriterChecks(DestinationKit):
    """Check the batch writer against the double, then one export through the engine.

    Part of :class:`~segport.testing.DestinationConformance`.
    """

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
        assert not undelivered, f"records of a valid batch were not delivered: {first_of(undelivered)}"
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
        """Check that 429, 5xx and transport failures are reported as retryable.

        The batch raises :class:`RetryableDestinationError` (carrying the platform's Retry-After), lets a
        transport error of ``requests`` propagate, or makes every outcome retryable.
        """
        _, answer, headers = fault
        writer = self.writer(destination, config, options)
        records = [self.record(i, segments={self.segments[0]}) for i in range(3)]
        with every_call_answers(answer, headers):
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
        with every_call_answers(401, {}), pytest.raises(AuthError) as caught:
            complete_batch(writer.write_batch([self.record(0, segments={self.segments[0]})]))
        self._assert_operator_message(caught.value, destination, config)

    @pytest.mark.parametrize("status", [403, 404])
    def test_forbidden_or_missing_is_not_retried(
        self, status: int, destination: Destination, config: dict[str, Any], options: dict[str, Any]
    ) -> None:
        """Check that a 403 or 404 while writing is final, never delivered nor retried.

        It is a fatal :class:`segport.SegportError` (auth, unknown audience, forbidden) or rejected
        records, and no secret is in what it says.
        """
        writer = self.writer(destination, config, options)
        records = [self.record(i, segments={self.segments[0]}) for i in range(2)]
        with every_call_answers(status, {}):
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
            assert_no_secret(outcome.reason or "", secrets, "a reject reason")

    def test_resending_a_batch_is_idempotent(
        self, destination: Destination, config: dict[str, Any], options: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """The same batch twice (an answer lost, the engine retries): same people, fields and markers."""
        records = [self.record(i, segments=set(self.segments[: 1 + i % 2])) for i in range(5)]
        writer = self.writer(destination, config, options)
        self.write(writer, records)
        first = snapshot(platform)
        second = self.write(writer, records)
        again = {k: o for k, o in second.items() if not o.status.delivered}
        assert not again, f"resending a delivered batch was not delivered: {first_of(again)}"
        assert snapshot(platform) == first, "resending a delivered batch changed the platform: make writes upserts"

    def test_email_identity_is_case_insensitive(
        self, destination: Destination, config: dict[str, Any], options: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """A person stored as ``Grace.Hopper@Segport-Test.NET`` is the record ``grace.hopper@segport-test.net``."""
        stored = "Grace.Hopper@Segport-Test.NET"
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

    @staticmethod
    def _unknown_audience_options(destination: Destination, platform: PlatformDouble) -> dict[str, Any]:
        """Return the double's export options naming an unknown audience/list, validated; skip without them."""
        unknown = platform.unknown_export_options()
        if unknown is None:
            pytest.skip("the double names no unknown audience/list (PlatformDouble.unknown_export_options)")
        return validate(unknown, destination.spec().export_schema, "the double's unknown export options")

    def test_unknown_audience_is_reported(
        self, destination: Destination, config: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """``prepare`` with an audience/list that does not exist raises :class:`segport.UnknownAudienceError`."""
        options = self._unknown_audience_options(destination, platform)
        with pytest.raises(UnknownAudienceError) as caught:
            self.writer(destination, config, options)
        self._assert_operator_message(caught.value, destination, config)

    def test_dry_run_prepare_refuses_an_unknown_audience_too(
        self, destination: Destination, config: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """``prepare`` in a dry run makes the run's checks: an unknown audience/list fails it with the run's error."""
        options = self._unknown_audience_options(destination, platform)
        with pytest.raises(UnknownAudienceError) as real:
            self.writer(destination, config, options)
        with pytest.raises(UnknownAudienceError) as dry:
            self.writer(destination, config, options, dry_run=True)
        assert str(dry.value) == str(real.value), (
            "a dry run's prepare() must fail as the run's does (the same checks, the same error): "
            f"{str(dry.value)!r} vs {str(real.value)!r}"
        )

    def test_dry_run_prepare_sends_no_person(
        self, destination: Destination, config: dict[str, Any], options: dict[str, Any], platform: PlatformDouble
    ) -> None:
        """``prepare`` in a dry run changes no person at the platform."""
        before = snapshot(platform)
        self.writer(destination, config, options, dry_run=True)
        assert snapshot(platform) == before

    # -- through the engine ---------------------------------------------------------------------------

    def test_export_runs_end_to_end(self, destination: Destination, platform: PlatformDouble, tmp_path: Path) -> None:
        """A workspace exports two segments, sends nothing the second time, then moves one marker."""
        from ..plugins import make_manager
        from ..workspace import Workspace

        alpha, beta = self.segments
        fields = self.sample_fields(destination, "e2e")
        mapping = {name: f"attr_{i}" for i, name in enumerate(fields)}
        rows = [
            {
                "id": f"p{i}",
                "email": f"kit.e2e.{i}@segport-test.net",
                **{a: f"{fields[f]} {i}" for f, a in mapping.items()},
            }
            for i in range(6)
        ]
        rows[0]["email"] = "  Kit.E2E.Mixed@Segport-Test.NET "
        profiles = write_rows(tmp_path / "profiles.csv", list(rows[0]), [list(row.values()) for row in rows])
        for name, keys in ((alpha, "p0 p1 p2 p3"), (beta, "p2 p3 p4 p5")):
            write_keys(tmp_path / f"{name}.txt", keys.split())
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
            emails = {f"kit.e2e.{i}@segport-test.net" for i in range(1, 6)} | {"kit.e2e.mixed@segport-test.net"}
            landed = self.members_by_email(platform)
            assert emails <= set(landed), f"not at the platform after a run: {sorted(emails - set(landed))}"
            self.assert_member(
                landed["kit.e2e.2@segport-test.net"],
                fields={f: f"{v} 2" for f, v in fields.items()},
                markers={alpha, beta},
            )
            self.assert_member(landed["kit.e2e.mixed@segport-test.net"], markers={alpha})
            second = ws.run_export("kit-export")
            sent = {k: v for k, v in second.counts.items() if k != "unchanged" and v}
            assert second.status is RunStatus.SUCCEEDED and not sent, f"a run with no change sent {sent}"
            write_keys(tmp_path / f"{alpha}.txt", ["p1", "p2", "p3"])
            ws.load_segment(alpha, tmp_path / f"{alpha}.txt")
            third = ws.run_export("kit-export")
            assert third.status is RunStatus.SUCCEEDED, f"the third run ended {third.status.value}: {third.error}"
            self.assert_member(self.members_by_email(platform)["kit.e2e.mixed@segport-test.net"], markers=set())
        finally:
            ws.close()
