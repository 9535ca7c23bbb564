"""The receiver's API as a :class:`segport.http.ApiClient`, and the protocol's failures as segport errors.

The mapping of statuses is the protocol's own (README.md, "Errors"): 401/403 refuse the signature,
429 and 5xx are transient (``Retry-After`` in seconds), 3xx is refused (a redirect would carry the
signature headers to another host), anything else is final. Callers decide what a 404 or a 400 means
(a :class:`segport.http.ApiError` carries the status).
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import urlsplit

import requests

from segport import AuthError, FatalDestinationError, RetryableDestinationError, SegportError
from segport.http import ApiClient, ApiError, json_object, one_line, retry_after

TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
DETAIL_CHARS = 200  # the most of a receiver's error text an operator message quotes


class WebhookClient(ApiClient):
    """Calls one receiver through a session that already carries :class:`~segport_webhook.auth.WebhookAuth`.

    :param session: the engine's session (the auth handler signs every request, over the exact body bytes).
    :param config: the validated connection config (``url`` and ``secret``).
    """

    platform = "the webhook receiver"
    follow_redirects = False  # a redirect would carry the signature headers to another host

    def __init__(self, session: requests.Session, config: Mapping[str, Any]) -> None:
        super().__init__(session, str(config["url"]), timeout=TIMEOUT, secrets=[config.get("secret")])
        self.host = urlsplit(self.base_url).netloc

    def describe(self, body: Mapping[str, Any]) -> str:
        """Return the receiver's ``error`` text, at most :data:`DETAIL_CHARS` characters."""
        text = body.get("error")
        return one_line(text, DETAIL_CHARS) if isinstance(text, str) else ""

    def error(self, response: requests.Response, call: str) -> SegportError:
        """Return the protocol's error for a failed answer to ``call`` (e.g. ``GET /ping``).

        :param response: an answer that is not 2xx.
        :param call: the call, for the message.
        """
        status, body = response.status_code, json_object(response)
        detail = self.detail(body)
        shown = f"{status}: {detail}" if detail else str(status)
        if status in (401, 403):
            return AuthError(
                f"the webhook receiver at {self.host} refused the signature of {call} ({shown}): check that "
                "the connection's secret is the receiver's and that this host's clock is right, then run "
                "'segport connections test NAME'"
            )
        if status == 429 or status >= 500:
            return RetryableDestinationError(
                f"the webhook receiver at {self.host} answered {call} with {shown}", retry_after=retry_after(response)
            )
        if 300 <= status < 400:
            return FatalDestinationError(
                f"the webhook receiver at {self.host} answered {call} with a redirect ({status}): "
                "set the connection's url to the receiver's final address"
            )
        message = f"the webhook receiver at {self.host} answered {call} with {shown}"
        return ApiError(message, status=status, call=call, body=body, detail=detail)
