"""The pluggy manager for lifecycle hooks (entry-point group ``segport.hooks``)."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginContractError, PluginLoadError
from .registry import LOAD_PLUGINS_ENV, allowed_names

HOOKS_GROUP = "segport.hooks"
logger = logging.getLogger("segport.plugins")


def make_manager(*, autoload: bool = True, plugins: tuple[Any, ...] = ()) -> pluggy.PluginManager:
    """Return a plugin manager with segport's hookspecs, ``plugins`` and the installed hook plugins.

    ``autoload=False`` skips entry points (tests register what they need); ``SEGPORT_LOAD_PLUGINS``
    narrows autoload to the named entry points. A hook plugin that fails to import, or implements a
    hook that does not exist or with other arguments, is a :class:`segport.PluginError` naming it:
    a policy plugin (``segport_permission``) must never be skipped silently.
    """
    pm = pluggy.PluginManager("segport")
    pm.add_hookspecs(hookspecs)
    try:
        for plugin in plugins:
            pm.register(plugin)
        if autoload:
            _load_entry_points(pm)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or repr(exc.plugin)
        first_line = (str(exc).splitlines() or [""])[0]
        raise PluginContractError(
            f"hook plugin {name!r} breaks the hook contract: {first_line} (fix the hook's name or "
            f"arguments, see segport.hookspecs; or leave the plugin out of {LOAD_PLUGINS_ENV})"
        ) from None
    return pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    allowed = allowed_names()
    for entry_point in entry_points(group=HOOKS_GROUP):
        if (allowed is not None and entry_point.name not in allowed) or pm.has_plugin(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
        except Exception as exc:  # the plugin's own import failed
            first_line = (str(exc).splitlines() or [""])[0]
            raise PluginLoadError(
                f"hook plugin {entry_point.name!r} ({entry_point.value}) failed to load: {type(exc).__name__}: "
                f"{first_line} (reinstall its distribution, or leave it out of {LOAD_PLUGINS_ENV})"
            ) from None
        pm.register(plugin, name=entry_point.name)


def notify(hook: pluggy.HookCaller, **kwargs: Any) -> None:
    """Call every implementation of a lifecycle hook; one that raises is logged and the run goes on.

    Lifecycle hooks observe a run (logs, progress, notifications): a broken observer must not fail
    or change an export. Implementations run in pluggy's order; wrappers are not supported here.
    """
    for impl in reversed(hook.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:
            continue
        try:
            impl.function(*(kwargs[name] for name in impl.argnames))
        except Exception as exc:
            first_line = (str(exc).splitlines() or [""])[0]
            logger.warning(
                "hook plugin %r failed in %s: %s: %s (the run goes on; fix or remove the plugin)",
                impl.plugin_name,
                hook.name,
                type(exc).__name__,
                first_line,
            )
