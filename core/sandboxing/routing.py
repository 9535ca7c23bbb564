"""Routes of a sandbox: :class:`Router` maps ``(method, regex)`` to a handler ``(sandbox, request) -> response``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, Generic, TypeVar
from urllib.parse import unquote

from .messages import Request, Response

if TYPE_CHECKING:
    from .server import SandboxServer

__all__ = ["Handler", "Router"]

S = TypeVar("S", bound="SandboxServer")
Handler = Callable[[S, Request], Response]


class Router(Generic[S]):
    """``(method, regex) -> handler``; a regex matches the whole path, its named groups become ``params``."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler[S]]] = []

    def route(self, method: str, pattern: str) -> Callable[[Handler[S]], Handler[S]]:
        """Return a decorator registering a handler for ``method`` on paths fully matching ``pattern``."""

        def register(handler: Handler[S]) -> Handler[S]:
            self.routes.append((method, re.compile(pattern), handler))
            return handler

        return register

    def resolve(self, method: str, path: str) -> tuple[Handler[S] | None, dict[str, str], list[str]]:
        """Return the handler and its unquoted params, or None and the methods the path allows (none: 404)."""
        allowed: list[str] = []
        for verb, pattern, handler in self.routes:
            if (match := pattern.fullmatch(path)) is not None:
                if verb == method:
                    return handler, {k: unquote(v) for k, v in match.groupdict().items()}, []
                allowed.append(verb)
        return None, {}, allowed
