"""What the conformance kit asks of a fake platform, and where it finds one by default.

:class:`PlatformDouble` and :class:`PlatformMember` are defined in :mod:`segport.sandboxing.double`, beside
the sandboxes that implement them; they are imported from here too. :func:`registered_double` is the kit's
default double: the sandbox a destination registers under ``segport.sandboxes``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..sandboxing import SANDBOXES_GROUP, PlatformDouble, PlatformMember, open_sandbox, sandbox_names
from ..sandboxing.double import FaultControl

__all__ = ["FaultControl", "PlatformDouble", "PlatformMember", "registered_double"]

KIT_SEED = 20261125  # the seed of every sandbox the kit starts: the same keys, ids and draws on each run


class NoDoubleError(AssertionError):
    """The destination registers no sandbox the kit can drive (a check fails with this message)."""


@contextmanager
def registered_double(destination: str) -> Iterator[PlatformDouble]:
    """Start the sandbox registered as ``destination`` under ``segport.sandboxes`` and yield it.

    It runs on 127.0.0.1 until the block ends. Raises :class:`NoDoubleError` when there is none or it
    is no :class:`PlatformDouble`.
    """
    if destination not in sandbox_names():
        raise NoDoubleError(
            f"destination {destination!r} ships no sandbox: register one under the {SANDBOXES_GROUP!r} entry-point "
            "group with the destination's name, or override the 'platform' fixture with a PlatformDouble"
        )
    sandbox = open_sandbox(destination, seed=KIT_SEED)
    if not isinstance(sandbox, PlatformDouble):
        raise NoDoubleError(
            f"{type(sandbox).__name__} is not a segport.sandboxing.PlatformDouble: build it on "
            "segport.sandboxing.SandboxServer and add members() and seed_member()"
        )
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()
