"""What several list pages share: the page number from the query, the pager's links, readable durations."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlencode

PER_PAGE = 50  # rows per page of every list in the console


@dataclass(frozen=True)
class Pager:
    """Where a list page stands: its number, how many rows match, and the links to its neighbours."""

    number: int
    total: int
    per_page: int
    previous_url: str | None
    next_url: str | None

    @property
    def pages(self) -> int:
        """How many pages the matching rows fill (at least one)."""
        return max(1, -(-self.total // self.per_page))


def page_number(text: str | None) -> int:
    """Return the page number a query asked for (``?page=3``); anything else is the first page."""
    try:
        return max(1, int(text or "1"))
    except ValueError:
        return 1


def offset_of(number: int, per_page: int = PER_PAGE) -> int:
    """Return how many rows come before page ``number``."""
    return (number - 1) * per_page


def pager(path: str, number: int, total: int, filters: Mapping[str, Any], per_page: int = PER_PAGE) -> Pager:
    """Return the pager of page ``number`` of ``total`` rows; its links keep the list's ``filters``."""
    kept = {key: value for key, value in filters.items() if value not in (None, "")}

    def link(to: int) -> str:
        return f"{path}?{urlencode({**kept, 'page': to})}"

    previous_url = link(number - 1) if number > 1 else None
    next_url = link(number + 1) if number * per_page < total else None
    return Pager(number, total, per_page, previous_url, next_url)


def duration(seconds: float | None) -> str:
    """Return ``seconds`` as ``1 h 02 min``, ``4 min 05 s``, ``12 s`` or ``0.4 s`` (empty when unknown)."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"
