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
        return spec_from_package("segport_webhook", fields=FIELDS, limits=LIMITS, auth_methods=("hmac_signature",))

    def auth(self, config: Mapping[str, Any]) -> AuthHandler:
        return WebhookAuth(config)

    def writer(self, session: requests.Session, config: Mapping[str, Any], context: RunContext) -> BatchWriter:
        return WebhookWriter(session, config, context)

    def base_url(self, config: Mapping[str, Any]) -> str | None:
        return str(config["url"]).rstrip("/") if config.get("url") else None

    def target(self, options: Mapping[str, Any]) -> str:
        """The audience is the target: the receiver keys its members per audience."""
        return str(options.get("audience"))
