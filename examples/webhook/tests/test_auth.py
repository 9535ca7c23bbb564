"""WebhookAuth against a strict ``responses`` mock: the signature of each request, and ``check``."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Iterator

import pytest
import requests
import responses

from segport import AuthError, FatalDestinationError, RetryableDestinationError
from segport_webhook.auth import WebhookAuth

SECRET = "s3cret-s3cret-s3cret"
URL = "https://hooks.example.com/segport"
CONFIG = {"url": URL, "secret": SECRET}


def expected_signature(timestamp: str, body: bytes) -> str:
    """The protocol's signature, computed here independently of the plugin."""
    return "sha256=" + hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.auth = WebhookAuth(CONFIG)
        yield http


def assert_signed(request: requests.PreparedRequest, body: bytes) -> None:
    timestamp = request.headers["X-Segport-Timestamp"]
    assert timestamp.isdigit() and abs(int(timestamp) - time.time()) < 5
    assert request.headers["X-Segport-Signature"] == expected_signature(timestamp, body)
    assert SECRET not in str(dict(request.headers)) and "Authorization" not in request.headers


def test_get_is_signed_over_an_empty_body(strict_responses: responses.RequestsMock, session: requests.Session) -> None:
    strict_responses.get(f"{URL}/ping", json={"account": "acme"})
    session.get(f"{URL}/ping")
    assert_signed(strict_responses.calls[0].request, b"")


def test_post_is_signed_over_its_exact_bytes(
    strict_responses: responses.RequestsMock, session: requests.Session
) -> None:
    body = b'{"members":[{"email":"\\u00e9@example.com"}]}'
    strict_responses.post(f"{URL}/x", json={})
    session.post(f"{URL}/x", data=body)
    assert_signed(strict_responses.calls[0].request, body)


def test_a_text_body_is_signed_as_utf8() -> None:
    request = requests.Request("POST", URL, data="héllo").prepare()
    assert isinstance(request.body, str)
    WebhookAuth(CONFIG)(request)
    assert request.headers["X-Segport-Signature"] == expected_signature(
        request.headers["X-Segport-Timestamp"], "héllo".encode()
    )


def test_a_streamed_body_cannot_be_signed() -> None:
    request = requests.Request("POST", URL, data=iter([b"a", b"b"])).prepare()
    with pytest.raises(TypeError, match="streamed"):
        WebhookAuth(CONFIG)(request)


def test_check_describes_the_receiver(strict_responses: responses.RequestsMock, session: requests.Session) -> None:
    strict_responses.get(f"{URL}/ping", json={"account": "Acme\nCRM"})
    assert WebhookAuth(CONFIG).check(session) == "webhook receiver 'Acme CRM' at hooks.example.com"


@pytest.mark.parametrize("status", [401, 403])
def test_check_turns_a_refused_signature_into_auth_error(
    strict_responses: responses.RequestsMock, session: requests.Session, status: int
) -> None:
    strict_responses.get(f"{URL}/ping", status=status, json={"error": "bad signature"})
    with pytest.raises(AuthError) as caught:
        WebhookAuth(CONFIG).check(session)
    message = str(caught.value)
    assert "\n" not in message and SECRET not in message
    assert f"({status}: bad signature)" in message and "check that the connection's secret" in message


def test_a_receiver_echoing_the_secret_is_redacted(
    strict_responses: responses.RequestsMock, session: requests.Session
) -> None:
    strict_responses.get(f"{URL}/ping", status=401, json={"error": f"expected {SECRET}"})
    with pytest.raises(AuthError) as caught:
        WebhookAuth(CONFIG).check(session)
    assert SECRET not in str(caught.value) and "********" in str(caught.value)


def test_check_of_a_wrong_url(strict_responses: responses.RequestsMock, session: requests.Session) -> None:
    strict_responses.get(f"{URL}/ping", status=404)
    with pytest.raises(FatalDestinationError, match=r"no segport webhook receiver at .*check the connection's url"):
        WebhookAuth(CONFIG).check(session)


@pytest.mark.parametrize("answer", [{"json": {"ok": True}}, {"body": "<html>hello</html>"}])
def test_check_of_something_else_than_a_receiver(
    strict_responses: responses.RequestsMock, session: requests.Session, answer: dict[str, object]
) -> None:
    strict_responses.get(f"{URL}/ping", **answer)  # type: ignore[arg-type]
    with pytest.raises(FatalDestinationError, match="protocol v1"):
        WebhookAuth(CONFIG).check(session)


def test_check_follows_no_redirect(strict_responses: responses.RequestsMock, session: requests.Session) -> None:
    strict_responses.get(f"{URL}/ping", status=302, headers={"Location": "https://elsewhere.example.com/ping"})
    with pytest.raises(FatalDestinationError, match="redirect"):
        WebhookAuth(CONFIG).check(session)


def test_check_of_a_busy_receiver_is_retryable(
    strict_responses: responses.RequestsMock, session: requests.Session
) -> None:
    strict_responses.get(f"{URL}/ping", status=429, headers={"Retry-After": "3"}, json={"error": "slow down"})
    with pytest.raises(RetryableDestinationError) as caught:
        WebhookAuth(CONFIG).check(session)
    assert caught.value.retry_after == 3


def test_check_of_an_unreachable_receiver(strict_responses: responses.RequestsMock, session: requests.Session) -> None:
    strict_responses.get(f"{URL}/ping", body=requests.ConnectionError(f"refused {URL}"))
    with pytest.raises(RetryableDestinationError) as caught:
        WebhookAuth(CONFIG).check(session)
    assert str(caught.value).startswith("cannot reach the webhook receiver at hooks.example.com (ConnectionError)")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_secret_never_reaches_a_log_line(
    strict_responses: responses.RequestsMock, session: requests.Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    strict_responses.get(f"{URL}/ping", json={"account": "acme"})
    WebhookAuth(CONFIG).check(session)
    assert caplog.records and all(SECRET not in r.getMessage() for r in caplog.records)
