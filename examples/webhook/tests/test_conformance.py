"""segport's conformance kit against this plugin and its reference receiver: every rule, one test each."""

from __future__ import annotations

from segport import OutcomeStatus
from segport.testing import DestinationConformance, DestinationResilience


class TestWebhookConformance(DestinationConformance):
    entry_point = "webhook"


class TestWebhookResilience(DestinationResilience):
    entry_point = "webhook"
    status_of_a_resend = OutcomeStatus.UNCHANGED  # the receiver compares what it holds
    status_of_a_new_person = "subscribed"  # the protocol has no other state
    refusal_reason = "refused by the receiver"
