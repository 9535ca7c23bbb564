"""asgi-csrf 0.11 with python-multipart 0.0.26 and later, which dropped ``FormParser(FileClass=...)``.

asgi-csrf reads a multipart body up to its ``csrftoken`` field and refuses a file part that comes
before it by handing the parser a file class whose writes fail. python-multipart 0.0.26 (the fix of
CVE-2026-40347) no longer takes a file class, so every upload form failed with a TypeError. Until
asgi-csrf adapts (simonw/asgi-csrf#38), its parser is given one that refuses the file part when the
part ends, before any later field is read: a token that follows a file is never accepted.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

import asgi_csrf
from python_multipart import FormParser


class TokenFirstFormParser(FormParser):
    """python-multipart's parser, taking asgi-csrf's ``FileClass`` as "a file part here is refused"."""

    def __init__(
        self,
        content_type: str,
        on_field: Callable[[Any], None] | None,
        on_file: Callable[[Any], None] | None,
        *args: Any,
        FileClass: Any = None,
        **kwargs: Any,
    ) -> None:
        def refuse(file: Any) -> None:
            raise asgi_csrf.FileBeforeToken

        super().__init__(content_type, on_field, refuse if FileClass is not None else on_file, *args, **kwargs)


def install() -> None:
    """Give asgi-csrf a parser it can call, when python-multipart no longer takes its ``FileClass``."""
    if "FileClass" not in inspect.signature(FormParser.__init__).parameters:
        asgi_csrf.FormParser = TokenFirstFormParser
