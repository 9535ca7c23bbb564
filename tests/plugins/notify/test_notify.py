"""The notification hook plugin: a signed webhook POST and/or an email after each run, never failing it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socketserver
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import entry_points
from typing import Any, Iterator

import pytest
import requests

from segport import Run, RunStatus, UnknownAudienceError, Workspace
from segport.plugins import make_manager
from segport.testing.fakes import MemoryPlatform
from segport.testing.ports import free_port
from segport_notify import hooks, mail, message, settings, urls, webhook

EXPORT = "vip-news"
WEBHOOK_SECRET = "whsec-canary-5f1d0c"
SMTP_PASSWORD = "p@ss:canary/9e2b"  # needs percent-encoding in the URL
SMTP_URL_PASSWORD = "p%40ss%3Acanary%2F9e2b"


# --- receivers --------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class HttpReceiver:
    """A webhook receiver on 127.0.0.1 answering the queued statuses (then 200)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(Received(self.path, dict(self.headers), body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/segport"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def json(self, i: int = -1) -> Any:
        return json.loads(self.received[i].body)


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    data: bytes
    login: tuple[str, str] | None

    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpReceiver:
    """Just enough SMTP (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) to receive what smtplib submits."""

    refuse_login: bool = False
    mails: list[Mail] = field(default_factory=list)
    server: Any = None

    def start(self) -> SmtpReceiver:
        receiver = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                sender, recipients, login = "", [], None
                self.reply("220 test ESMTP")
                while line := self.rfile.readline().decode().rstrip("\r\n"):
                    verb, _, arg = line.partition(" ")
                    verb = verb.upper()
                    if verb == "EHLO":
                        self.reply("250-test\r\n250-AUTH PLAIN\r\n250 8BITMIME")
                    elif verb == "AUTH":
                        _, user, password = base64.b64decode(arg.split()[1]).decode().split("\0")
                        if receiver.refuse_login:
                            self.reply("535 5.7.8 Authentication credentials invalid")
                        else:
                            login = (user, password)
                            self.reply("235 2.7.0 OK")
                    elif verb == "MAIL":
                        sender = arg.split(":", 1)[1].split()[0].strip("<>")
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        recipients.append(arg.split(":", 1)[1].strip().strip("<>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        data = b""
                        while (chunk := self.rfile.readline()) != b".\r\n":
                            data += chunk[1:] if chunk.startswith(b"..") else chunk
                        receiver.mails.append(Mail(sender, recipients, data, login))
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 OK" if verb in ("RSET", "NOOP") else "502 no")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@pytest.fixture(autouse=True)
def _no_proxy_no_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(webhook, "RETRY_DELAY", 0.0)


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    http = HttpReceiver()
    http.thread.start()
    yield http
    http.server.shutdown()
    http.server.server_close()
    http.thread.join()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    server = SmtpReceiver().start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def hooked(receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> HttpReceiver:
    """The webhook receiver, configured with a secret."""
    monkeypatch.setenv("SEGPORT_NOTIFY_WEBHOOK", receiver.url)
    monkeypatch.setenv("SEGPORT_NOTIFY_WEBHOOK_SECRET", WEBHOOK_SECRET)
    return receiver


@pytest.fixture
def mailed(smtp: SmtpReceiver, monkeypatch: pytest.MonkeyPatch) -> SmtpReceiver:
    """The SMTP receiver, configured with a login, two recipients and a sender."""
    monkeypatch.setenv("SEGPORT_NOTIFY_EMAIL", "ops@example.com, oncall@example.com")
    monkeypatch.setenv("SEGPORT_SMTP_URL", f"smtp://alerts:{SMTP_URL_PASSWORD}@127.0.0.1:{smtp.port}")
    monkeypatch.setenv("SEGPORT_NOTIFY_FROM", "segport@acme.test")
    return smtp


@pytest.fixture
def ws(hooked_ws: Any) -> Workspace:
    """A workspace with the notifier registered as a hook plugin and an export of 12 profiles."""
    workspace: Workspace = hooked_ws(hooks, export=EXPORT)
    return workspace


def fail_run(ws: Workspace, platform: MemoryPlatform) -> None:
    platform.audiences = {"other"}
    with pytest.raises(UnknownAudienceError):
        ws.run_export(EXPORT)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    records = [r for r in caplog.records if r.name == "segport_notify"]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in records)
    return [r.getMessage() for r in records]


# --- off by default ---------------------------------------------------------------------------


def test_nothing_is_sent_when_nothing_is_configured(
    ws: Workspace,
    receiver: HttpReceiver,
    smtp: SmtpReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("SEGPORT_NOTIFY_ON", "bogus")  # not even read without a channel
    monkeypatch.setenv("SEGPORT_SMTP_URL", f"smtp://127.0.0.1:{smtp.port}")
    ws.run_export(EXPORT)
    assert receiver.received == [] and smtp.mails == []
    assert not caplog.records


def test_the_plugin_is_declared_and_autoloads(receiver: HttpReceiver) -> None:
    declared = {ep.name: ep.value for ep in entry_points(group="segport.hooks")}
    assert declared["notify"] == "segport_notify.hooks"
    assert make_manager().get_plugin("notify") is hooks


# --- webhook ----------------------------------------------------------------------------------


def test_a_succeeded_run_is_posted_signed(
    ws: Workspace, hooked: HttpReceiver, platform: MemoryPlatform, caplog: pytest.LogCaptureFixture
) -> None:
    platform.reject_emails = {"user3@example.com": "spam trap"}
    run = ws.run_export(EXPORT)

    [post] = hooked.received
    assert post.path == "/hooks/segport"
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["User-Agent"].startswith("segport/")
    body = json.loads(post.body)
    assert body["event"] == "run.finished"
    assert body["export"] == {"name": EXPORT, "connection": "Newsletter", "segments": ["all"]}
    assert body["run"] == json.loads(json.dumps(run.to_dict()))
    assert body["run"]["counts"]["rejected"] == 1
    # what a receiver does: recompute the HMAC of the raw body and compare in constant time
    timestamp = post.headers["X-Segport-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    signed = timestamp.encode() + b"." + post.body
    expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(post.headers["X-Segport-Signature"], expected)
    assert WEBHOOK_SECRET.encode() not in post.body
    assert warnings(caplog) == []


def test_without_a_secret_there_is_no_signature(
    ws: Workspace, hooked: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEGPORT_NOTIFY_WEBHOOK_SECRET")
    ws.run_export(EXPORT)
    assert "X-Segport-Signature" not in hooked.received[0].headers


def test_a_failed_run_is_posted(ws: Workspace, hooked: HttpReceiver, platform: MemoryPlatform) -> None:
    fail_run(ws, platform)
    run = hooked.json()["run"]
    assert run["status"] == "failed" and "aud1" in run["error"]


def test_a_5xx_is_retried_once(ws: Workspace, hooked: HttpReceiver, caplog: pytest.LogCaptureFixture) -> None:
    hooked.statuses = [502]
    ws.run_export(EXPORT)
    assert len(hooked.received) == 2 and hooked.received[0].body == hooked.received[1].body
    assert warnings(caplog) == []


def test_two_5xx_warn_once_and_the_run_succeeds(
    ws: Workspace, hooked: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    hooked.statuses = [503, 503]
    assert ws.run_export(EXPORT).status is RunStatus.SUCCEEDED
    assert len(hooked.received) == 2
    [warning] = warnings(caplog)
    assert f"webhook http://127.0.0.1:{hooked.server.server_address[1]} answered HTTP 503 twice" in warning


def test_a_4xx_is_not_retried(ws: Workspace, hooked: HttpReceiver, caplog: pytest.LogCaptureFixture) -> None:
    hooked.statuses = [404]
    ws.run_export(EXPORT)
    assert len(hooked.received) == 1
    [warning] = warnings(caplog)
    assert "answered HTTP 404" in warning


def test_an_unreachable_webhook_warns_and_the_run_succeeds(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    monkeypatch.setenv("SEGPORT_NOTIFY_WEBHOOK", f"http://user:pw@localhost:{port}/x?token=tok-canary")
    assert ws.run_export(EXPORT).status is RunStatus.SUCCEEDED
    [warning] = warnings(caplog)
    assert f"webhook http://localhost:{port} could not be reached (ConnectionError) twice" in warning
    assert "tok-canary" not in caplog.text and "pw@" not in caplog.text


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/services/T0/B0/tok-canary?sig=tok-canary",
        "ftp://hooks.example.com/tok-canary",
        "not a url",
    ],
)
def test_a_webhook_that_is_not_https_is_refused(
    ws: Workspace, url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(requests, "post", lambda *a, **k: pytest.fail("must not be called"))
    monkeypatch.setenv("SEGPORT_NOTIFY_WEBHOOK", url)
    assert ws.run_export(EXPORT).status is RunStatus.SUCCEEDED
    [warning] = warnings(caplog)
    assert "SEGPORT_NOTIFY_WEBHOOK" in warning and "https://" in warning
    assert "tok-canary" not in warning


def test_https_urls_and_loopback_http_are_accepted() -> None:
    for url in ("https://hooks.example.com/x", "http://127.0.0.1:8080/x", "http://localhost/x", "http://[::1]:9/x"):
        webhook.check_url(url)


def test_notify_on_failed_skips_succeeded_runs(
    ws: Workspace, hooked: HttpReceiver, platform: MemoryPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGPORT_NOTIFY_ON", "failed")
    ws.run_export(EXPORT)
    assert hooked.received == []
    fail_run(ws, platform)
    assert [hooked.json()["run"]["status"]] == ["failed"]


def test_a_bad_notify_on_warns_and_sends_nothing(
    ws: Workspace, hooked: HttpReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SEGPORT_NOTIFY_ON", "sometimes")
    assert ws.run_export(EXPORT).status is RunStatus.SUCCEEDED
    assert hooked.received == []
    [warning] = warnings(caplog)
    assert "SEGPORT_NOTIFY_ON='sometimes' is not one of always, failed" in warning


def test_a_dry_run_is_not_notified(ws: Workspace, hooked: HttpReceiver) -> None:
    ws.run_export(EXPORT, dry_run=True)
    assert hooked.received == []


# --- email ------------------------------------------------------------------------------------


def test_a_succeeded_run_is_emailed(
    ws: Workspace, mailed: SmtpReceiver, platform: MemoryPlatform, caplog: pytest.LogCaptureFixture
) -> None:
    platform.reject_emails = {"user3@example.com": "spam trap"}
    run = ws.run_export(EXPORT)

    [mail_] = mailed.mails
    assert mail_.login == ("alerts", SMTP_PASSWORD)  # percent-decoded
    assert mail_.sender == "segport@acme.test"
    assert mail_.recipients == ["ops@example.com", "oncall@example.com"]
    msg = mail_.message()
    assert msg["Subject"] == "segport: export vip-news succeeded (11 sent, 1 rejected)"
    assert msg["To"] == "ops@example.com, oncall@example.com" and msg["From"] == "segport@acme.test"
    text = msg.get_content()
    assert "created 11" in text and "rejected 1" in text and "duration" in text
    assert f"Rejects:    {run.reject_file}" in text
    assert SMTP_PASSWORD.encode() not in mail_.data and SMTP_URL_PASSWORD.encode() not in mail_.data
    assert warnings(caplog) == []


def test_a_failed_run_is_emailed_with_its_error(ws: Workspace, mailed: SmtpReceiver, platform: MemoryPlatform) -> None:
    fail_run(ws, platform)
    msg = mailed.mails[0].message()
    assert msg["Subject"] == "segport: export vip-news failed (0 sent, 0 rejected)"
    assert "Error:      " in msg.get_content() and "aud1" in msg.get_content()


def test_a_refused_login_warns_without_the_password(
    ws: Workspace, mailed: SmtpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    mailed.refuse_login = True
    assert ws.run_export(EXPORT).status is RunStatus.SUCCEEDED
    assert mailed.mails == []
    [warning] = warnings(caplog)
    assert f"via smtp://127.0.0.1:{mailed.port} (SMTPAuthenticationError 535)" in warning
    assert "canary" not in caplog.text


def test_an_unreachable_smtp_server_warns(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SEGPORT_NOTIFY_EMAIL", "ops@example.com")
    monkeypatch.setenv("SEGPORT_SMTP_URL", f"smtp://127.0.0.1:{free_port()}")
    assert ws.run_export(EXPORT).status is RunStatus.SUCCEEDED
    [warning] = warnings(caplog)
    assert "ConnectionRefusedError" in warning


def test_email_without_an_smtp_url_warns(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SEGPORT_NOTIFY_EMAIL", "ops@example.com")
    ws.run_export(EXPORT)
    [warning] = warnings(caplog)
    assert "SEGPORT_NOTIFY_EMAIL is set but SEGPORT_SMTP_URL is not" in warning


def test_a_password_over_plain_smtp_to_another_host_is_refused(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SEGPORT_NOTIFY_EMAIL", "ops@example.com")
    monkeypatch.setenv("SEGPORT_SMTP_URL", f"smtp://alerts:{SMTP_URL_PASSWORD}@mail.example.com")
    ws.run_export(EXPORT)
    [warning] = warnings(caplog)
    assert "smtp://mail.example.com would send the SMTP password unencrypted" in warning
    assert "canary" not in caplog.text


def test_webhook_and_email_go_out_independently(
    ws: Workspace, hooked: HttpReceiver, mailed: SmtpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    hooked.statuses = [500, 500]
    ws.run_export(EXPORT)
    assert len(hooked.received) == 2 and len(mailed.mails) == 1
    assert len(warnings(caplog)) == 1


# --- secrets ----------------------------------------------------------------------------------


def test_secrets_never_reach_any_log_record(
    ws: Workspace,
    hooked: HttpReceiver,
    mailed: SmtpReceiver,
    platform: MemoryPlatform,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    ws.run_export(EXPORT)  # delivered
    hooked.statuses, mailed.refuse_login = [500, 500], True
    fail_run(ws, platform)  # refused both ways
    platform.audiences = {"aud1"}
    monkeypatch.setenv("SEGPORT_NOTIFY_WEBHOOK", f"http://localhost:{free_port()}/x")
    ws.run_export(EXPORT)  # unreachable
    assert len(warnings(caplog)) == 4
    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    for secret in (WEBHOOK_SECRET, SMTP_PASSWORD, SMTP_URL_PASSWORD, base64.b64encode(SMTP_PASSWORD.encode()).decode()):
        assert secret not in logged


def test_reprs_hold_no_secret() -> None:
    env = {
        "SEGPORT_NOTIFY_WEBHOOK": "https://h.example.com/tok-canary",
        "SEGPORT_NOTIFY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SEGPORT_NOTIFY_EMAIL": "a@example.com",
        "SEGPORT_SMTP_URL": f"smtps://u:{SMTP_URL_PASSWORD}@h",
    }
    read = settings.read_settings(env)
    assert read is not None and read.webhook_secret == WEBHOOK_SECRET
    server = mail.parse_smtp_url(env["SEGPORT_SMTP_URL"])
    for text in (repr(read), repr(server)):
        assert "canary" not in text


# --- units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@hooks.example.com:8443/services/T0/tok?token=x#f", "https://hooks.example.com:8443"),
        ("http://[::1]:9/x", "http://[::1]:9"),
        ("smtps://u:p@mail.example.com", "smtps://mail.example.com"),
        ("http://h:notaport/x", "<malformed URL>"),
    ],
)
def test_urls_are_redacted_to_scheme_host_and_port(url: str, shown: str) -> None:
    assert urls.redact(url) == shown


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "starttls"),
    [
        ("smtp://mail.example.com", "mail.example.com", 25, False, False),
        ("smtp://u:p@mail.example.com?starttls=1", "mail.example.com", 587, False, True),
        ("smtps://u:p@mail.example.com", "mail.example.com", 465, True, False),
        ("smtp://127.0.0.1:2525?starttls=0", "127.0.0.1", 2525, False, False),
    ],
)
def test_smtp_urls(url: str, host: str, port: int, tls: bool, starttls: bool) -> None:
    server = mail.parse_smtp_url(url)
    assert (server.host, server.port, server.tls, server.starttls) == (host, port, tls, starttls)


@pytest.mark.parametrize(
    "url",
    [
        f"smtp://u:{SMTP_URL_PASSWORD}@h:port",
        f"http://u:{SMTP_URL_PASSWORD}@h",
        f"smtp://u:{SMTP_URL_PASSWORD}@h?tls=1",
        f"smtp://u:{SMTP_URL_PASSWORD}@h?starttls=maybe",
    ],
)
def test_bad_smtp_urls_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="SEGPORT_SMTP_URL") as caught:
        mail.parse_smtp_url(url)
    assert "canary" not in str(caught.value) and SMTP_URL_PASSWORD not in str(caught.value)


def test_subject_names_failed_records(ws: Workspace) -> None:
    run = Run(
        id=1,
        export=EXPORT,
        status=RunStatus.PARTIAL,
        trigger="manual",
        user="ada",
        started_at="2025-01-01T00:00:00+00:00",
        counts={"created": 5, "updated": 2, "rejected": 1, "failed": 3},
    )
    assert message.subject(run, ws.get_export(EXPORT)) == (
        "segport: export vip-news finished with failed records (7 sent, 1 rejected, 3 failed)"
    )
