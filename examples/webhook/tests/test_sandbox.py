"""The reference receiver itself, over HTTP with requests signed here (not by the plugin)."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import time
from typing import Any, Iterator

import pytest
import requests

from segport.testing import PlatformMember
from segport_webhook.sandbox import AUDIENCE, WebhookSandbox

BATCH = f"/audiences/{AUDIENCE}/members:batch"


@pytest.fixture
def sandbox() -> Iterator[WebhookSandbox]:
    with WebhookSandbox(seed=11) as server:
        yield server


def call(
    sb: WebhookSandbox,
    method: str,
    path: str,
    document: Any = None,
    *,
    secret: str | None = None,
    skew: int = 0,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """One request signed as the protocol says (``skew`` seconds off the clock)."""
    body = b"" if document is None else json.dumps(document).encode()
    timestamp = str(int(time.time()) + skew)
    key = (secret or sb.secret).encode()
    signature = "sha256=" + hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    sent = {"X-Segport-Timestamp": timestamp, "X-Segport-Signature": signature, **(headers or {})}
    return requests.request(method, sb.base_url + path, data=body, headers=sent, timeout=10)


def member(email: str, **changes: Any) -> dict[str, Any]:
    normalised = email.strip().lower()
    values = {
        "id": hashlib.sha256(normalised.encode()).hexdigest(),
        "email": normalised,
        "fields": {"first_name": "Ada"},
        "segments": ["VIP"],
        "add": ["VIP"],
        "remove": [],
        "upsert": True,
    }
    return {**values, **changes}


def statuses(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["status"] for r in response.json()["results"]]


# -- signatures -----------------------------------------------------------------------------------


def test_a_signed_ping_names_the_account(sandbox: WebhookSandbox) -> None:
    answer = call(sandbox, "GET", "/ping")
    assert answer.status_code == 200 and answer.json() == {"account": "segport webhook sandbox"}


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ({"secret": "another-secret-of-16+"}, "bad signature"),
        ({"headers": {"X-Segport-Signature": "sha256=" + "0" * 64}}, "bad signature"),
        ({"headers": {"X-Segport-Signature": ""}}, "missing"),
        ({"headers": {"X-Segport-Timestamp": "yesterday"}}, "not unix seconds"),
        ({"skew": -301}, "stale timestamp"),
        ({"skew": 301}, "stale timestamp"),
    ],
    ids=["wrong-secret", "wrong-signature", "no-signature", "bad-timestamp", "stale", "future"],
)
def test_a_bad_signature_is_refused(sandbox: WebhookSandbox, how: dict[str, Any], error: str) -> None:
    answer = call(sandbox, "POST", BATCH, {"members": [member("a@example.com")]}, **how)
    assert answer.status_code == 401 and error in answer.json()["error"]
    assert sandbox.members() == []


def test_a_timestamp_inside_the_window_is_accepted(sandbox: WebhookSandbox) -> None:
    assert call(sandbox, "GET", "/ping", skew=-290).status_code == 200


def test_a_tampered_body_is_refused(sandbox: WebhookSandbox) -> None:
    timestamp = str(int(time.time()))
    signed = json.dumps({"members": [member("a@example.com")]}).encode()
    digest = hmac.new(sandbox.secret.encode(), f"{timestamp}.".encode() + signed, hashlib.sha256).hexdigest()
    tampered = signed.replace(b"Ada", b"Eve")
    headers = {"X-Segport-Timestamp": timestamp, "X-Segport-Signature": f"sha256={digest}"}
    answer = requests.post(sandbox.base_url + BATCH, data=tampered, headers=headers, timeout=10)
    assert answer.status_code == 401 and sandbox.members() == []


def test_a_revoked_secret_is_refused_until_reset(sandbox: WebhookSandbox) -> None:
    assert requests.post(sandbox.base_url + "/_sandbox/revoke", timeout=10).status_code == 204
    assert call(sandbox, "GET", "/ping").status_code == 401
    sandbox.reset()
    assert call(sandbox, "GET", "/ping").status_code == 200


def test_the_secret_is_reproducible_from_the_seed() -> None:
    assert WebhookSandbox(seed=1).secret == WebhookSandbox(seed=1).secret != WebhookSandbox(seed=2).secret
    assert len(WebhookSandbox().secret) == 32 != WebhookSandbox().secret


# -- audiences and batches --------------------------------------------------------------------------


def test_audiences(sandbox: WebhookSandbox) -> None:
    sandbox.seed_member("Old@Example.com", {"first_name": "Old"})
    assert call(sandbox, "GET", f"/audiences/{AUDIENCE}").json() == {"audience": AUDIENCE, "members": 1}
    unknown = call(sandbox, "GET", "/audiences/nope")
    assert unknown.status_code == 404 and unknown.json() == {"error": "unknown audience 'nope'"}
    assert call(sandbox, "POST", "/audiences/nope/members:batch", {"members": [member("a@x.io")]}).status_code == 404
    sandbox.add_audience("nope")
    assert call(sandbox, "GET", "/audiences/nope").json() == {"audience": "nope", "members": 0}


def test_batch_semantics(sandbox: WebhookSandbox) -> None:
    first = [member("a@example.com"), member("b@example.com", segments=["VIP", "Gold"], add=["VIP", "Gold"])]
    assert statuses(call(sandbox, "POST", BATCH, {"members": first})) == ["created", "created"]
    assert statuses(call(sandbox, "POST", BATCH, {"members": first})) == ["unchanged", "unchanged"]
    # b leaves VIP without a field write: the name goes, the rest stays
    leave = member("b@example.com", fields={"first_name": "ignored"}, segments=["Gold"], add=[], remove=["VIP"])
    leave["upsert"] = False
    renamed = member("a@example.com", fields={"last_name": "Lovelace"}, add=[])
    assert statuses(call(sandbox, "POST", BATCH, {"members": [leave, renamed]})) == ["updated", "updated"]
    held = {m.email: m for m in sandbox.members()}
    assert held["b@example.com"] == PlatformMember("b@example.com", {"first_name": "Ada"}, frozenset({"Gold"}))
    assert held["a@example.com"].fields == {"first_name": "Ada", "last_name": "Lovelace"}
    # leaving every segment deletes nobody
    gone = member("b@example.com", segments=[], add=[], remove=["Gold"], upsert=False)
    assert statuses(call(sandbox, "POST", BATCH, {"members": [gone]})) == ["updated"]
    assert {m.email: m.markers for m in sandbox.members()} == {"a@example.com": {"VIP"}, "b@example.com": set()}
    assert sandbox.summary() == {
        "audience": AUDIENCE,
        "members": 2,
        "statuses": {"subscribed": 2},
        "segments": {"VIP": 1},
    }


def test_identity_is_the_id_of_the_normalised_email(sandbox: WebhookSandbox) -> None:
    sandbox.seed_member("Grace.Hopper@Example.COM", {"first_name": "Grace"})
    assert sandbox.members()[0].email == "Grace.Hopper@Example.COM"
    assert statuses(call(sandbox, "POST", BATCH, {"members": [member(" Grace.Hopper@example.com")]})) == ["updated"]
    assert [(m.email, m.markers) for m in sandbox.members()] == [("grace.hopper@example.com", {"VIP"})]


def test_refused_members_are_rejected_and_not_stored(sandbox: WebhookSandbox) -> None:
    sandbox.refuse("B@example.com")
    answer = call(sandbox, "POST", BATCH, {"members": [member("a@example.com"), member("b@example.com")]})
    assert statuses(answer) == ["created", "rejected"] and answer.json()["results"][1]["reason"]
    bad = call(sandbox, "POST", BATCH, {"members": [member("not-an-address")]})
    assert bad.json()["results"] == [
        {"id": member("not-an-address")["id"], "status": "rejected", "reason": "not an email address"}
    ]
    assert [m.email for m in sandbox.members()] == ["a@example.com"]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"members": []}, 400, "members: must be a non-empty array"),
        ({"members": [member("a@x.io", upsert="yes")]}, 400, "members[0].upsert"),
        ({"members": [member("a@x.io"), member("a@x.io")]}, 400, "members[1].id: repeated"),
        ({"members": [member("a@x.io", id="x" * 129)]}, 400, "members[0].id"),
        ({"members": [member("a@x.io", add=[1])]}, 400, "members[0].add"),
        ({"members": [member(f"p{i}@x.io") for i in range(501)]}, 413, "more than 500"),
        ([1, 2], 400, "not a JSON object"),
    ],
    ids=["empty", "upsert", "repeated-id", "long-id", "add", "too-many", "not-an-object"],
)
def test_a_malformed_batch_is_refused_whole(sandbox: WebhookSandbox, body: Any, status: int, error: str) -> None:
    answer = call(sandbox, "POST", BATCH, body)
    assert answer.status_code == status and error in answer.json()["error"]
    assert sandbox.members() == []


def test_an_injected_429_says_when_to_come_back(sandbox: WebhookSandbox) -> None:
    sandbox.set_faults(status_codes=[429], fail_next=1, retry_after_s=4)
    answer = call(sandbox, "GET", "/ping")
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "4"
    assert call(sandbox, "GET", "/ping").status_code == 200


def test_the_test_api_shows_the_state(sandbox: WebhookSandbox) -> None:
    call(sandbox, "POST", BATCH, {"members": [member("a@example.com")]})
    state = requests.get(sandbox.base_url + "/_sandbox/state", timeout=10).json()
    ident = member("a@example.com")["id"]
    assert state["audiences"][AUDIENCE][ident] == {
        "email": "a@example.com",
        "fields": {"first_name": "Ada"},
        "markers": ["VIP"],
    }
    assert requests.get(sandbox.base_url + "/_sandbox/summary", timeout=10).json()["segments"] == {"VIP": 1}


def test_served_from_the_command_line() -> None:
    command = [sys.executable, "-m", "segport_webhook.sandbox", "--port", "0", "--seed", "5", "--secret", "x" * 20]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            lines = dict(process.stdout.readline().rstrip("\n").split(": ", 1) for _ in range(4))
            assert lines["secret"] == "x" * 20 and lines["audience"] == AUDIENCE
            assert lines["url"] == lines["base_url"]
            answer = requests.get(lines["url"] + "/ping", timeout=10)
            assert answer.status_code == 401  # unsigned
        finally:
            process.terminate()
            assert process.wait(10) == 0
