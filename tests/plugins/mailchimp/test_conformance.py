"""The conformance kit, run exactly as a third-party plugin runs it: subclass, name the entry point.

The resilience checks add what is Mailchimp's own: an audience deleted mid-run, the tag counts the
audience keeps beside its members, and the operations of a ``/batches`` job failing one by one.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Callable, ClassVar, Mapping

from segport import AuthError, OutcomeStatus, SegportError, UnknownAudienceError
from segport.testing import (
    AudienceListChecks,
    DestinationConformance,
    DestinationResilience,
    FaultControl,
    MemberReadChecks,
    PlatformDouble,
)
from segport.testing.kit_export import KitExport, KitPerson
from segport_mailchimp.sandbox import MailchimpSandbox


class TestMailchimpConformance(DestinationConformance, MemberReadChecks, AudienceListChecks):
    entry_point = "mailchimp"


class TestMailchimpResilience(DestinationResilience):
    entry_point = "mailchimp"
    status_of_a_resend = OutcomeStatus.UPDATED  # the batch subscribe answers who existed already
    status_of_a_new_person = "subscribed"
    refusal_reason = "has signed up to a lot of lists very recently"  # the sandbox's refused signup
    breakages: ClassVar[Mapping[str, tuple[type[SegportError], tuple[str, ...]]]] = {
        "credentials revoked": (AuthError, ("refused the credentials",)),
        "audience deleted": (UnknownAudienceError, ("audience", "no longer exists")),
    }

    def break_platform(self, platform: PlatformDouble, breakage: str) -> Callable[[], None]:
        if breakage != "audience deleted" or not isinstance(platform, MailchimpSandbox):
            return super().break_platform(platform, breakage)
        sandbox = platform
        sandbox.delete_list()

        def restore() -> None:
            sandbox._data.deleted = False  # the sandbox has no public hook to undo a deletion

        return restore

    def assert_exact(self, export: KitExport, people: list[KitPerson] | None = None) -> None:
        """Also: each tag's member count (kept by the audience beside its members) matches the members."""
        super().assert_exact(export, people)
        assert isinstance(export.platform, MailchimpSandbox)
        held = Counter(tag for m in export.platform.members() for tag in m.markers)
        assert export.platform.summary()["tags"] == {name: held[name] for name in self.segments}

    def test_failed_operations_of_a_batch_job_are_retried(
        self, platform: PlatformDouble, control: FaultControl, kit_export: Callable[..., KitExport]
    ) -> None:
        """A delta of field changes goes as ``/batches`` jobs of PUTs; operations answered 429, 500 or the
        bodiless 403 are retried, once per job they hit."""
        export = kit_export(600)
        assert export.run().counts["created"] == 600
        first = next(iter(export.people[0].fields))
        export.people = [dataclasses.replace(p, fields={**p.fields, first: f"Renamed {p.key}"}) for p in export.people]
        export.load(export.people)
        control.set_faults(kinds=["429", "500", "403"], fail_next=3, fault_filter="^op PUT ")
        run = export.run()
        assert run.counts.get("updated") == 600
        assert isinstance(platform, MailchimpSandbox)
        assert sum(e.operation for e in platform.fault_log) == 3 and 1 <= run.retries <= 2
        self.assert_exact(export)
