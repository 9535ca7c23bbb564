"""The notification settings, read from the environment when a run ends."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Mapping

WEBHOOK = "SEGPORT_NOTIFY_WEBHOOK"
WEBHOOK_SECRET = "SEGPORT_NOTIFY_WEBHOOK_SECRET"
EMAIL = "SEGPORT_NOTIFY_EMAIL"
SMTP_URL = "SEGPORT_SMTP_URL"
FROM = "SEGPORT_NOTIFY_FROM"
ON = "SEGPORT_NOTIFY_ON"
ON_VALUES = ("always", "failed")


class SettingsError(ValueError):
    """A notification variable has a value that cannot be used; the message names it and the fix."""


@dataclass(frozen=True)
class Settings:
    """What to notify, where. Secrets are kept out of ``repr``."""

    on: str
    webhook: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    recipients: tuple[str, ...] = ()
    smtp_url: str | None = field(default=None, repr=False)
    sender: str = ""


def read_settings(environ: Mapping[str, str]) -> Settings | None:
    """Return the settings in ``environ``, or None when neither a webhook nor an email recipient is set.

    :param environ: the environment (``os.environ``).
    :raises SettingsError: ``SEGPORT_NOTIFY_ON`` is not ``always`` or ``failed``, or email is asked
        for without ``SEGPORT_SMTP_URL``.
    """
    webhook = environ.get(WEBHOOK, "").strip() or None
    recipients = tuple(r.strip() for r in environ.get(EMAIL, "").split(",") if r.strip())
    if webhook is None and not recipients:
        return None
    on = environ.get(ON, "").strip().lower() or "always"
    if on not in ON_VALUES:
        raise SettingsError(
            f"{ON}={environ.get(ON, '')!r} is not one of {', '.join(ON_VALUES)}: no notification sent; "
            f"fix {ON} (or unset it for 'always')"
        )
    smtp_url = environ.get(SMTP_URL, "").strip() or None
    if recipients and smtp_url is None:
        raise SettingsError(
            f"{EMAIL} is set but {SMTP_URL} is not: no notification sent; set {SMTP_URL}="
            "smtp://host:port (or smtps://user:password@host) or unset " + EMAIL
        )
    return Settings(
        on=on,
        webhook=webhook,
        webhook_secret=environ.get(WEBHOOK_SECRET) or None,
        recipients=recipients,
        smtp_url=smtp_url,
        sender=environ.get(FROM, "").strip() or f"segport@{socket.gethostname()}",
    )
