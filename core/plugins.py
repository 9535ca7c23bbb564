"""The pluggy manager for lifecycle hooks (entry-point group ``segport.hooks``)."""

from __future__ import annotations

from typing import Any

import pluggy

from . import hookspecs
from .registry import allowed_names

HOOKS_GROUP = "segport.hooks"


def make_manager(*, autoload: bool = True, plugins: tuple[Any, ...] = ()) -> pluggy.PluginManager:
    """A plugin manager with segport's hookspecs, ``plugins`` and the installed hook plugins.

    ``autoload=False`` skips entry points (tests register what they need); ``SEGPORT_LOAD_PLUGINS``
    narrows autoload to the named entry points. ``check_pending`` makes a misspelt hook fail here.
    """
    pm = pluggy.PluginManager("segport")
    pm.add_hookspecs(hookspecs)
    for plugin in plugins:
        pm.register(plugin)
    if autoload:
        allowed = allowed_names()
        if allowed is None:
            pm.load_setuptools_entrypoints(HOOKS_GROUP)
        else:
            for name in sorted(allowed):
                pm.load_setuptools_entrypoints(HOOKS_GROUP, name=name)
    pm.check_pending()
    return pm
