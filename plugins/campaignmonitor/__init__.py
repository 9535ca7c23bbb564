"""segport destination for Campaign Monitor: subscribers of a list, segment membership in a custom field."""

from .destination import CampaignMonitorDestination

__all__ = ["CampaignMonitorDestination"]
