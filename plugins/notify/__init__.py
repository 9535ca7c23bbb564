"""segport notifications: after each run, POST it to a webhook and/or email a short summary.

Ships under the ``segport.hooks`` entry point ``notify`` (module :mod:`segport_notify.hooks`), so
every segport process loads it; with none of the variables below set it does nothing.
Configuration is read from the environment at each run:

- ``SEGPORT_NOTIFY_WEBHOOK=https://...``: POST ``{"event": "run.finished", "export": {...},
  "run": {...}}`` as JSON (10 s timeout, one retry on a connection error or a 5xx answer).
  ``http://`` only for 127.0.0.1, localhost or ::1.
- ``SEGPORT_NOTIFY_WEBHOOK_SECRET``: sign the body; header
  ``X-Segport-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with the secret>``.
- ``SEGPORT_NOTIFY_EMAIL=ops@example.com,other@example.com`` with
  ``SEGPORT_SMTP_URL=smtp://[user[:password]@]host[:port][?starttls=1]`` or ``smtps://...``
  (user and password percent-encoded), and ``SEGPORT_NOTIFY_FROM`` (default ``segport@<hostname>``).
- ``SEGPORT_NOTIFY_ON=always|failed`` (default ``always``; ``failed``: runs that did not succeed).

Dry runs are never notified. A notification that cannot be sent never fails the run: one
warning line is logged on the ``segport_notify`` logger, without secrets.
"""

__all__: list[str] = []
