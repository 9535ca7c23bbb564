"""segport's conformance kit against this plugin and its reference receiver: every rule, one test each."""

from __future__ import annotations

from segport.testing import DestinationConformance


class TestWebhookConformance(DestinationConformance):
    entry_point = "webhook"
