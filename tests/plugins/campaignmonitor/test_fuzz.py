"""Property-based fuzzing of how the Campaign Monitor plugin reads Campaign Monitor's answers.

Whatever the platform (or something in its place) answers, with any status or body, error documents
and the code-210 partial import included, the plugin returns one outcome per record or raises a
documented :class:`SegportError` whose ``str()`` is one line: never a KeyError, TypeError,
AttributeError or ValueError. Runs are derandomized, with no example database;
``SEGPORT_FUZZ_EXAMPLES=5000`` explores further.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses
from hypothesis import example, given
from hypothesis import strategies as st

from segport import AuthError, BatchResult, OutcomeStatus, Record, RetryableDestinationError, RunContext, SegportError
from segport_campaignmonitor.api import CampaignMonitorAPI, CMError
from segport_campaignmonitor.auth import CampaignMonitorAuth
from segport_campaignmonitor.writer import PARTIAL_IMPORT, CampaignMonitorWriter

API_KEY = "cm-key-123"
BASE = "https://api.createsend.com/api/v3.3"
CONFIG = {"api_key": API_KEY, "api_base_url": BASE}
LIST_ID = "a" * 32
IMPORT_URL = f"{BASE}/subscribers/{LIST_ID}/import.json"
OPTIONS = {
    "list_id": LIST_ID,
    "consent_to_track": "Unchanged",
    "resubscribe": False,
    "segment_field": "Segments",
    "create_rule_segments": True,
}
EXPORTED = ("VIP", "Churn risk")


def one_line(error: BaseException) -> str:
    message = str(error)
    assert message.strip(), f"empty message from {type(error).__name__}"
    assert len(message.splitlines()) == 1, f"multi-line message: {message!r}"  # also U+2028, U+0085, ...
    return message


def check_error(error: BaseException) -> None:
    """Only documented errors, one line each, with well-typed fields."""
    assert isinstance(error, SegportError), f"{type(error).__name__}: {error}"
    one_line(error)
    if isinstance(error, CMError):
        assert isinstance(error.status, int) and isinstance(error.code, int) and isinstance(error.cm_message, str)


# -- answers ---------------------------------------------------------------------------------------
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
texts = st.one_of(
    st.text(max_size=20), st.sampled_from(["", "Invalid ListID", "two\nlines\r\n", "u\u2028\x85\x1e\x0b"])
)
codes = st.one_of(
    st.sampled_from([0, 1, 50, 100, 101, 121, 208, 209, PARTIAL_IMPORT, 212, 250]),
    st.integers(),
    st.sampled_from(["210", " 101 ", "x", "", 1e999, 2.5, True, [210], -0.0]),
)


def near(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Documents shaped like the real one: each field present or not, well-typed or any JSON value."""
    return st.fixed_dictionaries({}, optional={k: st.one_of(v, json_values) for k, v in fields.items()})


