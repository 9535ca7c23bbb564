"""What the conformance kit asks of a fake platform: :class:`PlatformDouble` and :class:`PlatformMember`.

Both are defined in :mod:`segport.sandboxing.double`, beside the sandboxes that implement them; they are
imported from here too.
"""

from __future__ import annotations

from ..sandboxing.double import PlatformDouble, PlatformMember

__all__ = ["PlatformDouble", "PlatformMember"]
