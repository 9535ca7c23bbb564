"""segport.http.ApiClient: URL joining, JSON in and out, status-to-error mapping, messages, gather."""

from __future__ import annotations

import json
import threading
from functools import partial
from typing import Any, Iterator, Mapping

import pytest
import requests
import responses

from segport import AuthError, FatalDestinationError, RetryableDestinationError
from segport.http import MASK, ApiClient, ApiError, encode_json, one_line

BASE = "https://api.example.test/v2"
KEY = "k-0123456789abcdef"


class Example(ApiClient):
    platform = "Example"
    path_suffix = ".json"

    def describe(self, body: Mapping[str, Any]) -> str:
        code, message = body.get("Code"), body.get("Message")
        return f"code {code}: {message}" if code is not None else ""


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


@pytest.fixture
def client(session: requests.Session) -> Example:
    return Example(session, BASE + "/", secrets=[KEY, None, ""])


def test_paths_are_templates_whose_values_are_quoted_segments(
    strict_responses: responses.RequestsMock, client: Example
) -> None:
    strict_responses.get(f"{BASE}/lists/a%2Fb%20c/fields/%5BKey%5D.json", json={"ok": True})
    assert client.call("GET", "/lists/{list_id}/fields/{key}", list_id="a/b c", key="[Key]") == {"ok": True}


def test_json_goes_out_compact_and_comes_back_decoded(
    strict_responses: responses.RequestsMock, client: Example
) -> None:
    strict_responses.post(f"{BASE}/items.json", json=[1, 2], match=[responses.matchers.query_param_matcher({"a": "1"})])
    assert client.call("POST", "/items", json={"when": object, "n": 1.5}, params={"a": "1"}) == [1, 2]
    request = strict_responses.calls[0].request
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == encode_json({"when": object, "n": 1.5})
    assert json.loads(request.body) == {"when": str(object), "n": 1.5}


@pytest.mark.parametrize("answer", [{"status": 204}, {"body": ""}, {"body": "<html/>"}], ids=["204", "empty", "html"])
def test_answers_without_json_are_none(
    strict_responses: responses.RequestsMock, client: Example, answer: dict[str, Any]
) -> None:
    strict_responses.delete(f"{BASE}/items/1.json", **answer)
    assert client.call("DELETE", "/items/{id}", id=1) is None


def test_401_is_an_auth_error_naming_the_call(strict_responses: responses.RequestsMock, client: Example) -> None:
    strict_responses.get(f"{BASE}/me.json", status=401, json={"Code": 100, "Message": f"bad key {KEY}"})
    with pytest.raises(AuthError) as caught:
        client.call("GET", "/me")
    message = str(caught.value)
    assert message.startswith(f"Example refused the credentials on GET /me.json (code 100: bad key {MASK}): check")
    assert KEY not in message


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_retryable_with_retry_after(
    strict_responses: responses.RequestsMock, client: Example, status: int
) -> None:
    answer = {"Code": 9, "Message": "busy"}
    strict_responses.put(f"{BASE}/x/7.json", status=status, headers={"Retry-After": "4"}, json=answer)
    with pytest.raises(RetryableDestinationError) as caught:
        client.call("PUT", "/x/{id}", id=7, json={})
    assert str(caught.value) == f"Example answered {status} on PUT /x/{{id}}.json (code 9: busy)"
    assert caught.value.retry_after == 4


@pytest.mark.parametrize("status", [400, 403, 404, 409])
def test_other_refusals_are_fatal_api_errors_the_caller_may_read(
    strict_responses: responses.RequestsMock, client: Example, status: int
) -> None:
    body = {"Code": 101, "Message": "Invalid\nListID"}
    strict_responses.get(f"{BASE}/lists/abc.json", status=status, json=body)
    with pytest.raises(ApiError) as caught:
        client.call("GET", "/lists/{list_id}", list_id="abc")
    error = caught.value
    assert isinstance(error, FatalDestinationError)
    assert (error.status, error.call, error.body, error.detail) == (
        status,
        "GET /lists/{list_id}.json",
        body,
        "code 101: Invalid ListID",
    )
    assert str(error) == f"Example answered {status} on GET /lists/{{list_id}}.json (code 101: Invalid ListID)"


