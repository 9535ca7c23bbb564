"""Crashes and injected faults, as pytest tests: :class:`DestinationResilience`, the kit's slower half.

Subclass it like :class:`~segport.testing.DestinationConformance` (the same fixtures and class
attributes)::

    from segport.testing import DestinationResilience

    class TestResilience(DestinationResilience):
        entry_point = "webhook"

Every check exports thousands of kit people through the engine to the double, kills or breaks the run,
or makes the double fail calls, then reads what landed from the double (never from segport's records)
and runs again. The crash checks need only a :class:`~segport.testing.double.PlatformDouble`; the fault
checks also steer its :class:`~segport.testing.double.FaultControl` (every sandbox built on the sandbox
kit has one) and are skipped without it.
"""

from __future__ import annotations

import random
import signal
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Mapping

import pytest

from ..contract import Destination, OutcomeStatus
from ..errors import AuthError, SegportError
from ..models import Run, RunStatus
from ..sandboxing import FAULT_KINDS
from .double import FaultControl, PlatformDouble, PlatformMember
from .kit import DestinationKit, assert_no_secret
from .kit_export import ChildRun, KitExport, KitPerson, WriteWatch, kit_people, settle

__all__ = ["DestinationResilience"]

# Each seed picks where a run dies (a write answered, or a batch committed: early, middle, late) and a latency.
CRASH_SEEDS = (2, 5, 6)
RUN_BATCH = 500  # at most this many records per batch in the crash checks
FAULT_PEOPLE, FAULT_BATCH = 12_000, 100  # the mixed-fault run: 120 batches at least
FAIL_RATE, MEMBER_FAIL_RATE = 0.05, 0.005
# A read timeout well above any honest answer on a loaded machine (a spurious timeout would be a retry no
# fault explains), and the hold of a ``timeout`` fault past it.
TIMEOUT_S, HOLD_S = 4.0, 5.0
RETRY_AFTER_S = 2
APPLIED = ("reset-applied", "cut", "timeout")  # the platform applied the call though the client saw it fail
HARMLESS = ("slow", "member")  # faults that fail no attempt


