"""Which addresses the Mailchimp sandbox refuses, and with which of Mailchimp's texts.

Two refusals, told apart as Mailchimp tells them (docs/providers/mailchimp.md#address-checks):

- a *malformed* address (no ``@``, spaces, no dot in the domain, ...): "Please provide a valid email
  address.";
- a well-formed address that cannot receive mail: a domain reserved by RFC 2606/6761 (``example.com``,
  ``example.net``, ``example.org`` and their subdomains, the ``.example``, ``.test``, ``.invalid`` and
  ``.localhost`` top-level names) or a local part starting ``fake``: "<email> looks fake or invalid,
  please enter a real email address.".

Mailchimp's real checks go further (role addresses, blocked domains); these are the ones a test can
rely on.
"""

from __future__ import annotations

import re

__all__ = ["INVALID_ADDRESS", "address_refusal", "is_malformed", "is_reserved"]

INVALID_ADDRESS = "Please provide a valid email address."
_WELL_FORMED = re.compile(
    r"^[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}$"
)
RESERVED_DOMAINS = ("example.com", "example.net", "example.org")  # RFC 2606 section 3
RESERVED_TLDS = ("example", "test", "invalid", "localhost")  # RFC 2606 section 2, RFC 6761 section 6


def is_malformed(email: str) -> bool:
    """Return whether ``email`` is not a well-formed address at all."""
    return not _WELL_FORMED.match(email.strip())


def is_reserved(email: str) -> bool:
    """Return whether the domain of ``email`` is reserved for documentation and tests (never delivers)."""
    domain = email.strip().rpartition("@")[2].lower().rstrip(".")
    if domain in RESERVED_DOMAINS or domain.endswith(tuple("." + d for d in RESERVED_DOMAINS)):
        return True
    return domain.rpartition(".")[2] in RESERVED_TLDS


def fake_text(email: str) -> str:
    """Return Mailchimp's refusal of an address that looks fake or invalid."""
    return f"{email} looks fake or invalid, please enter a real email address."


def address_refusal(email: str) -> tuple[str, str] | None:
    """Return ``(kind, text)`` when Mailchimp refuses ``email`` as a new member, else None.

    ``kind`` is ``malformed`` or ``fake``; ``text`` is Mailchimp's message for it.
    """
    if is_malformed(email):
        return "malformed", INVALID_ADDRESS
    if is_reserved(email) or email.strip().lower().startswith("fake"):
        return "fake", fake_text(email)
    return None
