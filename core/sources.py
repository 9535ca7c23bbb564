"""Where a loaded file's text comes from: a plain file, a gzip file, or standard input (``-``).

Gzip is recognised by its magic bytes (``1f 8b``), whatever the file's name, so ``customers.csv.gz``
and a compressed file without the ``.gz`` extension both read; standard input may be gzip too. The
text is decoded as strict UTF-8 (a BOM stripped) and streamed: nothing is read ahead but a buffer.
Standard input is never closed by a reader (the process owns it).
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

__all__ = ["COMPRESSED", "STDIN", "DamagedGzip", "display_name", "inner_name", "is_stdin", "open_text"]

#: The path that means "standard input".
STDIN = "-"
#: Errors a damaged or truncated gzip stream raises while it is read.
COMPRESSED = (EOFError, zlib.error, gzip.BadGzipFile)
_MAGIC = b"\x1f\x8b"


class DamagedGzip(Exception):
    """A gzip stream that cannot be decompressed (truncated, or not gzip after its magic bytes)."""


def is_stdin(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names standard input (``-``)."""
    return os.fspath(path) == STDIN


def display_name(path: str | os.PathLike[str]) -> str:
    """Return how messages name the source: the file's basename, or ``stdin``."""
    if is_stdin(path):
        return "stdin"
    return os.path.basename(os.fspath(path)) or os.fspath(path)


def inner_name(path: str | os.PathLike[str]) -> str:
    """Return the path without a ``.gz`` extension (``customers.csv.gz`` -> ``customers.csv``)."""
    text = os.fspath(path)
    return text[:-3] if text.lower().endswith(".gz") else text


def _stdin_bytes() -> IO[bytes]:
    """Return standard input's byte stream, able to peek (so its first bytes can be checked).

    A stream that cannot peek (an embedding app's or a test's stdin) is wrapped; the wrapper is
    detached, never closed, once read (see :func:`open_text`).
    """
    buffer: Any = sys.stdin.buffer
    return buffer if hasattr(buffer, "peek") else io.BufferedReader(buffer)


def _is_gzip(stream: IO[bytes]) -> bool:
    """Whether the stream starts with gzip's magic bytes; the stream is left where it was."""
    peek = getattr(stream, "peek", None)
    if peek is not None:
        return bytes(peek(2)[:2]) == _MAGIC
    start = stream.tell()
    head = stream.read(2)
    stream.seek(start)
    return head == _MAGIC


class _Checked:
    """A text stream whose gzip errors become :class:`DamagedGzip` (iteration and ``read`` only)."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._text = text

    def __iter__(self) -> Iterator[str]:
        lines = iter(self._text)
        while True:
            try:
                line = next(lines)
            except StopIteration:
                return
            except COMPRESSED as exc:
                raise DamagedGzip(str(exc)) from None
            yield line

    def read(self, size: int = -1) -> str:
        """Read up to ``size`` characters (all with -1)."""
        try:
            return self._text.read(size)
        except COMPRESSED as exc:
            raise DamagedGzip(str(exc)) from None


@contextmanager
def open_text(
    path: str | os.PathLike[str], newline: str | None, errors: str = "strict"
) -> Iterator[_Checked]:
    """Open ``path`` (``-``: standard input) for UTF-8 reading, decompressing gzip.

    Raises OSError as ``open`` does; a damaged gzip stream raises :class:`DamagedGzip` while read.
    """
    stdin = is_stdin(path)
    raw: IO[bytes] = _stdin_bytes() if stdin else open(path, "rb")
    try:
        binary: Any = gzip.GzipFile(fileobj=raw, mode="rb") if _is_gzip(raw) else raw  # closing it leaves ``raw`` open
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors=errors, newline=newline)
        try:
            yield _Checked(text)
        finally:
            if stdin:  # standard input stays open
                text.detach()
                if raw is not sys.stdin.buffer and isinstance(raw, io.BufferedReader):
                    raw.detach()  # our peeking wrapper: closing it would close stdin
            else:
                text.close()
    finally:
        if not stdin:
            raw.close()