class DestinationResilience(DestinationKit):
    """Subclass with ``entry_point`` set; pytest collects every crash and fault check below.

    :cvar status_of_a_resend: what the writer reports for a person sent again whom the platform already
        holds exactly (after a crash, or a retried call the platform had applied); None: any delivered status.
    :cvar status_of_a_new_person: the double's status of a person an export created (e.g. ``subscribed``);
        None: any, the same for everyone.
    :cvar refusal_reason: words the reject reason holds for a person the double refuses (its
        ``member_fail_rate``); None: any reason.
    :cvar breakages: ways the platform breaks mid-run -> the error the run must end with and words its
        message must hold; :meth:`break_platform` carries them out.
    """

    status_of_a_resend: ClassVar[OutcomeStatus | None] = None
    status_of_a_new_person: ClassVar[str | None] = None
    refusal_reason: ClassVar[str | None] = None
    breakages: ClassVar[Mapping[str, tuple[type[SegportError], tuple[str, ...]]]] = {
        "credentials revoked": (AuthError, ()),
    }

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """One run-level failure check per entry of ``breakages``."""
        if "breakage" in metafunc.fixturenames:
            metafunc.parametrize("breakage", list(self.breakages))

    # -- fixtures ---------------------------------------------------------------------------------------

    @pytest.fixture
    def control(self, platform: PlatformDouble) -> FaultControl:
        """Return the double's fault injection; the check is skipped when it has none."""
        found = platform.fault_control()
        if found is None:
            pytest.skip("the double has no fault injection (PlatformDouble.fault_control): build it on the sandbox kit")
        return found

    @pytest.fixture
    def kit_export(
        self, destination: Destination, platform: PlatformDouble, tmp_path: Path
    ) -> Iterator[Callable[..., KitExport]]:
        """Yield ``kit_export(count, batch=None, config={})``, which makes a workspace exporting to the double.

        It exports ``count`` kit people (``batch`` records per batch at most; ``config`` over the double's
        connection); the workspaces are closed after the test.
        """
        made: list[KitExport] = []

        def make(count: int, *, batch: int | None = None, config: Mapping[str, Any] | None = None) -> KitExport:
            people = kit_people(count, self._fields, self.segments)
            home = tmp_path / f"ws{len(made)}"
            home.mkdir()
            made.append(KitExport(destination, platform, home, people, self.segments, config or {}, batch))
            return made[-1]

        yield make
        for export in made:
            export.close()

    # -- crashes ----------------------------------------------------------------------------------------

    @pytest.mark.parametrize("seed", CRASH_SEEDS)
    def test_a_killed_run_resumes_exactly(
        self, seed: int, destination: Destination, platform: PlatformDouble, kit_export: Callable[..., KitExport]
    ) -> None:
        """Check that a run killed at a seeded point is resumed exactly by the next run.

        SIGKILL at a seeded point (a write answered, or a batch committed): the run shows ``interrupted``,
        nothing is recorded that the platform does not hold; the next run sends only what was not recorded,
        at most ``max_concurrency`` batches twice, and the platform ends exact.
        """
        batch, batches = self._crash_size(destination)
        export = kit_export(batches * batch, batch=batch)
        rng = random.Random(seed)
        point = f"{rng.choice(['answer', 'commit'])}:{rng.randint(1, batches)}"
        control = platform.fault_control()
        if control is not None:
            control.set_faults(latency_ms=rng.choice([0, 20, 50]))
        child = export.run_in_child(point)
        self._assert_killed(child, point, destination, platform)
        settle(platform)
        if control is not None:
            control.set_faults(latency_ms=0)
        at_kill = self.landed(export)
        sent = child.sent()
        assert not set(at_kill) - set(sent), "the platform holds people no write_batch carried"
        unlanded = sorted(child.delivered() - set(at_kill))
        assert not unlanded, f"write_batch reported {unlanded[:3]} delivered but the platform does not hold them"
        assert max(sent.values()) == 1, "a record was handed to write_batch twice in one run without any failure"
        committed = self._recorded(export, RunStatus.INTERRUPTED, set(at_kill))
        self._resumes_exactly(export, set(at_kill), committed)

    def test_stalled_commits_stop_the_sends_at_the_window(
        self, destination: Destination, platform: PlatformDouble, kit_export: Callable[..., KitExport]
    ) -> None:
        """Check that stalled commits stop the sends at the dispatcher's window.

        Commits stop after the first batch (as behind a locked database): at most ``max_concurrency`` more
        batches are sent, all of them land; killed then, the next run ends exact.
        """
        limits = destination.spec().limits
        batch, batches = self._crash_size(destination)
        export = kit_export(batches * batch, batch=batch)

        def stalled(run: ChildRun) -> bool:  # commits stopped, and every write that started was answered
            answers = sum(e["event"] == "answer" for e in run.events)
            return any(e["event"] == "stall" for e in run.events) and answers == run.writes()

        child = export.run_in_child("stall:1", kill_when=stalled)
        self._assert_killed(child, "a stall after the first commit", destination, platform)
        settle(platform)
        at_kill = set(self.landed(export))
        assert child.writes() <= 1 + limits.max_concurrency, (
            f"{child.writes()} batches were sent while commits stalled after the first: at most "
            f"{limits.max_concurrency} may wait for their commit (the dispatcher's window)"
        )
        assert at_kill == set(child.sent()), "what was sent while commits stalled is not what landed"
        assert 0 < len(at_kill) < len(export.people)
        committed = self._recorded(export, RunStatus.INTERRUPTED, at_kill)
        self._resumes_exactly(export, at_kill, committed)

    def test_a_run_broken_mid_run_stops_cleanly_and_the_next_run_continues(
        self, breakage: str, destination: Destination, platform: PlatformDouble, kit_export: Callable[..., KitExport]
    ) -> None:
        """Check that a run whose platform breaks mid-run stops cleanly and the next run continues.

        The platform breaks (see ``breakages``) when the third write arrives, the two before it answered:
        the run fails with the breakage's one-line error, exactly those two batches landed and are recorded;
        mended, the next run sends the rest and the platform ends exact.
        """
        error, words = self.breakages[breakage]
        batch = min(destination.spec().limits.batch_size, RUN_BATCH)
        export = kit_export(5 * batch, batch=batch)
        watch, mends = WriteWatch(), list[Callable[[], None]]()
        watch.act_at, watch.action = 3, lambda: mends.append(self.break_platform(platform, breakage))
        with pytest.raises(error) as caught:
            export.run(watch)
        self._assert_operator_message(caught.value, destination, platform.connection())
        missing = [word for word in words if word not in str(caught.value)]
        assert not missing, f"the error of a run whose platform broke ({breakage}) lacks {missing}: {caught.value}"
        settle(platform)
        landed = set(self.landed(export))
        assert len(landed) == 2 * batch, (
            f"{len(landed)} people landed; the two writes before the breakage carry {2 * batch}"
        )
        recorded = self._recorded(export, RunStatus.FAILED, landed)
        assert recorded == landed, "a run that failed did not record exactly what the platform acknowledged"
        for mend in mends:
            mend()
        self._resumes_exactly(export, landed, recorded)

    # -- injected faults --------------------------------------------------------------------------------

    def test_many_batches_land_exactly_under_mixed_faults(
        self, destination: Destination, control: FaultControl, kit_export: Callable[..., KitExport]
    ) -> None:
        """Check that many batches land exactly under mixed injected faults.

        12,000 people in batches of at most 100, 5 % of the calls failing (every kind alike) and 0.5 % of
        the people refused: exactly the others land, each record has one final outcome, the refused are
        rejected with a reason, the retries are in the run record; the next run sends exactly the refused,
        the one after that nothing but reads.
        """
        export = kit_export(FAULT_PEOPLE, batch=FAULT_BATCH, config=self._short_timeout(destination))
        kinds = self.fault_kinds(control)
        control.set_faults(
            fail_rate=FAIL_RATE, kinds=kinds, hold_s=HOLD_S, slow_ms=200, member_fail_rate=MEMBER_FAIL_RATE
        )
        refused = {p.key for p in export.people if control.member_fault(p.email)}
        run = export.run()
        assert control.wait_idle(30), "the double still works on calls of a finished run"
        faults = control.fault_counts()
        control.set_faults(fail_rate=0.0, member_fail_rate=0.0)
        assert run.status is RunStatus.SUCCEEDED, f"the run ended {run.status.value}: {run.error}"
        self.assert_exact(export, [p for p in export.people if p.key not in refused])
        rows = export.outcomes(run)
        assert [row[0] for row in rows] == sorted(p.key for p in export.people), "not one outcome per record"
        rejected = {row[0]: row[3] or "" for row in rows if row[2] == OutcomeStatus.REJECTED.value}
        assert set(rejected) == refused, "the people the double refused are not exactly the rejected ones"
        vague = sorted(r for r in rejected.values() if not r or (self.refusal_reason or "") not in r)
        assert not vague, f"a refused person was rejected without the reason {self.refusal_reason!r}: {vague[:1]}"
        final = {row[2] for row in rows} - self._statuses_of_a_resend() - {"created", "rejected"}
        assert not final, f"new people ended {sorted(final)} under transient faults"
        assert run.counts.get("rejected") == len(refused) > 0 and not run.counts.get("failed")
        failing = sum(n for kind, n in faults.items() if kind not in HARMLESS)
        assert faults.get("member", 0) >= len(refused) and len(set(faults) - {"member"}) >= 3, faults
        assert 1 <= run.retries <= failing, f"{run.retries} retries in the run record for {failing} failed calls"

        second = export.run()  # without faults: exactly the refused people are sent, and land
        assert set(export.watch.sent) == refused and [row[0] for row in export.outcomes(second)] == sorted(refused)
        assert second.counts.get("created") == len(refused)
        assert second.counts.get("unchanged") == len(export.people) - len(refused)
        self.assert_exact(export)
        seen = len(control.requests_log)
        third = export.run()  # nothing left to send
        assert not export.watch.sent and third.counts.get("unchanged") == len(export.people) and third.retries == 0
        writes = sorted({method for method, _ in control.requests_log[seen:]} - {"GET"})
        assert not writes, f"a run with nothing to send made {writes} calls: only the pre-flight may read"

    def test_each_fault_kind_on_a_write_is_retried(
        self, destination: Destination, control: FaultControl, kit_export: Callable[..., KitExport]
    ) -> None:
        """Check that each fault kind on a write is retried.

        One fault of each kind on the first write of a fresh platform: one retry (none for ``slow``; a
        ``timeout`` is one only if the spec lets the kit shorten the read timeout, ``timeout_s``), the
        platform exact, new people ``created`` unless the failed call was applied, ``Retry-After`` waited.
        """
        short = self._short_timeout(destination)
        export = kit_export(FAULT_BATCH + FAULT_BATCH // 5, batch=FAULT_BATCH, config=short)
        for kind in self.fault_kinds(control):
            control.reset()
            export.name = export.add_export()
            control.set_faults(kinds=[kind], hold_s=HOLD_S, slow_ms=200, retry_after_s=RETRY_AFTER_S)
            watch = WriteWatch()
            watch.act_at, watch.action = 1, lambda: control.set_faults(fail_next=1)
            run = export.run(watch)
            assert control.wait_idle(30)
            assert run.status is RunStatus.SUCCEEDED and control.fault_counts() == {kind: 1}, (kind, run.error)
            retries = {"slow": (0,), "timeout": (1,) if short else (0, 1)}.get(kind, (1,))
            assert run.retries in retries, f"one {kind} fault on a write cost {run.retries} retries, expected {retries}"
            self.assert_exact(export)
            self._check_resend_statuses(export, run, kind)
            if kind == "429-retry-after":
                assert (run.duration_s or 0) >= RETRY_AFTER_S, "a Retry-After of the platform was not waited"

    @pytest.mark.parametrize(
        ("calls", "kinds"),
        [("^GET ", ("429", "503", "reset")), ("^(POST|PUT|PATCH) ", ("reset-applied",))],
        ids=["reads", "creates-applied-unanswered"],
    )
    def test_preflight_survives_transient_faults(
        self, calls: str, kinds: tuple[str, ...], control: FaultControl, kit_export: Callable[..., KitExport]
    ) -> None:
        """Check that the pre-flight survives transient faults.

        Faults on the first reads, or the first creates applied but unanswered (the pre-flight's markers
        and fields, or the first write) are retried; what landed unanswered is found rather than made twice.
        """
        export = kit_export(2 * FAULT_BATCH, batch=FAULT_BATCH)
        usable = [kind for kind in kinds if kind in self.fault_kinds(control)]
        control.set_faults(kinds=usable, fail_next=len(usable) + 1, fault_filter=calls)
        run = export.run()
        assert control.wait_idle(30)
        assert run.status is RunStatus.SUCCEEDED and sum(control.fault_counts().values()) == len(usable) + 1
        assert run.retries >= 1
        self.assert_exact(export)

    # -- hooks and helpers --------------------------------------------------------------------------------

    def break_platform(self, platform: PlatformDouble, breakage: str) -> Callable[[], None]:
        """Break the platform as ``breakage`` says and return what mends it.

        Default: ``credentials revoked``, by the double's :class:`FaultControl`; override it for the entries
        you add to ``breakages``.
        """
        control = platform.fault_control()
        if breakage != "credentials revoked" or control is None:
            pytest.fail(f"{type(self).__name__}: override break_platform() for {breakage!r}")
        control.revoke_key()

        def mend() -> None:
            control.revoked = False

        return mend

    def fault_kinds(self, control: FaultControl) -> list[str]:
        """Every fault kind the double injects: its status codes, then the connection-level kinds."""
        return [*map(str, control.fault_codes), *FAULT_KINDS]

    def landed(self, export: KitExport) -> dict[str, PlatformMember]:
        """Return the kit people at the platform, by profile key; anyone else there fails."""
        keys = {p.email: p.key for p in export.people}
        found = self.members_by_email(export.platform)
        strangers = sorted(set(found) - set(keys))
        assert not strangers, f"the platform holds people the export never had: {strangers[:3]}"
        return {keys[email]: member for email, member in found.items()}

    def assert_exact(self, export: KitExport, people: list[KitPerson] | None = None) -> None:
        """Assert the platform holds exactly ``people`` (default: all the export's).

        Each is held with its fields and markers, all in the status of a new person.
        """
        expected = export.people if people is None else people
        landed = self.landed(export)
        missing = sorted({p.key for p in expected} - set(landed))
        extra = sorted(set(landed) - {p.key for p in expected})
        assert not missing and not extra, f"missing at the platform: {missing[:3]}; not expected there: {extra[:3]}"
        for person in expected:
            self.assert_member(landed[person.key], fields=person.fields, markers=person.markers)
        statuses = {m.status for m in landed.values()}
        wanted = {self.status_of_a_new_person} if self.status_of_a_new_person else statuses
        assert statuses == wanted and len(statuses) <= 1, f"new people in statuses {sorted(statuses)}"

    def _resumes_exactly(self, export: KitExport, landed: set[str], recorded: set[str]) -> None:
        """Assert the next run sends exactly what was not recorded, each once, and lands exactly.

        What was sent twice (landed, not recorded) is at most the window; the run after it sends nothing.
        """
        everyone = {p.key for p in export.people}
        run = export.run()
        assert run.status is RunStatus.SUCCEEDED, f"the next run ended {run.status.value}: {run.error}"
        self.assert_exact(export)
        sent = export.watch.sent
        assert set(sent) == everyone - recorded, "the next run did not send exactly what was not recorded"
        assert max(sent.values(), default=1) == 1, "the next run sent a record twice"
        twice = landed - recorded
        window = export.destination.spec().limits.max_concurrency * export.batch
        assert len(twice) <= window, f"{len(twice)} records sent twice: more than max_concurrency batches ({window})"
        statuses = {row[0]: row[2] for row in export.outcomes(run)}
        not_new = sorted(k for k in sent if k not in twice and statuses[k] != OutcomeStatus.CREATED.value)
        assert not not_new, f"people the platform did not hold were reported {statuses[not_new[0]]}, not created"
        self._check_resends(statuses, twice)
        unchanged = len(recorded) + sum(status == OutcomeStatus.UNCHANGED.value for status in statuses.values())
        assert run.counts.get("unchanged", 0) == unchanged, "the records not sent again are not counted unchanged"
        last = export.run()
        assert not export.watch.sent and last.counts.get("unchanged") == len(everyone), "a third run sent again"

    def _check_resend_statuses(self, export: KitExport, run: Run, kind: str) -> None:
        """Check the run's outcome statuses after one fault of ``kind``.

        Everyone is ``created``, except after an applied call the people it carried, who were sent again
        (each sent batch whole, or nobody, when a held call applies after its retry).
        """
        statuses = {row[0]: row[2] for row in export.outcomes(run)}
        again = {k for k, s in statuses.items() if s != OutcomeStatus.CREATED.value}
        if kind not in APPLIED:
            assert not again, f"after a {kind} fault (nothing applied) {len(again)} new people were not 'created'"
            return
        self._check_resends(statuses, again)
        resend = self.status_of_a_resend
        if resend is not None and resend is not OutcomeStatus.CREATED and kind != "timeout":
            sizes = {export.batch, len(export.people) - export.batch}
            assert len(again) in sizes, (
                f"after a {kind} fault {len(again)} people were {resend.value}: a batch is {sizes}"
            )

    def _statuses_of_a_resend(self) -> set[str]:
        """Return what a person sent again may be reported: ``status_of_a_resend``, else any delivered status."""
        if self.status_of_a_resend is not None:
            return {self.status_of_a_resend.value}
        return {s.value for s in OutcomeStatus if s.delivered}

    def _check_resends(self, statuses: Mapping[str, str], again: set[str]) -> None:
        wanted = self._statuses_of_a_resend()
        wrong = sorted(k for k in again if statuses[k] not in wanted)
        assert not wrong, f"people sent again were reported {statuses[wrong[0]]}, expected one of {sorted(wanted)}"

    def _recorded(self, export: KitExport, status: RunStatus, landed: set[str]) -> set[str]:
        """Check the broken run's record (``status``, counts, nothing the platform lacks); return what it recorded."""
        run = export.last_run()
        assert run.status is status, f"the broken run shows {run.status.value}, not {status.value}: {run.error}"
        if status is RunStatus.INTERRUPTED:
            assert run.error and "killed or crashed" in run.error, run.error
        recorded = {row[0] for row in export.outcomes(run) if OutcomeStatus(row[2]).delivered}
        delivered = sum(n for s, n in run.counts.items() if s in {o.value for o in OutcomeStatus if o.delivered})
        assert delivered == len(recorded), f"the run record counts {delivered} delivered, its outcomes {len(recorded)}"
        lost = sorted(recorded - landed)
        assert not lost, f"{len(lost)} records recorded as delivered are not at the platform, e.g. {lost[:3]}"
        return recorded

    def _assert_killed(self, child: ChildRun, point: str, destination: Destination, platform: PlatformDouble) -> None:
        assert child.returncode == -signal.SIGKILL, (
            f"the run meant to die at {point} ended with exit code {child.returncode}:\n{child.stderr[-2000:]}"
        )
        assert_no_secret(child.stderr, self._secrets(destination, platform.connection()), "the killed run's stderr")

    def _crash_size(self, destination: Destination) -> tuple[int, int]:
        """Return the records per batch and the batches of a crash check.

        The batches are twice the writer's concurrency and two more, so that what a crash leaves in flight
        is a part of the run.
        """
        limits = destination.spec().limits
        return min(limits.batch_size, RUN_BATCH), 2 * limits.max_concurrency + 2

    def _short_timeout(self, destination: Destination) -> dict[str, Any]:
        """``timeout_s`` below a ``timeout`` fault's hold, when the connection schema has it."""
        return (
            {"timeout_s": TIMEOUT_S}
            if "timeout_s" in destination.spec().connection_schema.get("properties", {})
            else {}
        )
