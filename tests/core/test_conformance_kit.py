"""The conformance kit catches real mistakes: it passes the webhook example and fails six broken variants.

Each check runs the kit in a pytest subprocess (``pytester``) against ``examples/webhook``, loaded from
the source tree, not pip-installed: a throwaway ``segport_webhook-*.dist-info`` built from the example's
``pyproject.toml`` carries its entry point. The broken variants subclass the example's writer or auth
handler and override the kit's ``destination`` fixture, as a plugin author could by mistake:

1. the writer sends the email itself as ``id`` instead of its SHA-256 (identity is case-sensitive);
2. the writer reports every member delivered, ignoring the receiver's ``rejected`` results;
3. the auth handler logs the secret at DEBUG;
4. the writer counts its batches in an attribute (state shared by concurrent batches);
5. the writer skips the records of a batch it is asked to send again (a retry after a transient failure)
   and reports them delivered: only the fault checks of ``DestinationResilience`` see people go missing;
6. the writer acknowledges each batch at once and sends it from a background thread: the crash checks see
   a killed run that recorded, or answered, people the platform never received.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from segport.testing.metadata import install_metadata

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before 3.11
    import tomli as tomllib

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "webhook"
SUMMARY = re.compile(r"^(PASSED|FAILED|ERROR) [^:]+::(Test\w+)::(test_.+?)(?: - .*)?$")

VARIANTS = '''
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, ClassVar, Mapping, Sequence

import pytest
import requests

from segport import (
    AuthHandler, BatchResult, BatchWriter, Destination, Learned, Outcome, OutcomeStatus, Record, RunContext,
)
from segport.testing import DestinationConformance, DestinationResilience
from segport_webhook import WebhookDestination
from segport_webhook.auth import WebhookAuth
from segport_webhook.writer import WebhookWriter


class UnhashedWriter(WebhookWriter):
    def member(self, record: Record) -> dict[str, Any]:
        return {**super().member(record), "id": record.email}


class BlindWriter(WebhookWriter):
    def outcome(self, record: Record, result: Mapping[str, Any] | None) -> Outcome:
        return Outcome(record.key, OutcomeStatus.UPDATED)


class CountingWriter(WebhookWriter):
    written = 0

    def write_batch(self, records: Any) -> Any:
        self.written += 1
        return super().write_batch(records)


class ForgetfulWriter(WebhookWriter):
    """Sends each record once per writer: a batch tried again after a failure is 'already sent'."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.tried: Learned[str, bool] = Learned()  # shared by concurrent batches the way the contract allows

    def write_batch(self, records: Sequence[Record]) -> BatchResult:
        fresh = [r for r in records if self.tried.get(repr(r)) is None]
        for record in records:
            self.tried.learn(repr(record), True)
        done = {o.key: o for o in super().write_batch(fresh).outcomes} if fresh else {}
        return BatchResult([done.get(r.key, Outcome(r.key, OutcomeStatus.UPDATED)) for r in records])


class HastyWriter(WebhookWriter):
    """Acknowledges a batch at once; a background thread sends it (finish() waits for the queue)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.queue: queue.Queue[list[Record]] = queue.Queue()
        threading.Thread(target=self.send_queued, daemon=True).start()

    def write_batch(self, records: Sequence[Record]) -> BatchResult:
        self.queue.put(list(records))
        return BatchResult([Outcome(r.key, OutcomeStatus.CREATED) for r in records])

    def send_queued(self) -> None:
        while True:
            records = self.queue.get()
            time.sleep(0.2)
            super().write_batch(records)
            self.queue.task_done()

    def finish(self) -> None:
        self.queue.join()


class LeakyAuth(WebhookAuth):
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        logging.getLogger(__name__).debug("signing with %s", self.config["secret"])
        return super().__call__(request)


class Unhashed(WebhookDestination):
    def writer(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> BatchWriter:
        return UnhashedWriter(session, config, context)


class Blind(WebhookDestination):
    def writer(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> BatchWriter:
        return BlindWriter(session, config, context)


class Counting(WebhookDestination):
    def writer(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> BatchWriter:
        return CountingWriter(session, config, context)


class Forgetful(WebhookDestination):
    def writer(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> BatchWriter:
        return ForgetfulWriter(session, config, context)


class Hasty(WebhookDestination):
    def writer(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> BatchWriter:
        return HastyWriter(session, config, context)


class Leaky(WebhookDestination):
    def auth(self, config: Mapping[str, Any]) -> AuthHandler:
        return LeakyAuth(config)


class Broken(DestinationConformance):
    """The kit with the destination fixture overridden to return a broken variant."""

    entry_point = "webhook"
    variant: ClassVar[type[Destination]]

    @pytest.fixture
    def destination(self) -> Destination:
        return self.variant()


class TestExample(DestinationConformance):
    entry_point = "webhook"


class TestUnhashedEmail(Broken):
    variant = Unhashed


class TestIgnoredRejects(Broken):
    variant = Blind


class TestSecretLogged(Broken):
    variant = Leaky


class TestSharedState(Broken):
    variant = Counting


class BrokenUnderStress(DestinationResilience):
    """The crash and fault checks with the destination fixture overridden."""

    entry_point = "webhook"
    variant: ClassVar[type[Destination]]
    status_of_a_resend = OutcomeStatus.UNCHANGED

    @pytest.fixture
    def destination(self) -> Destination:
        return self.variant()


class TestForgetfulContract(Broken):
    variant = Forgetful


class TestForgetfulUnderFaults(BrokenUnderStress):
    variant = Forgetful


class TestHastyCrashed(BrokenUnderStress):
    variant = Hasty
'''


@pytest.fixture
def kit(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester folder holding the variants, with the example (and its entry point) importable."""
    site = pytester.mkdir("site")
    install_metadata(site, tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(EXAMPLE)]))
    pytester.makeini("[pytest]\naddopts = --import-mode=importlib -p no:cacheprovider\nfilterwarnings = error\n")
    pytester.makepyfile(test_variants=VARIANTS)
    return pytester


