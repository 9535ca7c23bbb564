"""WebhookWriter against a strict ``responses`` mock: the batch body, result mapping and failures.

Every registered response must fire and an unregistered call fails, so "no other call was made" is
asserted by the mock itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Callable, Iterator

import pytest
import requests
import responses
from responses import matchers

from segport import (
    AuthError,
    BadBatchError,
    FatalDestinationError,
    Outcome,
    OutcomeStatus,
    Record,
    RetryableDestinationError,
    RunContext,
    UnknownAudienceError,
)
from segport_webhook.auth import WebhookAuth
from segport_webhook.writer import MISSING, WebhookWriter

SECRET = "s3cret-s3cret-s3cret"
URL = "https://hooks.example.com/segport"
CONFIG = {"url": URL, "secret": SECRET}
AUDIENCE_URL = f"{URL}/audiences/newsletter"
BATCH_URL = f"{AUDIENCE_URL}/members:batch"


def sha(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()


def record(i: int, **changes: Any) -> Record:
    values: dict[str, Any] = {
        "key": f"p{i}",
        "email": f"person{i}@example.com",
        "fields": {"first_name": f"First{i}", "last_name": f"Last{i}"},
        "segments": frozenset({"VIP"}),
        "add": frozenset({"VIP"}),
    }
    return Record(**{**values, **changes})


def results(*statuses: str, reasons: dict[int, str] | None = None) -> dict[str, Any]:
    found = []
    for i, status in enumerate(statuses):
        item = {"id": sha(f"person{i}@example.com"), "status": status}
        if reasons and i in reasons:
            item["reason"] = reasons[i]
        found.append(item)
    return {"results": found}


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.auth = WebhookAuth(CONFIG)
        yield http


@pytest.fixture
def writer(session: requests.Session) -> WebhookWriter:
    context = RunContext("vip", {"audience": "newsletter"}, ["VIP", "Churned"], ["first_name", "last_name"])
    return WebhookWriter(session, CONFIG, context)


@pytest.fixture
def batch(strict_responses: responses.RequestsMock) -> Callable[..., None]:
    """``batch(status=200, **answer)``: the next batch call answers this."""

    def answer(status: int = 200, **kwargs: Any) -> None:
        strict_responses.post(BATCH_URL, status=status, **kwargs)

    return answer


def outcomes(writer: WebhookWriter, records: list[Record]) -> dict[str, Outcome]:
    result = writer.write_batch(records)
    assert result.requests == 1 and len(result.outcomes) == len(records)
    return {o.key: o for o in result.outcomes}


# -- prepare --------------------------------------------------------------------------------------


def test_prepare_reads_the_audience(strict_responses: responses.RequestsMock, writer: WebhookWriter) -> None:
    strict_responses.get(AUDIENCE_URL, json={"audience": "newsletter", "members": 3})
    writer.prepare()


def test_prepare_of_an_unknown_audience(strict_responses: responses.RequestsMock, writer: WebhookWriter) -> None:
    strict_responses.get(AUDIENCE_URL, status=404, json={"error": "unknown audience 'newsletter'"})
    with pytest.raises(UnknownAudienceError, match="no audience 'newsletter': fix --option audience"):
        writer.prepare()


def test_prepare_with_a_refused_signature(strict_responses: responses.RequestsMock, writer: WebhookWriter) -> None:
    strict_responses.get(AUDIENCE_URL, status=401, json={"error": "stale timestamp"})
    with pytest.raises(AuthError, match="stale timestamp"):
        writer.prepare()


# -- the batch call --------------------------------------------------------------------------------


def test_the_batch_body_and_its_signature(
    strict_responses: responses.RequestsMock, writer: WebhookWriter, batch: Callable[..., None]
) -> None:
    leaving = record(1, segments=frozenset(), add=frozenset(), remove=frozenset({"VIP"}), upsert=False, new=False)
    expected = {
        "members": [
            {
                "id": sha("person0@example.com"),
                "email": "person0@example.com",
                "fields": {"first_name": "First0", "last_name": "Last0"},
                "segments": ["VIP"],
                "add": ["VIP"],
                "remove": [],
                "upsert": True,
            },
            {
                "id": sha("person1@example.com"),
                "email": "person1@example.com",
                "fields": {"first_name": "First1", "last_name": "Last1"},
                "segments": [],
                "add": [],
                "remove": ["VIP"],
                "upsert": False,
            },
        ]
    }
    batch(json=results("created", "updated"), match=[matchers.json_params_matcher(expected, strict_match=True)])
    outcomes(writer, [record(0), leaving])
    request = strict_responses.calls[0].request
    body = request.body
    assert isinstance(body, bytes) and request.headers["Content-Type"] == "application/json"
    timestamp = request.headers["X-Segport-Timestamp"]
    digest = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert request.headers["X-Segport-Signature"] == f"sha256={digest}"


def test_the_id_is_the_hash_of_the_normalised_email(writer: WebhookWriter) -> None:
    for email in ("grace.hopper@example.com", " Grace.Hopper@Example.COM "):
        assert (
            writer.member(record(0, email=email))["id"]
            == "a460d7fa831915bb17b55b9151a5278e916f2de6480dc2171845c4b305620428"
        )


def test_every_status_maps_to_its_outcome(writer: WebhookWriter, batch: Callable[..., None]) -> None:
    batch(json=results("created", "updated", "unchanged", "rejected", reasons={3: "address\nsuppressed"}))
    found = outcomes(writer, [record(i) for i in range(4)])
    assert [found[f"p{i}"].status for i in range(3)] == [
        OutcomeStatus.CREATED,
        OutcomeStatus.UPDATED,
        OutcomeStatus.UNCHANGED,
    ]
    assert found["p3"] == Outcome.rejected("p3", "address suppressed")


def test_results_are_matched_by_id_not_by_position(writer: WebhookWriter, batch: Callable[..., None]) -> None:
    answer = results("created", "rejected", reasons={1: "no"})
    answer["results"].reverse()
    batch(json=answer)
    found = outcomes(writer, [record(0), record(1)])
    assert found["p0"].status is OutcomeStatus.CREATED and found["p1"].status is OutcomeStatus.REJECTED


def test_a_rejection_without_reason_still_has_one(writer: WebhookWriter, batch: Callable[..., None]) -> None:
    batch(json=results("rejected"))
    assert outcomes(writer, [record(0)])["p0"] == Outcome.rejected("p0", "rejected by the receiver")


def test_members_missing_from_the_answer_are_retryable(writer: WebhookWriter, batch: Callable[..., None]) -> None:
    batch(json=results("created", "updated"))  # three sent, two answered
    found = outcomes(writer, [record(i) for i in range(3)])
    assert found["p0"].status.delivered and found["p1"].status.delivered
    assert found["p2"] == Outcome.retryable("p2", MISSING)


@pytest.mark.parametrize(
    "answer",
    [{"json": {"results": "nope"}}, {"json": [1, 2]}, {"body": "<html>ok</html>"}, {"body": ""}],
    ids=["results-not-a-list", "not-an-object", "not-json", "empty"],
)
def test_an_unreadable_answer_delivers_nothing(
    writer: WebhookWriter, batch: Callable[..., None], answer: dict[str, Any]
) -> None:
    batch(**answer)
    found = outcomes(writer, [record(0), record(1)])
    assert {o.status for o in found.values()} == {OutcomeStatus.RETRYABLE}


def test_an_unknown_status_is_retryable(writer: WebhookWriter, batch: Callable[..., None]) -> None:
    batch(json=results("archived"))
    found = outcomes(writer, [record(0)])["p0"]
    assert found.status is OutcomeStatus.RETRYABLE and "'archived'" in (found.reason or "")


def test_an_empty_batch_makes_no_call(writer: WebhookWriter) -> None:
    assert writer.write_batch([]).requests == 0


# -- whole-call failures ----------------------------------------------------------------------------


def test_429_carries_retry_after(writer: WebhookWriter, batch: Callable[..., None]) -> None:
    batch(429, headers={"Retry-After": "12"}, json={"error": "slow down"})
    with pytest.raises(RetryableDestinationError) as caught:
        writer.write_batch([record(0)])
    assert caught.value.retry_after == 12 and "429: slow down" in str(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retryable(writer: WebhookWriter, batch: Callable[..., None], status: int) -> None:
    batch(status)
    with pytest.raises(RetryableDestinationError) as caught:
        writer.write_batch([record(0)])
    assert caught.value.retry_after is None


def test_a_transport_error_propagates(writer: WebhookWriter, batch: Callable[..., None]) -> None:
    batch(body=requests.ConnectionError("reset"))
    with pytest.raises(requests.ConnectionError):
        writer.write_batch([record(0)])


def test_401_is_an_auth_error(writer: WebhookWriter, batch: Callable[..., None]) -> None:
    batch(401, json={"error": "bad signature"})
    with pytest.raises(AuthError) as caught:
        writer.write_batch([record(0)])
    assert "bad signature" in str(caught.value) and SECRET not in str(caught.value)


def test_404_means_the_audience_is_gone(writer: WebhookWriter, batch: Callable[..., None]) -> None:
    batch(404, json={"error": "unknown audience 'newsletter'"})
    with pytest.raises(UnknownAudienceError, match="no longer has the audience 'newsletter'"):
        writer.write_batch([record(0)])


@pytest.mark.parametrize("status", [400, 413])
def test_a_refused_body_is_a_bad_batch(writer: WebhookWriter, batch: Callable[..., None], status: int) -> None:
    batch(status, json={"error": "members[0].email: must be a string"})
    with pytest.raises(BadBatchError, match=rf"\({status}: members\[0\]\.email: must be a string\)"):
        writer.write_batch([record(0)])


def test_a_redirect_is_not_followed(writer: WebhookWriter, batch: Callable[..., None]) -> None:
    batch(307, headers={"Location": "https://elsewhere.example.com/batch"})
    with pytest.raises(FatalDestinationError, match="redirect"):
        writer.write_batch([record(0)])


def test_the_body_is_json_even_for_odd_values(
    strict_responses: responses.RequestsMock, writer: WebhookWriter, batch: Callable[..., None]
) -> None:
    batch(json=results("created"))
    writer.write_batch([record(0, fields={"first_name": "Zoë \ud800", "score": 3.5, "since": object})])
    sent = json.loads(strict_responses.calls[0].request.body)
    assert sent["members"][0]["fields"]["first_name"] == "Zoë \ud800" and sent["members"][0]["fields"]["score"] == 3.5
