"""What the conformance kit asks of a fake platform: :class:`PlatformDouble` (standard library only).

A plugin's sandbox (built on :class:`segport.sandboxing.SandboxServer`, which already implements
:meth:`~PlatformDouble.connection`, :meth:`~PlatformDouble.export_options` and
:meth:`~PlatformDouble.refuse`) becomes a double by adding :meth:`~PlatformDouble.members` and
:meth:`~PlatformDouble.seed_member`. A double may also be anything else that talks like the platform on
127.0.0.1 (a ``responses`` mock works too, as long as it stays active while the kit runs).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["PlatformDouble", "PlatformMember"]


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

        ``email`` keeps its case: the kit passes ``Grace.Hopper@Example.COM`` and expects a record for
        ``grace.hopper@example.com`` to reach that person, not a second one.
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
