"""Send a plain-text notification email with the standard library's smtplib."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from .urls import is_loopback, redact

TIMEOUT = 10.0
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to submit mail, from ``SEGPORT_SMTP_URL``. The password is kept out of ``repr``."""

    url: str  # redacted: scheme://host:port
    host: str
    port: int
    tls: bool  # smtps: TLS from the first byte
    starttls: bool
    user: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpServer:
    """Read ``smtp://[user[:password]@]host[:port][?starttls=1]`` or ``smtps://...``.

    Ports default to 25 (smtp), 587 (smtp with STARTTLS) and 465 (smtps). User and password are
    percent-decoded. Credentials over plain smtp are refused unless the host is loopback.

    :param url: the value of ``SEGPORT_SMTP_URL``.
    :raises ValueError: the URL cannot be used; the message never holds the password.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("SEGPORT_SMTP_URL is malformed: use smtp://[user[:password]@]host[:port]") from None
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"SEGPORT_SMTP_URL must be smtp://host[:port] or smtps://host[:port] (not {redact(url)})")
    options = {name: values[-1].strip().lower() for name, values in parse_qs(parts.query, True).items()}
    unknown = sorted(set(options) - {"starttls"})
    flag = options.get("starttls", "")
    if unknown or flag not in _TRUE + _FALSE:
        raise ValueError("SEGPORT_SMTP_URL's only option is ?starttls=1 (or 0)")
    tls = parts.scheme == "smtps"
    starttls = not tls and flag in _TRUE
    server = SmtpServer(
        url=redact(url),
        host=parts.hostname,
        port=port or (465 if tls else 587 if starttls else 25),
        tls=tls,
        starttls=starttls,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
    if server.user and not (tls or starttls or is_loopback(server.host)):
        raise ValueError(
            f"SEGPORT_SMTP_URL {server.url} would send the SMTP password unencrypted: use smtps:// or add ?starttls=1"
        )
    return server


def message(sender: str, recipients: tuple[str, ...], subject: str, body: str) -> EmailMessage:
    """Build a plain-text UTF-8 email.

    :param sender: the From address.
    :param recipients: the To addresses.
    :param subject: one line.
    :param body: the text.
    """
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    msg.set_content(body)
    return msg


def send(server: SmtpServer, msg: EmailMessage, recipients: tuple[str, ...]) -> None:
    """Submit ``msg`` to ``recipients`` through ``server`` (TLS certificates verified).

    :raises smtplib.SMTPException: the server refused (login, sender, recipients, data).
    :raises OSError: the server could not be reached, or TLS failed.
    """
    context = ssl.create_default_context()
    smtp = (
        smtplib.SMTP_SSL(server.host, server.port, timeout=TIMEOUT, context=context)
        if server.tls
        else smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
    )
    with smtp:
        smtp.ehlo()
        if server.starttls:
            smtp.starttls(context=context)
            smtp.ehlo()
        if server.user:
            smtp.login(server.user, server.password or "")
        smtp.send_message(msg, to_addrs=list(recipients))
