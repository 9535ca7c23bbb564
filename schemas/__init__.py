"""JSON Schemas of segport's own documents, shipped as package data."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any


@cache
def load(name: str) -> dict[str, Any]:
    """Return the schema ``<name>.schema.json`` of this package."""
    text = files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    result: dict[str, Any] = json.loads(text)
    return result