def test_a_body_without_a_description_leaves_the_message_short(
    strict_responses: responses.RequestsMock, session: requests.Session
) -> None:
    strict_responses.get(f"{BASE}/a", status=404, body="<html>no</html>")
    with pytest.raises(ApiError, match=r"^the platform answered 404 on GET /a$"):
        ApiClient(session, BASE).call("GET", "/a")


def test_the_default_description_reads_common_error_fields(
    strict_responses: responses.RequestsMock, session: requests.Session
) -> None:
    strict_responses.get(f"{BASE}/a", status=400, json={"error": "  bad\r\n input "})
    with pytest.raises(ApiError, match=r"^the platform answered 400 on GET /a \(bad input\)$"):
        ApiClient(session, BASE).call("GET", "/a")


def test_a_redirect_is_an_error_when_not_followed(
    strict_responses: responses.RequestsMock, session: requests.Session
) -> None:
    class NoRedirects(ApiClient):
        follow_redirects = False

    strict_responses.get(f"{BASE}/a", status=302, headers={"Location": "https://elsewhere.example.test/"})
    with pytest.raises(ApiError) as caught:
        NoRedirects(session, BASE).call("GET", "/a")
    assert caught.value.status == 302


def test_transport_errors_propagate_for_the_engine_to_retry(
    strict_responses: responses.RequestsMock, client: Example
) -> None:
    strict_responses.get(f"{BASE}/a.json", body=requests.ConnectionError("reset"))
    with pytest.raises(requests.ConnectionError):
        client.call("GET", "/a")


def test_calls_go_through_the_session_so_its_hooks_count_them(
    strict_responses: responses.RequestsMock, session: requests.Session, client: Example
) -> None:
    seen: list[int] = []
    session.hooks["response"].append(lambda response, *args, **kwargs: seen.append(response.status_code))
    strict_responses.get(f"{BASE}/a.json", json={})
    strict_responses.get(f"{BASE}/b.json", status=503)
    client.call("GET", "/a")
    with pytest.raises(RetryableDestinationError):
        client.call("GET", "/b")
    assert seen == [200, 503]


def test_gather_runs_calls_at_once_and_keeps_their_order(
    strict_responses: responses.RequestsMock, client: Example
) -> None:
    together = threading.Barrier(3, timeout=5)  # broken (and the test failed) unless all three are in flight

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        together.wait()
        name = str(request.url).rsplit("/", 1)[1].removesuffix(".json")
        return (404, {}, "{}") if name == "b" else (200, {}, json.dumps(name))

    for name in "abc":
        strict_responses.add_callback("GET", f"{BASE}/{name}.json", callback=answer)
    found = client.gather([partial(client.call, "GET", f"/{name}") for name in "abc"])
    assert all(future.done() for future in found)
    assert found[0].result() == "a" and found[2].result() == "c"
    with pytest.raises(ApiError):
        found[1].result()
    assert client.gather([]) == []


def test_one_line_joins_lines_and_cuts_long_text() -> None:
    assert one_line("a\nb\u2028c\r\n") == "a b c"
    assert one_line("x" * 10, limit=5) == "xxxx…"
    assert one_line(None) == "None"


def test_request_hands_back_a_successful_answer_itself(
    strict_responses: responses.RequestsMock, client: Example
) -> None:
    strict_responses.put(f"{BASE}/m/1.json", status=201, json={"id": 1}, headers={"Location": "/m/1"})
    strict_responses.put(f"{BASE}/m/2.json", status=422, json={"Code": 7, "Message": "refused"})
    created = client.request("PUT", "/m/{id}", id=1, json={})
    assert (created.status_code, created.headers["Location"], created.json()) == (201, "/m/1", {"id": 1})
    with pytest.raises(ApiError) as caught:
        client.request("PUT", "/m/{id}", id=2, json={})
    assert (caught.value.status, caught.value.detail) == (422, "code 7: refused")
