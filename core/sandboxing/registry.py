"""Where sandboxes are found: the entry-point group ``segport.sandboxes``, one entry per destination name.

An entry point names a :class:`~segport.sandboxing.interface.Sandbox` subclass, or any callable taking the
keyword arguments ``latency_ms``, ``fail_rate`` and ``seed`` and returning a Sandbox::

    [project.entry-points."segport.sandboxes"]
    tinylist = "segport_tinylist.sandbox:TinyListSandbox"

Only ``segport demo``, ``segport sandbox``, the conformance kit and the benchmarks look here; nothing is
imported until a sandbox is asked for by name.
"""

from __future__ import annotations

import inspect
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol

from ..errors import PluginContractError, PluginError, PluginLoadError
from .interface import Sandbox

__all__ = ["SANDBOXES_GROUP", "SandboxFactory", "find_sandbox", "open_sandbox", "sandbox_accepts", "sandbox_names"]

SANDBOXES_GROUP = "segport.sandboxes"


class SandboxFactory(Protocol):
    """What a ``segport.sandboxes`` entry point names: a Sandbox class, or a function making one."""

    def __call__(
        self, *, latency_ms: int = 0, fail_rate: float = 0.0, seed: int | None = None, **options: Any
    ) -> Sandbox:
        """Return a new sandbox, not started (``options``: further settings the sandbox takes, if any)."""


def sandbox_names() -> list[str]:
    """Return the destination names a sandbox is registered for, sorted (nothing is imported)."""
    return sorted({entry.name for entry in entry_points(group=SANDBOXES_GROUP)})


def find_sandbox(name: str) -> SandboxFactory | None:
    """Return the factory registered as ``name``, or None when there is none.

    Raises :class:`PluginLoadError` when the entry point cannot be imported and
    :class:`PluginContractError` when it names something that cannot make a Sandbox.
    """
    found: list[EntryPoint] = list(entry_points(group=SANDBOXES_GROUP, name=name))
    if not found:
        return None
    entry = found[0]
    try:
        target: Any = entry.load()
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise PluginLoadError(
            f"sandbox {name!r} ({entry.value}) failed to load: {reason} (reinstall the plugin's distribution)"
        ) from None
    if inspect.isclass(target):
        if not issubclass(target, Sandbox) or inspect.isabstract(target):
            raise PluginContractError(
                f"sandbox {name!r}: {entry.value} is not a concrete segport.sandboxing.Sandbox subclass "
                "(point the segport.sandboxes entry point at the sandbox class)"
            )
    elif not callable(target):
        raise PluginContractError(f"sandbox {name!r}: {entry.value} is neither a Sandbox class nor callable")
    factory: SandboxFactory = target
    return factory


def sandbox_accepts(factory: SandboxFactory, option: str) -> bool:
    """Return whether ``factory`` takes the keyword argument ``option`` (e.g. ``api_key``, ``max_connections``)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature to read: let the call decide
        return True
    found = parameters.get(option)
    if found is not None:
        return found.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def open_sandbox(
    name: str, *, latency_ms: int = 0, fail_rate: float = 0.0, seed: int | None = None, **options: Any
) -> Sandbox:
    """Return a new sandbox of destination ``name``, not started.

    ``options`` are further keyword arguments of its factory (``api_key``, ``max_connections``...).
    Raises :class:`PluginError` (exit 7) when none is registered or its factory does not take one of the
    ``options``, and as :func:`find_sandbox` does.
    """
    factory = find_sandbox(name)
    if factory is None:
        raise PluginError(f"destination {name!r} ships no sandbox")
    unknown = [option for option in options if not sandbox_accepts(factory, option)]
    if unknown:
        raise PluginError(f"the {name} sandbox takes no {', '.join(unknown)} (leave that option out)")
    sandbox = factory(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed, **options)
    if not isinstance(sandbox, Sandbox):
        raise PluginContractError(
            f"sandbox {name!r}: its factory returned {type(sandbox).__name__}, not a segport.sandboxing.Sandbox"
        )
    return sandbox
