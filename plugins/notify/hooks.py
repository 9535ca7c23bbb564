"""The notifier's hook implementation (entry point ``notify`` of the ``segport.hooks`` group)."""

from __future__ import annotations

import logging
import os
import smtplib
from typing import Mapping

from segport import Export, Run, RunStatus, hookimpl

from . import mail, message, webhook
from .settings import SMTP_URL, Settings, SettingsError, read_settings

logger = logging.getLogger("segport_notify")


@hookimpl
def segport_after_run(run: Run, export: Export) -> None:
    """Notify the configured webhook and recipients that ``run`` ended.

    :param run: the finished run record.
    :param export: the export that was run.
    """
    notify(run, export, os.environ)


def notify(run: Run, export: Export, environ: Mapping[str, str]) -> None:
    """Send the notifications ``environ`` asks for; never raises for a delivery or settings problem.

    Nothing is sent for a dry run (status ``planned``), nor for a succeeded run with
    ``SEGPORT_NOTIFY_ON=failed``. Each problem is one warning on the ``segport_notify`` logger.

    :param run: the finished run record.
    :param export: the export that was run.
    :param environ: where the settings are read (``os.environ``).
    """
    try:
        settings = read_settings(environ)
    except SettingsError as exc:
        logger.warning("%s", exc)
        return
    if settings is None or run.status is RunStatus.PLANNED:
        return
    if settings.on == "failed" and run.status is RunStatus.SUCCEEDED:
        return
    if settings.webhook:
        _post(settings, run, export)
    if settings.recipients:
        _mail(settings, run, export)


def _post(settings: Settings, run: Run, export: Export) -> None:
    assert settings.webhook is not None
    try:
        webhook.post(settings.webhook, message.payload(run, export), settings.webhook_secret)
    except webhook.WebhookError as exc:
        logger.warning("run %s of export %s not notified: %s", run.id, export.name, exc)


def _mail(settings: Settings, run: Run, export: Export) -> None:
    assert settings.smtp_url is not None
    try:
        server = mail.parse_smtp_url(settings.smtp_url)
    except ValueError as exc:
        logger.warning("run %s of export %s not emailed: %s", run.id, export.name, exc)
        return
    try:
        subject, text = message.subject(run, export), message.body(run, export)
        msg = mail.message(settings.sender, settings.recipients, subject, text)
        mail.send(server, msg, settings.recipients)
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        code = getattr(exc, "smtp_code", None)
        logger.warning(
            "run %s of export %s not emailed via %s (%s%s): check %s, the server and the addresses",
            run.id,
            export.name,
            server.url,
            type(exc).__name__,
            f" {code}" if code else "",
            SMTP_URL,
        )
