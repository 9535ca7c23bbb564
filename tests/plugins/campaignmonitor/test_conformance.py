"""The conformance kit, run exactly as a third-party plugin runs it: subclass, name the entry point."""

from segport.testing import DestinationConformance


class TestCampaignMonitorConformance(DestinationConformance):
    entry_point = "campaignmonitor"
