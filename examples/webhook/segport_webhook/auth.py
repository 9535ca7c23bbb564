"""Request signing of the segport webhook protocol v1 (the protocol's own scheme, see README.md).

Every request carries ``X-Segport-Timestamp: <unix seconds>`` and ``X-Segport-Signature: sha256=<hex>``,
the HMAC-SHA256 with the connection's secret of ``"<timestamp>.<body bytes>"`` (an empty body for GET).
The secret itself never leaves this process: not in a header, a log line or an error.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Mapping

import requests

from segport import AuthHandler, FatalDestinationError, RetryableDestinationError
from segport.http import TRANSPORT_ERRORS, ApiError, one_line

from .client import WebhookClient
from .protocol import PING, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature

log = logging.getLogger(__name__)


class WebhookAuth(AuthHandler):
    """Signs each request with the connection's ``secret``; :meth:`check` pings the receiver.

    :param config: the validated connection config (``url`` and ``secret``).
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self._secret = str(config["secret"])

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        """Add the timestamp and the signature of the request's exact body."""
        timestamp = str(int(time.time()))
        request.headers[TIMESTAMP_HEADER] = timestamp
        request.headers[SIGNATURE_HEADER] = signature(self._secret, timestamp, _body_bytes(request.body))
        return request

    def check(self, session: requests.Session) -> str:
        """``GET /ping`` answers ``{"account": ...}`` to a correctly signed request.

        :param session: a session carrying this handler.
        :raises segport.AuthError: the receiver refused the signature (401/403).
        :raises segport.DestinationError: the receiver is unreachable or did not answer as the protocol says.
        """
        client = WebhookClient(session, self.config)
        try:
            answer = client.call("GET", PING)
        except TRANSPORT_ERRORS as exc:
            raise RetryableDestinationError(
                f"cannot reach the webhook receiver at {client.host} ({type(exc).__name__}): check the connection's "
                "url and that the receiver is running"
            ) from None
        except ApiError as exc:
            if exc.status == 404:
                raise FatalDestinationError(
                    f"no segport webhook receiver at {client.base_url} (GET /ping answered 404): "
                    "check the connection's url"
                ) from None
            raise
        account = answer.get("account") if isinstance(answer, dict) else None
        if not isinstance(account, str) or not account.strip():
            raise FatalDestinationError(
                f"{client.base_url} did not answer GET /ping like a segport webhook receiver (protocol v1): "
                "check the connection's url"
            )
        log.debug("webhook receiver at %s answered the ping", client.host)
        return f"webhook receiver {one_line(account, 100)!r} at {client.host}"


def _body_bytes(body: Any) -> bytes:
    """Return the bytes a prepared request sends: what the signature covers."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    raise TypeError(f"cannot sign a streamed request body ({type(body).__name__}): send bytes")
