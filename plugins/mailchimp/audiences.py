"""The audiences a Mailchimp account holds, for choosing an export's by name (read-only).

``GET /lists`` page by page, ``fields`` keeping each answer to the id, name and member count.
See docs/providers/mailchimp.md#listing-audiences.
"""

from __future__ import annotations

from typing import Any, Mapping

import requests

from segport import MAX_AUDIENCES, Audience
from segport.http import one_line

from .api import MailchimpAPI, as_object, objects_in

PAGE = 1000  # the largest page Mailchimp serves (docs/providers/mailchimp.md#pagination)
FIELDS = "lists.id,lists.name,lists.stats.member_count,total_items"


def list_audiences(session: requests.Session, config: Mapping[str, Any]) -> list[Audience]:
    """Return the account's audiences in Mailchimp's order, at most :data:`segport.MAX_AUDIENCES`.

    ``member_count`` is Mailchimp's count of subscribed members, which it caches
    (docs/providers/mailchimp.md#listing-audiences).
    """
    api = MailchimpAPI(session, config)
    audiences: list[Audience] = []
    offset = 0
    while len(audiences) < MAX_AUDIENCES:
        count = min(PAGE, MAX_AUDIENCES - len(audiences))
        page = as_object(api.call("GET", "/lists", params={"count": count, "offset": offset, "fields": FIELDS}))
        found = objects_in(page.get("lists"))
        audiences.extend(_audience(item) for item in found if item.get("id"))
        offset += len(found)
        total = page.get("total_items")
        if not found or (isinstance(total, int) and offset >= total):
            break
    return audiences[:MAX_AUDIENCES]


def _audience(item: Mapping[str, Any]) -> Audience:
    count = as_object(item.get("stats")).get("member_count")
    return Audience(
        id=one_line(item["id"]),
        name=one_line(item.get("name") or ""),
        member_count=count if type(count) is int and count >= 0 else None,
    )
