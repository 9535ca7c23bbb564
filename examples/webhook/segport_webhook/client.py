"""One signed call to a webhook receiver, and the protocol's failures as segport errors.

The mapping of statuses is the protocol's own (README.md, "Errors"): 401/403 refuse the signature,
429 and 5xx are transient (``Retry-After`` in seconds), 3xx is refused (a redirect would carry the
signature headers to another host), anything else is final. Callers decide what a 404 or a 400 means.
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import urlsplit

import requests

from segport import AuthError, FatalDestinationError, RetryableDestinationError, SegportError
from segport.http import json_object, retry_after

TIMEOUT = (10.0, 60.0)  # connect, read (seconds)
DETAIL_CHARS = 200  # the most of a receiver's error text an operator message quotes


def one_line(value: Any, limit: int = DETAIL_CHARS) -> str:
    """A value from an answer as one short line: segport's messages are one line.

    :param value: any JSON value the receiver sent.
    :param limit: the most characters kept.
    """
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def succeeded(response: requests.Response) -> bool:
    """Whether the answer is 2xx (``response.ok`` also holds for a redirect, which segport does not follow).

    :param response: any answer.
    """
    return 200 <= response.status_code < 300


class WebhookClient:
    """Calls one receiver through a session that already carries :class:`~segport_webhook.auth.WebhookAuth`.

    :param session: the engine's session (the auth handler signs every request).
    :param config: the validated connection config (``url`` and ``secret``).
    """

    def __init__(self, session: requests.Session, config: Mapping[str, Any]) -> None:
        self.session = session
        self.root = str(config["url"]).rstrip("/")
        self.host = urlsplit(self.root).netloc
        self._secret = str(config.get("secret") or "")

    def get(self, path: str) -> requests.Response:
        """``GET <url><path>`` (signed with an empty body).

        :param path: the protocol path, already quoted.
        """
        return self.session.get(self.root + path, timeout=TIMEOUT, allow_redirects=False)

    def post(self, path: str, body: bytes) -> requests.Response:
        """``POST <url><path>`` with a JSON body (signed over exactly these bytes).

        :param path: the protocol path, already quoted.
        :param body: the encoded JSON document.
        """
        headers = {"Content-Type": "application/json"}
        return self.session.post(self.root + path, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)

    def detail(self, response: requests.Response) -> str:
        """The receiver's ``error`` text as ``": <text>"`` (empty when it sent none), never the secret.

        :param response: a failed answer.
        """
        text = json_object(response).get("error")
        if not isinstance(text, str) or not text.strip():
            return ""
        line = one_line(text)
        return ": " + (line.replace(self._secret, "********") if self._secret else line)

    def failure(self, response: requests.Response, what: str) -> SegportError:
        """The segport error for a failed answer to ``what`` (e.g. ``"GET /ping"``).

        :param response: an answer that is not 2xx.
        :param what: the call, for the message.
        """
        status, detail = response.status_code, self.detail(response)
        if status in (401, 403):
            return AuthError(
                f"the webhook receiver at {self.host} refused the signature of {what} ({status}{detail}): check that "
                "the connection's secret is the receiver's and that this host's clock is right, then run "
                "'segport connections test NAME'"
            )
        if status == 429 or status >= 500:
            return RetryableDestinationError(
                f"the webhook receiver at {self.host} answered {what} with {status}{detail}",
                retry_after=retry_after(response),
            )
        if 300 <= status < 400:
            return FatalDestinationError(
                f"the webhook receiver at {self.host} answered {what} with a redirect ({status}): "
                "set the connection's url to the receiver's final address"
            )
        return FatalDestinationError(f"the webhook receiver at {self.host} answered {what} with {status}{detail}")
