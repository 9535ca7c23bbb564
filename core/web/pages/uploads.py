"""Files sent from a browser form, kept on disk under their own name while a service reads them."""

from __future__ import annotations

import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fastapi import UploadFile

from ...errors import InputError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def upload_name(filename: str | None) -> str:
    """Return a safe basename for an uploaded file (its extension kept: it tells CSV from JSONL and gzip)."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    safe = _UNSAFE.sub("_", base).strip("._")
    return safe[:120] or "upload"


@contextmanager
def saved_upload(upload: UploadFile | None, field: str) -> Iterator[Path]:
    """Yield the path of ``upload`` written to a private temporary folder, removed afterwards.

    :raises InputError: no file was chosen (``param`` is the form field).
    """
    if upload is None or not upload.filename:
        raise InputError("choose a file to upload", param=field)
    folder = Path(tempfile.mkdtemp(prefix="segport-upload-"))
    try:
        path = folder / upload_name(upload.filename)
        with path.open("wb") as out:
            shutil.copyfileobj(upload.file, out, 1024 * 1024)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)
