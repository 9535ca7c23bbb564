"""What the conformance kit asks of a fake platform: :class:`PlatformDouble` (standard library only).

A plugin's sandbox (built on :class:`segport.sandboxing.SandboxServer`, which already implements
:meth:`~PlatformDouble.connection`, :meth:`~PlatformDouble.export_options` and
:meth:`~PlatformDouble.refuse`) becomes a double by adding :meth:`~PlatformDouble.members` and
:meth:`~PlatformDouble.seed_member`. A double may also be anything else that talks like the platform on
127.0.0.1 (a ``responses`` mock works too, as long as it stays active while the kit runs).

The crash and fault checks (:class:`segport.testing.DestinationResilience`) also steer the double's
fault injection, :class:`FaultControl`, which every sandbox built on the sandbox kit has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

__all__ = ["FaultControl", "PlatformDouble", "PlatformMember"]


@dataclass(frozen=True)
class PlatformMember:
    """One person as the platform holds them.

    :param email: the address exactly as the platform stores it (its case included).
    :param fields: the person's fields, by the destination field names records carry (email excluded).
    :param markers: the exported segments the person carries, by segment name (under the export options
        :meth:`PlatformDouble.export_options` gives, e.g. no tag prefix).
    :param status: the platform's own word for the person's subscription state (``subscribed``, ``Active``...).
    """

    email: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    markers: frozenset[str] = frozenset()
    status: str = "subscribed"


@runtime_checkable
class FaultControl(Protocol):
    """The fault injection of a double, as the sandbox kit's ``SandboxServer`` offers it.

    ``segport sandbox --help`` and the ``/_sandbox/faults`` test API show the same settings.

    Faults are drawn per API call, seeded, at ``fail_rate`` among the weighted ``kinds``: a status code of
    :attr:`fault_codes` (as a string), ``429-retry-after``, ``reset`` (nothing applied), ``reset-applied``
    (applied, the answer lost), ``cut`` (applied, half an answer), ``timeout`` (held ``hold_s``, then
    applied) and ``slow``; ``fail_next`` forces the next calls to fail, ``fault_filter`` (a regular
    expression searched in ``"METHOD /path"``) limits faults to the calls it finds, and
    ``member_fail_rate`` makes batch calls refuse a seeded share of the people, as per-record errors.
    """

    revoked: bool  # the credentials are refused (401) while true

    @property
    def fault_codes(self) -> tuple[int, ...]:
        """The status codes :meth:`set_faults` takes as kinds."""

    @property
    def requests_log(self) -> Sequence[tuple[str, str]]:
        """Every API call received since the last :meth:`reset`, as ``(method, path)``."""

    def set_faults(
        self,
        *,
        fail_rate: float | None = None,
        latency_ms: int | None = None,
        kinds: Mapping[str, float] | Sequence[str] | None = None,
        hold_s: float | None = None,
        slow_ms: int | None = None,
        retry_after_s: int | None = None,
        member_fail_rate: float | None = None,
        fault_filter: str | None = None,
        fail_next: int | None = None,
    ) -> None:
        """Change the settings given (None: unchanged)."""

    def fault_counts(self) -> dict[str, int]:
        """How many faults of each kind were injected (``member`` for refused people)."""

    def member_fault(self, email: str) -> bool:
        """Whether batch calls refuse ``email`` now (the same addresses on every call)."""

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no call is in flight (held ones included) nor any work queued; whether it is so."""

    def revoke_key(self) -> None:
        """Refuse the credentials from now on (until ``revoked`` is set false again)."""

    def reset(self) -> None:
        """Back to a fresh platform: nobody in the audience/list, faults and logs as constructed."""


class PlatformDouble(ABC):
    """A fake of the platform the conformance kit can inspect and steer.

    The kit calls :meth:`connection` and :meth:`export_options` for a working setup, writes through the
    plugin, then reads :meth:`members` to see what really landed.
    """

    @abstractmethod
    def connection(self) -> dict[str, Any]:
        """Return a valid connection config (secrets included) that talks to this double."""

    @abstractmethod
    def export_options(self) -> dict[str, Any]:
        """Export options that target an audience/list existing in this double."""

    @abstractmethod
    def members(self) -> list[PlatformMember]:
        """Everyone the audience/list of :meth:`export_options` holds, unsubscribed people included."""

    @abstractmethod
    def seed_member(self, email: str, fields: Mapping[str, Any]) -> None:
        """Store a person who exists before any export, exactly as the platform would store them.

        ``email`` keeps its case: the kit passes ``Grace.Hopper@Segport-Test.NET`` and expects a record for
        ``grace.hopper@segport-test.net`` to reach that person, not a second one.
        """

    @abstractmethod
    def refuse(self, email: str) -> None:
        """Make later writes of ``email`` fail *for that person only*.

        The kit refuses a person it is about to create; the write fails the way the platform reports a
        per-record error inside an otherwise successful answer (e.g. a 200 listing failed rows).
        """

    def unknown_export_options(self) -> dict[str, Any] | None:
        """Return export options naming an audience/list that does not exist (None: no such notion).

        The kit then expects :meth:`segport.BatchWriter.prepare` to raise
        :class:`segport.UnknownAudienceError`.
        """
        return None

    def fault_control(self) -> FaultControl | None:
        """Return the double's fault injection, or None when it has none (the fault checks are then skipped).

        Default: the double itself when it implements :class:`FaultControl` (a sandbox-kit sandbox does).
        """
        return self if isinstance(self, FaultControl) else None
