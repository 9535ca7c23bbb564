"""The files tests load into a workspace: profiles as CSV, segment members as one key a line."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["write_keys", "write_rows"]


def write_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """Write ``header`` and ``rows`` to the CSV file ``path`` (for ``profiles load``); return ``path``."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_keys(path: Path, keys: Iterable[str]) -> Path:
    """One profile key a line (for ``segments load``); ``path``."""
    path.write_text("".join(f"{key}\n" for key in keys), encoding="utf-8")
    return path