def listed(item: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A list of mostly well-shaped items, or anything else."""
    return st.one_of(st.lists(st.one_of(item, json_values), max_size=5), json_values)


errors = near(Code=codes, Message=texts, ResultData=json_values)


class Answer:
    """One drawn HTTP answer."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, b"" if status in (204, 304) else body  # HTTP forbids a body there

    def reply(self) -> tuple[int, dict[str, str], bytes]:
        return self.status, {"Content-Type": "application/json; charset=utf-8"}, self.body

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 200 else self.body[:200] + b"..."
        return f"Answer({self.status}, {body!r})"


@st.composite
def raw_bodies(draw: st.DrawFn, shape: st.SearchStrategy[Any]) -> bytes:
    """The body bytes: a JSON document (mostly shaped), broken JSON, or any bytes."""
    kind = draw(st.sampled_from(["json", "json", "json", "cut", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    text = json.dumps(draw(st.one_of(shape, shape, json_values))).encode()
    return text[: draw(st.integers(0, max(len(text) - 1, 0)))] if kind == "cut" else text


STATUSES = st.one_of(st.sampled_from([200, 201, 204, 400, 401, 403, 404, 429, 500, 503]), st.integers(200, 599))


def answers(shape: st.SearchStrategy[Any]) -> st.SearchStrategy[Answer]:
    """Mostly the expected success document; sometimes an error status with an error document."""
    ok = st.builds(Answer, st.sampled_from([200, 201]), raw_bodies(shape))
    return st.one_of(ok, ok, st.builds(Answer, STATUSES, raw_bodies(errors)))


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.auth = CampaignMonitorAuth(CONFIG)
        yield http


# -- the API client: error documents and statuses ----------------------------------------------------
@given(answer=st.builds(Answer, STATUSES, raw_bodies(errors)))
@example(answer=Answer(400, b'{"Code": "x", "Message": "Invalid"}'))  # was: ValueError
@example(answer=Answer(400, b'{"Code": [210]}'))  # was: TypeError
@example(answer=Answer(400, b'{"Code": 1e999}'))  # was: OverflowError
@example(answer=Answer(401, b'{"Code": 1e999}'))  # was: OverflowError before the refresh check
@example(answer=Answer(400, b'{"Code": 250, "Message": "two\\nlines"}'))  # was: a two-line message
def test_any_answer_is_a_document_or_a_segport_error(session: requests.Session, answer: Answer) -> None:
    api = CampaignMonitorAPI(session, CONFIG)
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.add_callback("GET", f"{BASE}/lists/{LIST_ID}.json", callback=lambda _: answer.reply())
        try:
            api.call("GET", f"/lists/{LIST_ID}")
        except SegportError as exc:
            check_error(exc)
            assert answer.status >= 400
            if answer.status == 401:
                assert isinstance(exc, AuthError)
            elif answer.status == 429 or answer.status >= 500:
                assert isinstance(exc, RetryableDestinationError) or isinstance(exc, AuthError)
            return
    assert answer.status < 400


# -- import.json ------------------------------------------------------------------------------------
@st.composite
def batches_of_records(draw: st.DrawFn) -> list[Record]:
    """Up to 8 records: new or known people, field changes or marker changes only."""
    records = []
    for i in range(draw(st.integers(1, 8))):
        upsert = draw(st.booleans())
        segments = draw(st.frozensets(st.sampled_from(EXPORTED), max_size=2))
        remove = draw(st.frozensets(st.sampled_from(["Gone", *EXPORTED]), max_size=2)) - segments
        fields = {"plan": draw(st.one_of(st.text(max_size=5), st.integers(), st.none())), "Name": "P"}
        email = f"p{i}@example.com"
        records.append(Record(f"p{i}", email, fields, segments, segments, remove, upsert, draw(st.booleans())))
    return records


def import_results(records: list[Record]) -> st.SearchStrategy[Any]:
    """The import answer: failure details naming (mostly) the records' addresses.

    See docs/providers/campaignmonitor.md#partial-import.
    """
    known = st.sampled_from([r.email for r in records])
    email = st.one_of(known, known.map(str.upper), known.map(lambda e: f" {e} "), st.just("x@example.com"))
    failures = near(EmailAddress=email, Code=codes, Message=texts)
    return near(
        FailureDetails=listed(failures),
        TotalUniqueEmailsSubmitted=st.integers(0, 8),
        TotalExistingSubscribers=st.integers(0, 8),
        TotalNewSubscribers=st.integers(0, 8),
        DuplicateEmailsInSubmission=listed(email),
    )


def import_answers(records: list[Record]) -> st.SearchStrategy[Answer]:
    """Success, the code-210 partial import (400 with the failures in ResultData), or any error."""
    result = import_results(records)
    partial = near(Code=st.just(PARTIAL_IMPORT), Message=texts, ResultData=result)
    return st.one_of(answers(result), st.builds(Answer, st.just(400), raw_bodies(partial)))


def check_batch_result(result: BatchResult, records: list[Record]) -> None:
    """One outcome per record, in order, with a reason wherever one is required."""
    assert [o.key for o in result.outcomes] == [r.key for r in records]
    for outcome in result.outcomes:
        assert isinstance(outcome.status, OutcomeStatus)
        if outcome.status in (OutcomeStatus.REJECTED, OutcomeStatus.RETRYABLE, OutcomeStatus.SKIPPED):
            assert isinstance(outcome.reason, str) and outcome.reason.strip(), outcome


@st.composite
def imports(draw: st.DrawFn) -> tuple[list[Record], Answer]:
    records = draw(batches_of_records())
    return records, draw(import_answers(records))


ONE = [Record("p0", "p0@example.com", {})]


@given(batch=imports())
@example(batch=(ONE, Answer(400, b'{"Code": 210, "ResultData": {"FailureDetails": {"a": 1}}}')))  # was: AttributeError
@example(batch=(ONE, Answer(400, b'{"Code": 210, "ResultData": {"FailureDetails": [1]}}')))  # was: AttributeError
@example(batch=(ONE, Answer(201, b'["p0@example.com"]')))  # was: AttributeError
def test_import_under_any_answers(session: requests.Session, batch: tuple[list[Record], Answer]) -> None:
    """Any answer to import.json: one outcome per record, or a documented error."""
    records, answer = batch
    writer = CampaignMonitorWriter(session, CONFIG, RunContext("fuzz", OPTIONS, list(EXPORTED), ["Name", "plan"]))
    writer.field_keys["plan"] = "plan"  # what prepare() found (prepare is covered by test_writer.py)
    writer.membership_key = "segments"
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.add_callback("POST", IMPORT_URL, callback=lambda _: answer.reply())
        try:
            result = writer.write_batch(records)
        except SegportError as exc:
            check_error(exc)
            return
        check_batch_result(result, records)
        assert result.requests == len(rsps.calls)


@given(records=batches_of_records(), failed=st.data())
def test_partial_import_rejects_exactly_the_failed_rows(
    session: requests.Session, records: list[Record], failed: st.DataObject
) -> None:
    """A well-formed code-210 answer rejects the rows it names (in any case, with spaces) and only those."""
    named = failed.draw(st.lists(st.sampled_from(records), unique_by=lambda r: r.key), label="failed")
    spelled = [failed.draw(st.sampled_from([r.email, r.email.upper(), f" {r.email} "])) for r in named]
    details = [{"EmailAddress": e, "Code": 1, "Message": "Invalid Email Address"} for e in spelled]
    writer = CampaignMonitorWriter(session, CONFIG, RunContext("fuzz", OPTIONS, list(EXPORTED), ["Name", "plan"]))
    writer.field_keys["plan"] = "plan"
    writer.membership_key = "segments"
    body = {"Code": PARTIAL_IMPORT, "Message": "Subscriber Import had some failures", "ResultData": {}}
    body["ResultData"] = {"FailureDetails": details, "TotalUniqueEmailsSubmitted": len(records)}
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.post(IMPORT_URL, json=body, status=400)
        result = writer.write_batch(records)
    rejected = {o.key for o in result.outcomes if o.status is OutcomeStatus.REJECTED}
    assert rejected == {r.key for r in named}


# -- pre-flight ------------------------------------------------------------------------------------
class Scripted:
    """One answer per endpoint, drawn before the run (prepare() calls from worker threads)."""

    def __init__(self, script: dict[str, Answer]) -> None:
        self.script = script

    def callback(self, name: str) -> Callable[[Any], tuple[int, dict[str, str], bytes]]:
        return lambda _: self.script[name].reply()


custom_fields = near(
    FieldName=st.sampled_from(["plan", "Plan", "Segments", "score"]),
    Key=st.sampled_from(["[plan]", "[segments]", "[score]", ""]),
    DataType=st.sampled_from(["Text", "Number", "MultiSelectMany", "MultiSelectOne"]),
    FieldOptions=listed(st.sampled_from([*EXPORTED, "Other"])),
)
PREFLIGHT = {
    "list": answers(near(ListID=st.just(LIST_ID), Title=texts)),
    "fields": answers(listed(custom_fields)),
    "segments": answers(listed(near(ListID=st.just(LIST_ID), SegmentID=texts, Title=st.sampled_from(EXPORTED)))),
    "new field": answers(st.sampled_from(["[Segments]", "", "[]"])),
    "options": answers(st.none()),
    "new segment": answers(st.text(max_size=8)),
    "clients": answers(listed(near(ClientID=st.sampled_from(["c1", "c2"]), Name=texts))),
    "client lists": answers(listed(near(ListID=texts, Name=texts))),
}


@given(script=st.fixed_dictionaries(PREFLIGHT), rule_segments=st.booleans())
def test_prepare_under_any_answers(session: requests.Session, script: dict[str, Answer], rule_segments: bool) -> None:
    """Any answers to the pre-flight reads and creates: ready to write, or a documented error."""
    options = {**OPTIONS, "create_rule_segments": rule_segments}
    writer = CampaignMonitorWriter(session, CONFIG, RunContext("fuzz", options, list(EXPORTED), ["Name", "plan"]))
    scripted = Scripted(script)
    lists = f"{BASE}/lists/{LIST_ID}"
    routes: list[tuple[str, str | re.Pattern[str], str]] = [
        ("GET", f"{lists}.json", "list"),
        ("GET", f"{lists}/customfields.json", "fields"),
        ("GET", f"{lists}/segments.json", "segments"),
        ("POST", f"{lists}/customfields.json", "new field"),
        ("PUT", re.compile(re.escape(lists) + r"/customfields/.*/options\.json"), "options"),
        ("POST", f"{BASE}/segments/{LIST_ID}.json", "new segment"),
        ("GET", f"{BASE}/clients.json", "clients"),
        ("GET", re.compile(re.escape(BASE) + r"/clients/.*/lists\.json"), "client lists"),
    ]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        for method, url, name in routes:
            rsps.add_callback(method, url, callback=scripted.callback(name))
        try:
            writer.prepare()
        except SegportError as exc:
            check_error(exc)
            return
    assert writer.membership_key and isinstance(writer.membership_key, str)
    assert set(writer.field_keys) == {"plan"} and all(isinstance(k, str) for k in writer.field_keys.values())
