"""Local fakes of destination platforms (sandboxes), kept out of the production contract.

The engine never loads a sandbox; ``segport demo``, ``segport sandbox``, the conformance kit
(:mod:`segport.testing`) and the benchmarks do. Standard library only:

- :class:`SandboxServer`: the base of a sandbox, an HTTP/1.1 fake of a platform with latency, seeded
  faults (:mod:`~segport.sandboxing.faults`) and the ``/_sandbox/`` test API
  (:mod:`~segport.sandboxing.control`); handlers are registered on a :class:`Router` and read a
  :class:`Request`; :func:`serve_main` makes a command line of it; :class:`WatchedWrites` counts writes
  for crash tests;
- :class:`PlatformDouble`, :class:`PlatformMember`: what the conformance kit reads and steers at a fake
  platform (a ``SandboxServer`` subclass is one once it implements ``members`` and ``seed_member``).

The kit lived in ``segport.testing.sandbox`` before; that module re-exports it unchanged.
"""

from __future__ import annotations

from .command import serve_main
from .double import PlatformDouble, PlatformMember
from .faults import FAULT_KINDS, RETRY_AFTER, FaultEvent, FaultInjection, FaultSettingError, parse_kinds
from .messages import JSON_TYPE, HttpError, Request, Response, redirect
from .routing import Router
from .server import Gate, SandboxServer
from .watched import WatchedWrites

__all__ = [
    "FAULT_KINDS",
    "JSON_TYPE",
    "RETRY_AFTER",
    "FaultEvent",
    "FaultInjection",
    "FaultSettingError",
    "Gate",
    "HttpError",
    "PlatformDouble",
    "PlatformMember",
    "Request",
    "Response",
    "Router",
    "SandboxServer",
    "WatchedWrites",
    "parse_kinds",
    "redirect",
    "serve_main",
]
