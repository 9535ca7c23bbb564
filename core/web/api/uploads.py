"""Files the API receives (profiles, segment members), staged for the services' file readers.

The services read profiles and keys from files (as the CLI gives them); an upload is written to a
private folder (0700) in the workspace folder, where personal data already lives, and removed after.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import AsyncIterator, Iterable, Iterator

FORMATS = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/jsonlines": "jsonl",
}


def format_of(content_type: str | None, filename: str | None = None) -> str | None:
    """Return ``csv`` or ``jsonl`` from a media type or a file name (None: the caller must say)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in FORMATS:
        return FORMATS[media]
    name = (filename or "").lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return None


@contextmanager
def staged(home: Path) -> Iterator[Path]:
    """Yield a new private folder (0700) in the workspace folder for one upload, removed with it when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix=".upload-", dir=home))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def file_name(sent: str | None, default: str) -> str:
    """Return the name to give an uploaded file: the client's base name (errors name it), or ``default``."""
    name = PurePosixPath((sent or "").replace("\\", "/")).name.strip()
    return name if name and name not in (".", "..") and "\x00" not in name else default


async def write_stream(path: Path, chunks: AsyncIterator[bytes]) -> int:
    """Write a request body's chunks to ``path``; return its size in bytes."""
    size = 0
    with open(path, "wb") as out:
        async for chunk in chunks:
            out.write(chunk)
            size += len(chunk)
    return size


def write_keys(path: Path, keys: Iterable[str]) -> None:
    """Write profile keys as JSON lines (``{"id": KEY}``), so any key, even one with a newline, reads back."""
    with open(path, "w", encoding="utf-8") as out:
        for key in keys:
            out.write(json.dumps({"id": key}, ensure_ascii=False) + "\n")
