"""The webhook destination: segport POSTs each batch as signed JSON to a receiver the user runs."""

from __future__ import annotations

from typing import Any, Mapping

import requests

from segport import (
    AuthHandler,
    BatchWriter,
    Destination,
    DestinationSpec,
    FieldSpec,
    Limits,
    RunContext,
    spec_from_package,
)

from .auth import WebhookAuth
from .protocol import MAX_MEMBERS
from .writer import WebhookWriter

# The protocol's own limits (README.md): a receiver takes up to 500 members per call and must
# serve 4 calls at once per sender.
LIMITS = Limits(batch_size=MAX_MEMBERS, max_concurrency=4)
FIELDS = FieldSpec(
    known={"first_name": "The member's first name", "last_name": "The member's last name"},
    allow_other=True,  # the receiver stores any field name it is sent
)


class WebhookDestination(Destination):
    """Any receiver of the segport webhook protocol v1 (the user's own service)."""

    name = "webhook"
    title = "Webhook (HTTP JSON)"

    def spec(self) -> DestinationSpec:
        """Return the schemas of ``spec.json``, the member fields and the receiver's limits."""
        return spec_from_package("segport_webhook", fields=FIELDS, limits=LIMITS, auth_methods=("hmac_signature",))

    def auth(self, config: Mapping[str, Any]) -> AuthHandler:
        """Return the handler signing each request with the connection's shared secret."""
        return WebhookAuth(config)

    def writer(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> BatchWriter:
        """Return a writer posting each batch of members to the receiver."""
        return WebhookWriter(session, config, context)

    def base_url(self, config: Mapping[str, Any]) -> str | None:
        """Return the receiver's URL, without a trailing slash."""
        return str(config["url"]).rstrip("/") if config.get("url") else None

    def target(self, options: Mapping[str, Any]) -> str:
        """Return the audience: the receiver keys its members per audience."""
        return str(options.get("audience"))
