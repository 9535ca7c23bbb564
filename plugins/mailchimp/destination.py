"""The Mailchimp destination: segments land as tags on members of an audience."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

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

from .api import base_url
from .audiences import list_audiences
from .auth import MailchimpAuth, MailchimpOAuth
from .writer import MailchimpWriter

# 500 members per batch call and per tag add/remove list (docs/providers/mailchimp.md#batch-size);
# 10 simultaneous connections per user, shared by all apps of that user
# (docs/providers/mailchimp.md#connection-limit).
LIMITS = Limits(batch_size=500, max_concurrency=10)
FIELDS = FieldSpec(
    known={"FNAME": "First name", "LNAME": "Last name", "PHONE": "Phone number", "BIRTHDAY": "Birthday (MM/DD)"},
    allow_other=True,  # any merge field of the audience, checked before sending
    pattern=r"^[A-Za-z0-9_]{1,10}$",  # merge tags: limit UNCONFIRMED (docs/providers/mailchimp.md#merge-tag-length)
)


class MailchimpDestination(Destination):
    """Mailchimp Marketing API v3: members of an audience, one tag per exported segment."""

    name = "mailchimp"
    title = "Mailchimp"

    def spec(self) -> DestinationSpec:
        """Return the schemas of ``spec.json``, the merge fields and the API's limits."""
        return spec_from_package(
            "segport_mailchimp",
            fields=FIELDS,
            limits=LIMITS,
            auth_methods=("api_key", "oauth2"),
            documentation_url="https://mailchimp.com/developer/marketing/api/",
        )

    def auth(self, config: Mapping[str, Any]) -> AuthHandler:
        """Return the API key or OAuth token handler for ``config``."""
        return MailchimpAuth(config)

    def writer(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> BatchWriter:
        """Return a writer upserting each batch into the export's audience."""
        return MailchimpWriter(session, config, context)

    def base_url(self, config: Mapping[str, Any]) -> str | None:
        """Return the API root: the override, the OAuth endpoint, or the key's data center."""
        return base_url(config)

    def target(self, options: Mapping[str, Any]) -> str:
        """Return the audience and the tag names: another of either means nothing was delivered there."""
        return f"{options.get('audience_id')}|{options.get('tag_prefix', '')}"

    def audience(self, options: Mapping[str, Any]) -> str:
        """Return the audience id: the sync ledger keeps Mailchimp statuses per audience."""
        return str(options.get("audience_id"))

    def markers(self, options: Mapping[str, Any], segments: Sequence[str]) -> dict[str, str]:
        """Return each segment's tag: ``tag_prefix`` + segment name (docs/providers/mailchimp.md#tags)."""
        prefix = str(options.get("tag_prefix", ""))
        return {segment: prefix + segment for segment in segments}

    def oauth(self, config: Mapping[str, Any]) -> OAuth2Flow | None:
        """Return the authorization-code flow for an ``oauth2`` connection, else None."""
        return MailchimpOAuth() if config.get("auth_method") == "oauth2" else None

    def list_audiences(self, session: requests.Session, config: Mapping[str, Any]) -> list[Audience]:
        """Return the audiences: ``GET /lists`` page by page (docs/providers/mailchimp.md#listing-audiences)."""
        return list_audiences(session, config)
