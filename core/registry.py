"""Discovery of destination plugins (stevedore, entry-point group ``segport.destinations``).

Listing degrades: a plugin that fails to load is shown as broken with its reason. Asking for a
plugin by name fails with that reason. ``SEGPORT_LOAD_PLUGINS`` (comma list) narrows autoload.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from functools import cache
from importlib.metadata import distributions, entry_points
from typing import Any, Iterable

from jsonschema import Draft202012Validator
from stevedore import ExtensionManager, NamedExtensionManager
from stevedore.extension import Extension

from . import schemas
from .config import check_schema
from .contract import Destination, DestinationSpec
from .errors import PluginContractError, PluginError, PluginLoadError

DESTINATIONS_GROUP = "segport.destinations"
LOAD_PLUGINS_ENV = "SEGPORT_LOAD_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    """One entry point of ``segport.destinations`` as ``plugins list`` shows it."""

    name: str
    target: str
    distribution: str | None
    version: str | None
    title: str | None
    status: str  # "ok" or "broken"
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the entry point as JSON-ready data."""
        return dict(self.__dict__)


@cache
def _distributions() -> dict[str, tuple[str, str]]:
    """Destination entry-point name -> (distribution, version) of the installed distributions."""
    found: dict[str, tuple[str, str]] = {}
    for dist in distributions():
        for entry_point in dist.entry_points:
            if entry_point.group == DESTINATIONS_GROUP:
                found.setdefault(entry_point.name, (dist.metadata["Name"], dist.version))
    return found


def allowed_names() -> frozenset[str] | None:
    """Return the names ``SEGPORT_LOAD_PLUGINS`` allows, or None when it is unset (load all)."""
    value = os.environ.get(LOAD_PLUGINS_ENV)
    if value is None:
        return None
    return frozenset(n.strip() for n in value.split(",") if n.strip())


def instantiate(name: str, plugin: Any) -> Destination:
    """Check a loaded entry point against the contract and return the destination object."""
    if not (inspect.isclass(plugin) and issubclass(plugin, Destination)):
        raise PluginContractError(
            f"destination plugin {name!r}: {plugin!r} is not a segport.Destination subclass "
            "(point the entry point at the Destination class)"
        )
    if inspect.isabstract(plugin):
        missing = ", ".join(sorted(plugin.__abstractmethods__))
        raise PluginContractError(f"destination plugin {name!r} does not implement: {missing}")
    for attr in ("name", "title"):
        if not isinstance(getattr(plugin, attr, None), str):
            raise PluginContractError(f"destination plugin {name!r} lacks the class attribute {attr!r}")
    destination = plugin()
    check_spec(name, destination.spec())
    return destination


def check_spec(name: str, spec: DestinationSpec) -> None:
    """Raise :class:`PluginContractError` for a spec the engine cannot drive."""
    owner = f"destination plugin {name!r}"
    meta = schemas.load("destination-spec")
    for label, schema in (("connection", spec.connection_schema), ("export", spec.export_schema)):
        check_schema(schema, f"{owner} ({label} schema)")
        problems = sorted(Draft202012Validator(meta).iter_errors(schema), key=lambda e: e.json_path)
        if problems:
            lines = "; ".join(f"{e.json_path}: {e.message}" for e in problems)
            raise PluginContractError(f"{owner}: the {label} schema breaks the spec contract: {lines}")
    limits = spec.limits
    if min(limits.batch_size, limits.max_concurrency, limits.profile_cap) < 1:
        raise PluginContractError(f"{owner}: batch_size, max_concurrency and profile_cap must be >= 1")


