"""The lists a Campaign Monitor key can write to, for choosing an export's by name (read-only).

``GET /clients.json`` names the clients the credentials see (all of the account's with an account
key, its own with a client key); ``GET /clients/{clientid}/lists.json`` names each one's lists.
See docs/providers/campaignmonitor.md#listing-lists.
"""

from __future__ import annotations

from typing import Any, Mapping

import requests

from segport import MAX_AUDIENCES, Audience
from segport.http import one_line

from .api import CampaignMonitorAPI


def list_audiences(session: requests.Session, config: Mapping[str, Any]) -> list[Audience]:
    """Return the lists of every client the credentials see, client by client, at most :data:`segport.MAX_AUDIENCES`.

    With several clients a list's name carries its client's (``Newsletter (Acme)``). Member counts
    are not given: Campaign Monitor answers them one list at a time (docs/providers/campaignmonitor.md#listing-lists).
    """
    api = CampaignMonitorAPI(session, config)
    clients = [c for c in _objects(api.call("GET", "/clients")) if c.get("ClientID")]
    audiences: list[Audience] = []
    for client in clients:
        if len(audiences) >= MAX_AUDIENCES:
            break
        lists = _objects(api.call("GET", "/clients/{client_id}/lists", client_id=client["ClientID"]))
        suffix = f" ({one_line(client.get('Name') or client['ClientID'])})" if len(clients) > 1 else ""
        audiences.extend(
            Audience(id=one_line(item["ListID"]), name=one_line(item.get("Name") or "") + suffix)
            for item in lists
            if item.get("ListID")
        )
    return audiences[:MAX_AUDIENCES]


def _objects(answer: Any) -> list[Mapping[str, Any]]:
    return [item for item in answer if isinstance(item, Mapping)] if isinstance(answer, list) else []
