"""The wire facts of the segport webhook protocol v1, shared by the client and the reference receiver.

Everything here is the protocol's own definition (there is no third-party platform behind it; see
README.md, "segport webhook protocol v1"). Standard library only, so the receiver needs nothing else.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Segport-Timestamp"  # unix seconds, as a decimal integer
SIGNATURE_HEADER = "X-Segport-Signature"  # "sha256=" + hex HMAC-SHA256 of "<timestamp>.<body bytes>"
SIGNATURE_PREFIX = "sha256="
TOLERANCE_S = 300  # a receiver refuses a timestamp further than this from its clock (401)
MAX_MEMBERS = 500  # members in one batch call; more is 413
MAX_ID_LENGTH = 128  # the longest member id a receiver must accept
STATUSES = ("created", "updated", "unchanged", "rejected")  # the result statuses of a member

PING = "/ping"
AUDIENCE = "/audiences/{audience}"
BATCH = "/audiences/{audience}/members:batch"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Return the ``X-Segport-Signature`` value of a request.

    :param secret: the connection's shared secret.
    :param timestamp: the ``X-Segport-Timestamp`` value sent with the request.
    :param body: the exact body bytes sent (empty for a GET).
    """
    message = timestamp.encode("ascii") + b"." + body
    return SIGNATURE_PREFIX + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def normalise_email(email: str) -> str:
    """Return the identity form of an address: trimmed and lower-cased.

    :param email: an address in any case, possibly padded.
    """
    return email.strip().lower()


def member_id(email: str) -> str:
    """Return a member's id: the lower-case hex SHA-256 of the normalised address.

    :param email: the member's address (normalised here).
    """
    return hashlib.sha256(normalise_email(email).encode("utf-8")).hexdigest()