class Registry:
    """The destinations this process can use. Loads lazily; caches instances."""

    def __init__(self, manager: ExtensionManager[Any] | None = None) -> None:
        self._manager = manager
        self._broken: dict[str, tuple[Extension[Any] | None, str, str]] = {}
        self._loaded: dict[str, Destination] = {}

    @classmethod
    def from_plugins(cls, plugins: Iterable[type[Destination]]) -> Registry:
        """Return a registry of in-process classes, for tests and embedding (nothing is pip-installed)."""
        from importlib.metadata import EntryPoint

        extensions = [
            Extension(p.name, EntryPoint(p.name, f"{p.__module__}:{p.__qualname__}", DESTINATIONS_GROUP), p, None)
            for p in plugins
        ]
        return cls(ExtensionManager.make_test_instance(extensions, namespace=DESTINATIONS_GROUP))

    @property
    def manager(self) -> ExtensionManager[Any]:
        """The stevedore manager of the allowed entry points, built on first use."""
        if self._manager is None:
            allowed = allowed_names()
            if allowed is None:
                self._manager = ExtensionManager(
                    DESTINATIONS_GROUP, invoke_on_load=False, on_load_failure_callback=self._on_failure
                )
            else:  # import only the allowed plugins
                self._manager = NamedExtensionManager(
                    DESTINATIONS_GROUP, sorted(allowed), invoke_on_load=False, on_load_failure_callback=self._on_failure
                )
        return self._manager

    def _on_failure(self, _manager: ExtensionManager[Any], entry_point: Any, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        self._broken[entry_point.name] = (None, entry_point.value, reason)

    def _extensions(self) -> dict[str, Extension[Any]]:
        allowed = allowed_names()
        return {e.name: e for e in self.manager.extensions if allowed is None or e.name in allowed}

    def get(self, name: str) -> Destination:
        """Return the destination called ``name``; raises :class:`PluginError` naming the reason."""
        if name in self._loaded:
            return self._loaded[name]
        extensions = self._extensions()
        if name not in extensions:
            if name in self._broken:
                _, target, reason = self._broken[name]
                raise PluginLoadError(
                    f"destination plugin {name!r} ({target}) failed to load: {reason} "
                    "(reinstall the plugin's distribution, or run 'segport plugins list')"
                )
            allowed = allowed_names()
            if allowed is not None and name in self._all_names():
                raise PluginLoadError(
                    f"destination plugin {name!r} is not loaded because {LOAD_PLUGINS_ENV} is set; add it there"
                )
            known = ", ".join(sorted(extensions)) or "none installed"
            raise PluginLoadError(
                f"unknown destination type {name!r} (available: {known}); install its plugin distribution"
            )
        try:
            destination = instantiate(name, extensions[name].plugin)
        except PluginError:
            raise
        except Exception as exc:  # a plugin's own bug while starting up
            first_line = (str(exc).splitlines() or [""])[0]
            raise PluginContractError(
                f"destination plugin {name!r} failed while starting: {type(exc).__name__}: {first_line}",
                internal_message=str(exc),
            ) from exc
        self._loaded[name] = destination
        return destination

    def _all_names(self) -> set[str]:
        installed = {ep.name for ep in entry_points(group=DESTINATIONS_GROUP)}
        return installed | {e.name for e in self.manager.extensions} | set(self._broken)

    def infos(self) -> list[PluginInfo]:
        """Every destination entry point, loadable or broken, sorted by name."""
        result = [self._info(ext) for ext in self._extensions().values()]
        allowed = allowed_names()
        for name, (_, target, reason) in self._broken.items():
            if allowed is None or name in allowed:
                result.append(PluginInfo(name, target, None, None, None, "broken", reason))
        return sorted(result, key=lambda i: i.name)

    def _info(self, ext: Extension[Any]) -> PluginInfo:
        dist_name, version = _distributions().get(ext.name, (None, None))
        target = ext.entry_point.value
        try:
            destination = self.get(ext.name)
        except PluginError as exc:
            return PluginInfo(ext.name, target, dist_name, version, None, "broken", str(exc))
        return PluginInfo(ext.name, target, dist_name, version, destination.title, "ok")


_default: Registry | None = None


def default_registry() -> Registry:
    """Return the process-wide registry the CLI and :class:`segport.Workspace` use unless given one."""
    global _default
    if _default is None:
        _default = Registry()
    return _default


def set_default_registry(registry: Registry | None) -> None:
    """Replace the process-wide registry (tests use it with :meth:`Registry.from_plugins`)."""
    global _default
    _default = registry
