"""A local fake of the Mailchimp Marketing API v3, for ``segport demo``, ``segport sandbox``, tests and benchmarks.

Registered as ``mailchimp`` under the entry-point group ``segport.sandboxes``; the destination's own
modules never import it. :mod:`~segport_mailchimp.sandbox.server` holds the sandbox and its routes,
:mod:`~segport_mailchimp.sandbox.state` the audience and its rules, :mod:`~segport_mailchimp.sandbox.batches`
the ``/batches`` jobs. ``python -m segport_mailchimp.sandbox --port 8080 --seed 1`` serves it alone.
"""

from .server import MailchimpSandbox, main

__all__ = ["MailchimpSandbox", "main"]