def run(kit: pytest.Pytester, cls: str, *options: str) -> tuple[pytest.RunResult, dict[str, set[str]]]:
    """Run the kit for one class; the checks by outcome (``PASSED``/``FAILED``/``ERROR``) from ``-rA``."""
    result = kit.runpytest_subprocess(f"test_variants.py::{cls}", "-rA", *options, timeout=300)
    checks: dict[str, set[str]] = {"PASSED": set(), "FAILED": set(), "ERROR": set()}
    for line in result.outlines:
        found = SUMMARY.match(line)
        if found and found.group(2) == cls:
            checks[found.group(1)].add(found.group(3))
    return result, checks


def test_the_example_passes_every_check(kit: pytest.Pytester) -> None:
    result, checks = run(kit, "TestExample")
    assert result.ret == 0, result.stdout.str()
    outcomes = result.parseoutcomes()
    assert set(outcomes) == {"passed"} and outcomes["passed"] == len(checks["PASSED"]) >= 20, outcomes
    assert {"test_email_identity_is_case_insensitive", "test_per_record_errors_become_rejects"} <= checks["PASSED"]


def test_an_unhashed_email_breaks_identity(kit: pytest.Pytester) -> None:
    result, checks = run(kit, "TestUnhashedEmail")
    assert checks["FAILED"] == {"test_email_identity_is_case_insensitive"}, result.stdout.str()
    assert not checks["ERROR"]
    result.assert_outcomes(passed=len(checks["PASSED"]), failed=1)
    result.stdout.fnmatch_lines(["*2 people at the platform for grace.hopper@segport-test.net*"])


def test_ignored_per_record_errors_are_caught(kit: pytest.Pytester) -> None:
    result, checks = run(kit, "TestIgnoredRejects")
    assert checks["FAILED"] == {"test_per_record_errors_become_rejects"}, result.stdout.str()
    assert not checks["ERROR"]
    result.assert_outcomes(passed=len(checks["PASSED"]), failed=1)
    result.stdout.fnmatch_lines(["*the platform refused kit.1@segport-test.net inside its answer*updated*"])


def test_a_secret_in_a_log_line_is_caught(kit: pytest.Pytester) -> None:
    result, checks = run(kit, "TestSecretLogged")
    assert not checks["FAILED"], result.stdout.str()
    signing = {
        "test_auth_sets_credentials",
        "test_auth_check_accepts_valid_credentials",
        "test_writer_returns_one_outcome_per_record",
        "test_per_record_errors_become_rejects",
        "test_unknown_audience_is_reported",
    }
    assert signing <= checks["ERROR"], result.stdout.str()
    # every check passes its own assertions; each that signed a request errors at teardown, in the log check
    result.assert_outcomes(passed=len(checks["PASSED"]), errors=len(checks["ERROR"]))
    teardowns = [line for line in result.outlines if line.startswith("_") and "ERROR at teardown of" in line]
    assert len(teardowns) == len(checks["ERROR"]), result.stdout.str()
    leaks = [line for line in result.outlines if "a secret of the connection appears in a log line" in line]
    assert len(leaks) >= len(checks["ERROR"]), result.stdout.str()


def test_state_shared_by_concurrent_batches_is_caught(kit: pytest.Pytester) -> None:
    result, checks = run(kit, "TestSharedState")
    assert checks["FAILED"] == {"test_concurrent_batches_share_no_state"}, result.stdout.str()
    assert not checks["ERROR"]
    result.assert_outcomes(passed=len(checks["PASSED"]), failed=1)
    result.stdout.fnmatch_lines(["*write_batch changed the writer's written while batches ran at once*"])


def test_a_writer_losing_retried_records_passes_the_contract_but_not_the_fault_checks(kit: pytest.Pytester) -> None:
    result, checks = run(kit, "TestForgetfulContract")
    assert result.ret == 0, result.stdout.str()  # the contract checks send nothing twice after a failure
    assert "test_resending_a_batch_is_idempotent" in checks["PASSED"]

    result, checks = run(kit, "TestForgetfulUnderFaults")
    # A retry after an applied call (reset-applied, cut, timeout) loses nothing; after any other fault it does.
    caught = {"test_many_batches_land_exactly_under_mixed_faults", "test_each_fault_kind_on_a_write_is_retried"}
    assert checks["FAILED"] == caught, result.stdout.str()
    assert not checks["ERROR"] and "test_a_killed_run_resumes_exactly[2]" in checks["PASSED"]
    result.assert_outcomes(passed=len(checks["PASSED"]), failed=len(caught))
    result.stdout.fnmatch_lines(["*missing at the platform: *"])


def test_a_writer_acknowledging_before_sending_fails_the_crash_checks(kit: pytest.Pytester) -> None:
    result, checks = run(kit, "TestHastyCrashed", "-k", "killed_run")
    killed = {f"test_a_killed_run_resumes_exactly[{seed}]" for seed in (2, 5, 6)}
    assert checks["FAILED"] == killed, result.stdout.str()
    result.assert_outcomes(failed=len(killed))
    said = ("but the platform does not hold them", "recorded as delivered are not at the platform")
    lines = [line for line in result.outlines if line.startswith("E ") and any(words in line for words in said)]
    assert len(lines) >= len(killed), result.stdout.str()
