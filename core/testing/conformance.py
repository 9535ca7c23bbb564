"""The destination conformance kit: what every segport destination must do, as pytest tests.

Subclass :class:`DestinationConformance` in your plugin's tests and name your entry point::

    from segport.testing import DestinationConformance

    class TestConformance(DestinationConformance):
        entry_point = "webhook"          # your name in the segport.destinations group

The kit runs your plugin against a :class:`~segport.testing.double.PlatformDouble`: by default the
sandbox your distribution registers under ``segport.sandboxes``, started on 127.0.0.1 for each test (override
the ``platform`` fixture to bring another). Every check is one test, named after the rule it checks;
a failure says which rule broke and how to fix it. Both built-in plugins pass exactly this kit.

What it checks (:class:`~segport.testing.conformance_contract.ContractChecks`): the entry point loads;
the specs are valid JSON Schema and secrets are ``writeOnly``; a sample config validates and broken ones
fail by path; the auth handler sets credentials, its check accepts good ones and turns a 401 into
:class:`segport.AuthError`. Then (:class:`~segport.testing.conformance_writer.WriterChecks`): the writer
returns exactly one outcome per record; per-record errors in a successful answer become rejects;
429/5xx/transport failures become retryable (with the platform's Retry-After); resending a batch is
idempotent; email identity is case-insensitive; leaving a segment removes only the marker; an unknown
audience/list is reported; secrets never appear in logs or errors; an export runs end to end through
the engine; concurrent ``write_batch`` calls share no state. A writer implementing the optional
``read_members`` adds :class:`~segport.testing.conformance_members.MemberReadChecks` (it reads back
what it wrote, changes nothing doing so, reports a missing list); a destination implementing the
optional ``list_audiences`` adds :class:`~segport.testing.conformance_audiences.AudienceListChecks`.
Crashes and injected faults are the slower, separate
:class:`~segport.testing.conformance_resilience.DestinationResilience`.
"""

from __future__ import annotations

from .concurrency import ConcurrencyChecks
from .conformance_contract import ContractChecks
from .conformance_writer import WriterChecks

__all__ = ["DestinationConformance"]


class DestinationConformance(ContractChecks, WriterChecks, ConcurrencyChecks):
    """Check a destination plugin against the contract, the writer and concurrency.

    Subclass it with ``entry_point`` set; pytest collects every ``test_*`` check of the contract and the
    writer (the fixtures, class attributes and helpers are :class:`~segport.testing.kit.DestinationKit`'s).
    """
