"""A local fake of the Campaign Monitor API v3.3, for ``segport demo``, ``segport sandbox``, tests and benchmarks.

Registered as ``campaignmonitor`` under the entry-point group ``segport.sandboxes``; the destination's
own modules never import it. :mod:`~segport_campaignmonitor.sandbox.server` holds the sandbox and its
routes, :mod:`~segport_campaignmonitor.sandbox.state` the client, the list and their rules.
``python -m segport_campaignmonitor.sandbox --port 8080 --seed 1`` serves it alone.
"""

from .server import CampaignMonitorSandbox, main

__all__ = ["CampaignMonitorSandbox", "main"]
