"""The conformance kit, run exactly as a third-party plugin runs it: subclass, name the entry point.

The resilience checks add what is Campaign Monitor's own: a list deleted mid-run, and the rule segment
each exported segment keeps on the list.
"""

from __future__ import annotations

from typing import Callable, ClassVar, Mapping

from segport import AuthError, OutcomeStatus, SegportError, UnknownAudienceError
from segport.testing import (
    AudienceListChecks,
    DestinationConformance,
    DestinationResilience,
    MemberReadChecks,
    PlatformDouble,
)
from segport.testing.kit_export import KitExport, KitPerson
from segport_campaignmonitor.sandbox import CampaignMonitorSandbox


class TestCampaignMonitorConformance(DestinationConformance, MemberReadChecks, AudienceListChecks):
    entry_point = "campaignmonitor"


class TestCampaignMonitorResilience(DestinationResilience):
    entry_point = "campaignmonitor"
    status_of_a_resend = OutcomeStatus.CREATED  # an import does not say who existed already
    status_of_a_new_person = "Active"
    refusal_reason = "code 204: In Suppression List"  # a row of the import's FailureDetails
    breakages: ClassVar[Mapping[str, tuple[type[SegportError], tuple[str, ...]]]] = {
        "credentials revoked": (AuthError, ("refused the credentials",)),
        "list deleted": (UnknownAudienceError, ("no longer exists", "list_id")),
    }

    def break_platform(self, platform: PlatformDouble, breakage: str) -> Callable[[], None]:
        if breakage != "list deleted" or not isinstance(platform, CampaignMonitorSandbox):
            return super().break_platform(platform, breakage)
        sandbox = platform
        sandbox.delete_list()

        def restore() -> None:
            sandbox._data.deleted = False  # the sandbox has no public hook to undo a deletion

        return restore

    def assert_exact(self, export: KitExport, people: list[KitPerson] | None = None) -> None:
        """Also: the list has a rule segment for each exported segment."""
        super().assert_exact(export, people)
        assert isinstance(export.platform, CampaignMonitorSandbox)
        titles = {s["Title"] for s in export.platform.state()["lists"][export.platform.list_id]["segments"]}
        assert set(self.segments) <= titles, f"rule segments {sorted(titles)} lack an exported segment"
