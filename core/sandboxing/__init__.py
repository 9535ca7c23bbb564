"""Local fakes of destination platforms (sandboxes), kept out of the production contract.

The engine never loads a sandbox; ``segport demo``, ``segport sandbox``, the conformance kit
(:mod:`segport.testing`) and the benchmarks do. Standard library only:

- :class:`Sandbox`: what they ask of a sandbox (start, stop, ``base_url``, the demo's connection, export
  options and data matching, a summary of what landed);
- ``segport.sandboxes``: the entry-point group a plugin registers its sandbox in, under the destination's
  name (:func:`sandbox_names`, :func:`find_sandbox`, :func:`open_sandbox`);
- :class:`SandboxServer`: the base of a sandbox, an HTTP/1.1 fake of a platform with latency, seeded
  faults (:mod:`~segport.sandboxing.faults`) and the ``/_sandbox/`` test API
  (:mod:`~segport.sandboxing.control`); handlers are registered on a :class:`Router` and read a
  :class:`Request`; :func:`serve_main` makes a command line of it; :func:`consent_page` is an OAuth2
  consent page; :class:`WatchedWrites` counts writes
  for crash tests;
- :class:`PlatformDouble`, :class:`PlatformMember`: what the conformance kit reads and steers at a fake
  platform (a ``SandboxServer`` subclass is one once it implements ``members`` and ``seed_member``).

Earlier releases had the interface as ``segport.Sandbox``, returned by ``Destination.sandbox()``, and
the kit in ``segport.testing.sandbox`` (which still re-exports the kit).
"""

from __future__ import annotations

from .command import serve_main
from .consent import consent_decision, consent_page
from .double import PlatformDouble, PlatformMember
from .faults import FAULT_KINDS, RETRY_AFTER, FaultEvent, FaultInjection, FaultSettingError, parse_kinds
from .interface import Sandbox
from .messages import JSON_TYPE, HttpError, Request, Response, redirect
from .registry import SANDBOXES_GROUP, find_sandbox, open_sandbox, sandbox_names
from .routing import Router
from .server import Gate, SandboxServer
from .watched import WatchedWrites

__all__ = [
    "FAULT_KINDS",
    "JSON_TYPE",
    "RETRY_AFTER",
    "SANDBOXES_GROUP",
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
    "Sandbox",
    "SandboxServer",
    "WatchedWrites",
    "consent_decision",
    "consent_page",
    "find_sandbox",
    "open_sandbox",
    "parse_kinds",
    "redirect",
    "sandbox_names",
    "serve_main",
]
