"""What ``segport demo``, ``segport sandbox``, the conformance kit and the benchmarks ask of a sandbox."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["Sandbox"]


class Sandbox(ABC):
    """A local server faithful to a platform's API, registered under ``segport.sandboxes``.

    It is not a part of the destination contract: the engine never uses one. Build it on
    :class:`segport.sandboxing.SandboxServer`: it then also serves as the
    :class:`segport.sandboxing.PlatformDouble` the conformance kit drives.

    :param latency_ms: delay added to every API call.
    :param fail_rate: share of API calls answered with a transient failure (429/500/503).
    :param seed: makes generated keys, ids and the fault sequence reproducible.
    """

    def __init__(self, *, latency_ms: int = 0, fail_rate: float = 0.0, seed: int | None = None) -> None:
        self.latency_ms = latency_ms
        self.fail_rate = fail_rate
        self.seed = seed

    @abstractmethod
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in background threads; return the base URL (e.g. ``http://127.0.0.1:8123``)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop serving and release the port."""

    @property
    @abstractmethod
    def base_url(self) -> str:
        """The base URL :meth:`start` returned (``RuntimeError`` before it)."""

    @abstractmethod
    def demo_connection(self) -> dict[str, Any]:
        """Return a valid connection config that talks to this running sandbox."""

    @abstractmethod
    def demo_export_options(self) -> dict[str, Any]:
        """Export options that target an audience/list existing in the sandbox."""

    @abstractmethod
    def summary(self) -> dict[str, Any]:
        """Return what landed: e.g. members per status and members per segment marker."""

    def describe(self) -> dict[str, Any]:
        """Return what a client needs to talk to the running sandbox (``segport sandbox NAME --json``).

        ``{"base_url": the API root, "api_key", "list_id": the audience/list, "client_id": or None}``;
        by default read from :meth:`demo_connection` and :meth:`demo_export_options`.
        """
        connection, options = self.demo_connection(), self.demo_export_options()
        list_id = options.get("list_id") or options.get("audience_id") or next(iter(options.values()), None)
        return {
            "base_url": connection.get("api_base_url") or self.base_url,
            "api_key": connection.get("api_key"),
            "list_id": list_id,
            "client_id": None,
        }

    def demo_mapping(self) -> dict[str, str]:
        """Return the data matching for ``segport demo``: {destination field: attribute}.

        The demo's profiles carry ``first_name``, ``last_name``, ``city`` and ``country``.
        """
        return {}
