"""The Campaign Monitor destination: subscribers of a list, membership in a custom field."""

from __future__ import annotations

from typing import Any, Mapping

import requests

from segport import (
    Audience,
    AuthHandler,
    BatchWriter,
    Destination,
    DestinationSpec,
    FieldSpec,
    Limits,
    OAuth2Flow,
    RunContext,
    spec_from_package,
)

from .audiences import list_audiences
from .auth import CampaignMonitorAuth, CampaignMonitorOAuth
from .writer import CONSENT, DEFAULT_SEGMENT_FIELD, CampaignMonitorWriter, consent_source

# 1,000 subscribers per import (docs/providers/campaignmonitor.md#import-size). No concurrency limit is
# documented for list/subscriber endpoints (UNCONFIRMED); 4 in flight keeps one list's imports few
# while 429s are retried with backoff (docs/providers/campaignmonitor.md#rate-limits).
LIMITS = Limits(batch_size=1000, max_concurrency=4)
FIELDS = FieldSpec(
    known={"Name": "Subscriber name: one attribute, or first+last (e.g. --map Name=first_name+last_name)"},
    allow_other=True,  # any custom field of the list, checked before sending
    pattern=r"^[^\[\]]{1,100}$",
)


class CampaignMonitorDestination(Destination):
    """Campaign Monitor API v3.3: subscribers of a list, one MultiSelectMany option per segment."""

    name = "campaignmonitor"
    title = "Campaign Monitor"

    def spec(self) -> DestinationSpec:
        """Return the schemas of ``spec.json``, the subscriber fields and the API's limits."""
        return spec_from_package(
            "segport_campaignmonitor",
            fields=FIELDS,
            limits=LIMITS,
            auth_methods=("api_key", "oauth2"),
            documentation_url="https://www.campaignmonitor.com/api/v3-3/",
        )

    def auth(self, config: Mapping[str, Any]) -> AuthHandler:
        """Return the API key or OAuth token handler for ``config``."""
        return CampaignMonitorAuth(config)

    def writer(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> BatchWriter:
        """Return a writer importing each batch into the export's list."""
        return CampaignMonitorWriter(session, config, context)

    def base_url(self, config: Mapping[str, Any]) -> str | None:
        """Return ``api_base_url``, else the public API v3.3."""
        return str(config.get("api_base_url") or "https://api.createsend.com/api/v3.3")

    def extra_fields(self, options: Mapping[str, Any]) -> Mapping[str, str]:
        """Return the consent field's attribute when the export's options name one."""
        source = consent_source(options)
        return {CONSENT: source} if source else {}

    def target(self, options: Mapping[str, Any]) -> str:
        """Return the list and its membership field: another of either means nothing was delivered there."""
        return f"{options.get('list_id')}|{options.get('segment_field', DEFAULT_SEGMENT_FIELD)}"

    def oauth(self, config: Mapping[str, Any]) -> OAuth2Flow | None:
        """Return the web-server flow for an ``oauth2`` connection, else None."""
        return CampaignMonitorOAuth() if config.get("auth_method") == "oauth2" else None

    def list_audiences(self, session: requests.Session, config: Mapping[str, Any]) -> list[Audience]:
        """Return the lists of the clients the credentials see (docs/providers/campaignmonitor.md#listing-lists)."""
        return list_audiences(session, config)
