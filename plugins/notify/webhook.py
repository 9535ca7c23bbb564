"""POST a notification to a webhook, signed with HMAC-SHA256 when a secret is set."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests

from segport import __version__

from .urls import is_loopback, redact

TIMEOUT = 10.0  # seconds, to connect and to read the answer
RETRY_DELAY = 1.0  # seconds before the one retry
SIGNATURE_HEADER = "X-Segport-Signature"
TIMESTAMP_HEADER = "X-Segport-Timestamp"  # signed with the body, so a captured request cannot be replayed later


class WebhookError(Exception):
    """The notification was not delivered; the message is one line without secrets."""


def check_url(url: str) -> None:
    """Accept https URLs, and http ones for loopback hosts only.

    :raises WebhookError: any other URL (the message holds the redacted URL and the fix).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or not parts.hostname or parts.scheme not in ("https", "http"):
        raise WebhookError(f"SEGPORT_NOTIFY_WEBHOOK is not an http(s) URL ({redact(url)}): set an https:// URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise WebhookError(
            f"SEGPORT_NOTIFY_WEBHOOK {redact(url)} is not https: not sending the run over plain http; use "
            "https:// (http:// is accepted for 127.0.0.1, localhost and ::1 only)"
        )


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """Return the ``X-Segport-Signature`` value of a webhook body.

    It is ``sha256=`` and the hex HMAC-SHA256 of ``b"<timestamp>." + body`` keyed with ``secret``.

    :param body: the exact bytes sent.
    :param secret: the shared secret (UTF-8 encoded as the key).
    :param timestamp: Unix seconds, sent as ``X-Segport-Timestamp``; receivers refuse old ones.
    """
    signed = str(timestamp).encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def post(url: str, payload: Mapping[str, Any], secret: str | None = None) -> None:
    """POST ``payload`` as JSON; retry once after a connection error or a 5xx answer. Redirects are not followed.

    :param url: the webhook URL (checked with :func:`check_url`).
    :param payload: the JSON object to send.
    :param secret: if set, the body is signed (header ``X-Segport-Signature``).
    :raises WebhookError: the URL is refused, or the receiver could not be reached or did not answer 2xx.
    """
    check_url(url)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": f"segport/{__version__}"}
    if secret:
        timestamp = int(time.time())
        headers[TIMESTAMP_HEADER] = str(timestamp)
        headers[SIGNATURE_HEADER] = sign(body, secret, timestamp)
    problem = ""
    for attempt in range(2):
        if attempt:
            time.sleep(RETRY_DELAY)
        try:
            response = requests.post(url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)
        except requests.ConnectionError as exc:
            problem = f"could not be reached ({type(exc).__name__})"
            continue
        except requests.RequestException as exc:  # a read timeout, ...: the receiver may have it, no retry
            raise WebhookError(f"webhook {redact(url)} failed ({type(exc).__name__})") from None
        status = response.status_code
        response.close()
        if status < 300:
            return
        problem = f"answered HTTP {status}"
        if status < 500:
            break
    else:
        problem += " twice"
    raise WebhookError(f"webhook {redact(url)} {problem}")
