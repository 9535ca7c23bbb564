"""The conformance kit, run exactly as a third-party plugin runs it: subclass, name the entry point."""

from segport.testing import DestinationConformance


class TestMailchimpConformance(DestinationConformance):
    entry_point = "mailchimp"
