"""Property-based fuzzing of how the Mailchimp plugin reads Mailchimp's answers.

Whatever Mailchimp (or something in its place) answers, with any status, body or header, the plugin
returns outcomes (retryable when it cannot tell) or raises a documented :class:`SegportError` whose
``str()`` is one line: never a KeyError, TypeError, AttributeError or ValueError. Answers are drawn
lazily, call by call, so a fuzzed answer steers which call comes next. Runs are derandomized, with no
example database; ``SEGPORT_FUZZ_EXAMPLES=5000`` explores further.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
import tarfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import responses
from hypothesis import example, given
from hypothesis import strategies as st

from segport import (
    AuthError,
    BatchResult,
    OutcomeStatus,
    Record,
    RetryableDestinationError,
    RunContext,
    SegportError,
    complete_batch,
)
from segport_mailchimp.api import MailchimpAPI, Problem, error_from
from segport_mailchimp.auth import MailchimpAuth
from segport_mailchimp.batches import BatchJob, BatchRunner, Calls, Results, parse_results
from segport_mailchimp.writer import MailchimpWriter

API_KEY = "0123456789abcdef0123456789abcdef-us7"
CONFIG = {"api_key": API_KEY}
BASE = "https://us7.api.mailchimp.com/3.0"
AUDIENCE = "a1b2c3d4e5"
RESULTS_URL = "https://results.example.net/b1-response.tar.gz"
EXPORTED = ("VIP", "Churn risk")
TAG_IDS = {"VIP": 101, "Churn risk": 102}  # what prepare() found; "Gone" is a tag looked up by name
OPTIONS = {"audience_id": AUDIENCE, "status_if_new": "subscribed", "tag_prefix": "", "on_exit": "remove_tag"}


def one_line(error: BaseException) -> str:
    message = str(error)
    assert message.strip(), f"empty message from {type(error).__name__}"
    assert len(message.splitlines()) == 1, f"multi-line message: {message!r}"  # also U+2028, U+0085, ...
    return message


# -- answers ---------------------------------------------------------------------------------------
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
texts = st.one_of(
    st.text(max_size=20), st.sampled_from(["", "tags", "Invalid Resource", "line\nbreak\r\n", "u\u2028\x85\x1e\x0b"])
)


def near(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Documents shaped like the real one: each field present or not, well-typed or any JSON value."""
    return st.fixed_dictionaries({}, optional={k: st.one_of(v, json_values) for k, v in fields.items()})


def listed(item: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A list of mostly well-shaped items, or anything else."""
    return st.one_of(st.lists(st.one_of(item, json_values), max_size=5), json_values)


def documents(shape: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(shape, shape, json_values)


problems = near(
    type=st.just("https://mailchimp.com/developer/marketing/docs/errors/"),
    title=texts,
    status=st.integers(200, 599),
    detail=texts,
    instance=st.text(max_size=8),
    errors=listed(near(field=texts, message=texts)),
)
STATUSES = st.one_of(
    st.sampled_from([200, 200, 200, 204, 400, 401, 403, 404, 405, 429, 500, 503]), st.integers(200, 599)
)
CONTENT_TYPES = st.sampled_from(
    [None, "application/json; charset=utf-8", "application/problem+json; charset=utf-8", "text/html"]
)


@st.composite
def raw_bodies(draw: st.DrawFn, shape: st.SearchStrategy[Any]) -> bytes:
    """The body bytes: a JSON document (mostly shaped), broken JSON, or any bytes."""
    kind = draw(st.sampled_from(["json", "json", "json", "cut", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    text = json.dumps(draw(documents(shape)), ensure_ascii=draw(st.booleans())).encode()
    return text[: draw(st.integers(0, max(len(text) - 1, 0)))] if kind == "cut" else text


class Answer:
    """One drawn HTTP answer."""

    def __init__(self, status: int, body: bytes, content_type: str | None, retry_after: str | None) -> None:
        self.status, self.body = status, b"" if status in (204, 304) else body  # HTTP forbids a body there
        self.headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if content_type is not None:
            self.headers["Content-Type"] = content_type

    def reply(self) -> tuple[int, dict[str, str], bytes]:
        return self.status, self.headers, self.body

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 200 else self.body[:200] + b"..."
        return f"Answer({self.status}, {body!r}, {self.headers!r})"


retry_afters = st.one_of(
    st.none(),
    st.sampled_from(["5", " 2.5 ", "0", "-1", "nan", "inf", "-inf", "1e999", "Wed, 21 Oct 2015 07:28:00 GMT", ""]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8),
)


def answers(shape: st.SearchStrategy[Any], statuses: st.SearchStrategy[int] = STATUSES) -> st.SearchStrategy[Answer]:
    """Mostly the expected success document; sometimes an error status with a problem document."""
    ok = st.builds(Answer, st.just(200), raw_bodies(shape), CONTENT_TYPES, st.none())
    other = st.builds(Answer, statuses, raw_bodies(problems), CONTENT_TYPES, retry_afters)
    return st.one_of(ok, ok, other)


# -- the API client: problem documents and statuses --------------------------------------------------
@pytest.fixture(scope="module")
def api() -> Iterator[MailchimpAPI]:
    with requests.Session() as http:
        http.auth = MailchimpAuth(CONFIG)
        yield MailchimpAPI(http, CONFIG)


def check_error(error: BaseException) -> None:
    """Only documented errors, one line each; a retry hint is a finite, non-negative number."""
    assert isinstance(error, SegportError), f"{type(error).__name__}: {error}"
    one_line(error)
    if isinstance(error, RetryableDestinationError) and error.retry_after is not None:
        assert math.isfinite(error.retry_after) and error.retry_after >= 0, error.retry_after
    if isinstance(error, Problem):
        assert isinstance(error.status, int) and isinstance(error.title, str) and isinstance(error.detail, str)
        fields = error.field_errors()
        assert isinstance(fields, str) and "\n" not in fields and "\r" not in fields


@given(status=st.integers(0, 999), problem=st.one_of(problems, st.dictionaries(st.text(), json_values)))
@example(status=400, problem={"title": "Invalid Resource", "errors": 5})  # was: TypeError
@example(status=400, problem={"title": "Bad\nthing", "detail": "two\r\nlines"})  # was: a two-line message
def test_error_from_any_problem_document(status: int, problem: dict[str, Any]) -> None:
    error = error_from(status, problem)
    check_error(error)
    if status == 401:
        assert isinstance(error, AuthError)
    elif status == 429 or status >= 500:
        assert isinstance(error, RetryableDestinationError)
    elif status in (400, 404, 405):
        assert isinstance(error, Problem) and error.status == status


@given(answer=answers(json_values, st.integers(200, 599)))
@example(answer=Answer(429, b"{}", None, "nan"))  # was: retry_after=nan
@example(answer=Answer(503, b"", None, "-5"))
def test_any_answer_is_a_document_or_a_segport_error(api: MailchimpAPI, answer: Answer) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        rsps.add_callback("GET", f"{BASE}/lists/{AUDIENCE}", callback=lambda _: answer.reply())
        try:
            found = api.call("GET", f"/lists/{AUDIENCE}")
        except SegportError as exc:
            check_error(exc)
            assert answer.status >= 400
            return
    assert answer.status < 400
    if answer.status == 204:
        assert found is None


# -- /batches results ------------------------------------------------------------------------------
def targz(files: list[tuple[str, bytes]], *, directory: bool = False) -> bytes:
    """A gzipped tar holding ``files`` (and a directory entry first, as Mailchimp's archives have)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        if directory:
            info = tarfile.TarInfo("results")
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


operation_ids = st.sampled_from([f"r{i}" for i in range(8)])
result_items = near(
    status_code=st.one_of(st.integers(100, 599), st.sampled_from(["200", "x", 1e999, 2.5])),
    operation_id=st.one_of(operation_ids, st.integers()),
    response=st.one_of(json_values.map(json.dumps), st.text(max_size=10), st.just("")),
)
result_files = st.one_of(
    listed(result_items).map(lambda items: json.dumps(items).encode()),
    st.sampled_from([b"[" * 5000, b"\xff\xfe", b"", b"[1e999]", b'[{"operation_id": "r0", "status_code": 1e999}]']),
    st.binary(max_size=30),
)


@st.composite
def archives(draw: st.DrawFn) -> bytes:
    """A results archive, well-formed or damaged on purpose."""
    names = st.sampled_from(["results/a.json", "results/b.json", "x", "../up.json", ""])
    files = draw(st.lists(st.tuples(names, result_files), max_size=4))
    data = targz(files, directory=draw(st.booleans()))
    damage = draw(st.sampled_from(["none", "none", "cut", "flip", "gzip-only", "tar-only", "bytes"]))
    if damage == "cut":
        return data[: draw(st.integers(0, len(data) - 1))]
    if damage == "flip":
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    if damage == "gzip-only":
        return gzip.compress(draw(st.binary(max_size=60)))
    if damage == "tar-only":
        return gzip.decompress(data)
    if damage == "bytes":
        return draw(st.binary(max_size=60))
    return data


@given(archive=archives())
@example(archive=targz([("r.json", b'[{"operation_id": "r0", "status_code": 1e999}]')]))  # was: OverflowError
@example(archive=targz([("r.json", b"[" * 5000)]))  # was: RecursionError
@example(archive=targz([("r.json", json.dumps([{"operation_id": "r0", "response": "[" * 5000}]).encode())]))
def test_any_results_archive_is_results_or_retryable(archive: bytes) -> None:
    try:
        found = parse_results(archive)
    except SegportError as exc:
        assert isinstance(exc, RetryableDestinationError), repr(exc)
        one_line(exc)
        return
    assert all(isinstance(k, str) and isinstance(v[0], int) for k, v in found.items())


@given(
    files=st.lists(
        st.lists(st.tuples(operation_ids, st.integers(100, 599), json_values), max_size=5), min_size=1, max_size=3
    ),
)
def test_results_archive_round_trips(files: list[list[tuple[str, int, Any]]]) -> None:
    """What Mailchimp documents (each response a JSON string) comes back exactly; a later file wins."""
    documents = [
        json.dumps([{"status_code": s, "operation_id": op, "response": json.dumps(v)} for op, s, v in items]).encode()
        for items in files
    ]
    expected = {op: (s, v) for items in files for op, s, v in items}
    assert parse_results(targz([(f"results/{i}.json", d) for i, d in enumerate(documents)], directory=True)) == expected


# -- the batch runner ------------------------------------------------------------------------------
class FakeClock:
    """Time that passes only when the runner sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


batch_states = near(
    id=st.one_of(st.just("b1"), st.text(max_size=4)),
    status=st.sampled_from(["finished", "finished", "pending", "started", "finalizing"]),
    response_body_url=st.one_of(st.just(RESULTS_URL), st.sampled_from(["", "ftp://x/y", "http://[::1", "not a url"])),
    total_operations=st.integers(0, 10),
)
archive_answers = st.one_of(
    archives().map(lambda data: Answer(200, data, "application/x-gzip", None)),
    st.builds(Answer, STATUSES, st.binary(max_size=20), st.none(), st.none()),
)


def register(rsps: responses.RequestsMock, method: str, url: str | re.Pattern[str], draw: Callable[[], Answer]) -> None:
    """Answer every ``method url`` call with a freshly drawn answer."""
    rsps.add_callback(method, url, callback=lambda _: draw().reply())


def run_batches(data: st.DataObject, rsps: responses.RequestsMock, api: MailchimpAPI, calls: Calls) -> Any:
    batch = re.compile(re.escape(BASE) + r"/batches/.*")
    register(rsps, "POST", f"{BASE}/batches", lambda: data.draw(answers(batch_states), label="POST /batches"))
    register(rsps, "GET", batch, lambda: data.draw(answers(batch_states), label="GET /batches/{id}"))
    register(rsps, "DELETE", batch, lambda: data.draw(answers(st.just({})), label="DELETE /batches/{id}"))
    register(rsps, "GET", re.compile(r".*"), lambda: data.draw(archive_answers, label="download"))
    clock = FakeClock()
    runner = BatchRunner(api, clock=clock)
    runner.deadline = 6.0  # a few polls, then the job gives up and cancels
    job = runner.submit([{"method": "PUT", "path": "/x", "operation_id": "r0", "body": "{}"}], calls)
    return run_to_end(job, clock.sleep)


def run_to_end(job: BatchJob, sleep: Callable[[float], None]) -> Results:
    """Poll a job as the engine does (sleeping between polls), then take its results."""
    while (wait := job.next_poll()) is not None:
        sleep(wait)
        job.poll()
    return job.results()


@given(data=st.data())
def test_batch_runner_under_any_answers(api: MailchimpAPI, data: st.DataObject) -> None:
    calls = Calls()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        try:
            found = run_batches(data, rsps, api, calls)
        except SegportError as exc:
            check_error(exc)
        else:
            assert isinstance(found, dict)
        assert calls.count >= len(rsps.calls)  # every call counted (a URL requests refuses counts, unsent)


@pytest.mark.parametrize("poll", [None, 400], ids=["finished-without-url", "lost"])
def test_a_batch_id_with_a_line_break_stays_on_one_line(api: MailchimpAPI, poll: int | None) -> None:
    """Found by the fuzzing above (1,500 examples): the batch id went into messages as it came."""
    batch_id = "b\u001e1"  # U+001E is a line break for str.splitlines()
    calls = Calls()
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        status = "finished" if poll is None else "pending"
        rsps.post(f"{BASE}/batches", json={"id": batch_id, "status": status})
        if poll is not None:
            rsps.get(re.compile(re.escape(BASE) + r"/batches/.*"), json={"title": "Gone"}, status=poll)
        runner = BatchRunner(api)
        with pytest.raises(RetryableDestinationError) as caught:
            job = runner.submit([{"method": "PUT", "path": "/x", "operation_id": "r0", "body": "{}"}], calls)
            run_to_end(job, lambda _: None)
    assert one_line(caught.value).startswith("Mailchimp ")


# -- the writer ------------------------------------------------------------------------------------
@st.composite
def batches_of_records(draw: st.DrawFn) -> list[Record]:
    """Up to 8 records: new or known people, field changes or marker changes only.

    Half the batches are only known people with changed fields, so that from BATCH_UPDATES_FROM on
    their updates go through ``/batches``.
    """
    records = []
    known = draw(st.booleans())
    for i in range(draw(st.integers(1, 8))):
        upsert = known or draw(st.booleans())
        add = draw(st.frozensets(st.sampled_from(EXPORTED), max_size=2))
        remove = draw(st.frozensets(st.sampled_from(["Gone", *EXPORTED]), max_size=2)) - add
        fields = {"FNAME": draw(st.one_of(st.text(max_size=5), st.integers(), st.booleans(), st.none()))}
        records.append(
            Record(f"p{i}", f"p{i}@example.com", fields, add, add, remove, upsert, not known and draw(st.booleans()))
        )
    return records


def emails_of(records: list[Record]) -> st.SearchStrategy[str]:
    """Addresses Mailchimp might echo: the records', in any case, with spaces, or others."""
    known = st.sampled_from([r.email for r in records])
    return st.one_of(known, known.map(str.upper), known.map(lambda e: f" {e} "), st.just("x@example.com"))


def create_answers(records: list[Record]) -> st.SearchStrategy[Any]:
    """Batch-subscribe answers: new members (with tags) and per-member errors.

    See docs/providers/mailchimp.md#batch-subscribe-answer.
    """
    email = emails_of(records)
    tags = listed(near(id=st.integers(), name=st.sampled_from(["VIP", "vip", "Churn risk", "Other"])))
    members = near(email_address=email, status=st.sampled_from(["subscribed", "pending"]), tags=tags)
    codes = st.sampled_from(["ERROR_CONTACT_EXISTS", "ERROR_GENERIC", ""])
    errors = near(
        email_address=email,
        error=st.one_of(texts, st.just("x is already a list member"), st.just("in a compliance state")),
        error_code=codes,
        field=texts,
        field_message=texts,
    )
    return near(
        new_members=listed(members),
        updated_members=listed(members),
        errors=listed(errors),
        total_created=st.integers(0, 8),
        error_count=st.integers(0, 8),
    )


def member_answers(records: list[Record]) -> st.SearchStrategy[Any]:
    return near(email_address=emails_of(records), status=st.sampled_from(["subscribed", "unsubscribed", "cleaned"]))


def results_archives(records: list[Record]) -> st.SearchStrategy[Answer]:
    """Mostly real results of the update operations r0..r7, each a PUT answer as a JSON string.

    See docs/providers/mailchimp.md#batch-results.
    """
    item = st.builds(
        lambda op, status, body: {"operation_id": op, "status_code": status, "response": json.dumps(body)},
        operation_ids,
        st.sampled_from([200, 200, 400, 404, 429, 500]),
        st.one_of(member_answers(records), problems),
    )
    real = st.lists(item, max_size=8).map(lambda items: targz([("results/r.json", json.dumps(items).encode())]))
    return st.one_of(real.map(lambda data: Answer(200, data, None, None)), archive_answers)


def segment_answers(records: list[Record]) -> st.SearchStrategy[Any]:
    errors = near(email_addresses=listed(emails_of(records)), error=texts)
    return near(members_added=listed(json_values), members_removed=listed(json_values), errors=listed(errors))


tag_search_answers = near(
    tags=listed(near(id=st.one_of(st.integers(0, 999), st.just("7")), name=st.sampled_from(["Gone", "gone", "x"]))),
    total_items=st.integers(0, 3),
)


def answer_all(data: st.DataObject, rsps: responses.RequestsMock, records: list[Record]) -> None:
    """Register a drawn answer for every call the writer may make."""
    lists = f"{BASE}/lists/{AUDIENCE}"
    any_id = r"/[^/?]+"

    def drawn(shape: st.SearchStrategy[Any], label: str) -> Callable[[], Answer]:
        return lambda: data.draw(answers(shape), label=label)

    register(rsps, "POST", lists, drawn(create_answers(records), "POST batch-subscribe"))
    register(rsps, "PUT", re.compile(re.escape(lists) + "/members" + any_id), drawn(member_answers(records), "PUT"))
    register(rsps, "DELETE", re.compile(re.escape(lists) + "/members" + any_id), drawn(st.just({}), "DELETE"))
    register(rsps, "POST", re.compile(re.escape(lists) + "/segments" + any_id), drawn(segment_answers(records), "tag"))
    register(rsps, "GET", re.compile(re.escape(lists) + r"/tag-search.*"), drawn(tag_search_answers, "tag-search"))
    batch = re.compile(re.escape(BASE) + r"/batches/.*")
    register(rsps, "POST", f"{BASE}/batches", drawn(batch_states, "POST /batches"))
    register(rsps, "GET", batch, drawn(batch_states, "GET /batches/{id}"))
    register(rsps, "DELETE", batch, drawn(st.just({}), "DELETE /batches/{id}"))
    register(rsps, "GET", RESULTS_URL, lambda: data.draw(results_archives(records), label="download"))


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.auth = MailchimpAuth(CONFIG)
        yield http


def check_batch_result(result: BatchResult, records: list[Record]) -> None:
    """One outcome per record, in order, with a reason wherever one is required."""
    assert [o.key for o in result.outcomes] == [r.key for r in records]
    for outcome in result.outcomes:
        assert isinstance(outcome.status, OutcomeStatus)
        if outcome.status in (OutcomeStatus.REJECTED, OutcomeStatus.RETRYABLE, OutcomeStatus.SKIPPED):
            assert isinstance(outcome.reason, str) and outcome.reason.strip(), outcome


@given(records=batches_of_records(), archive_on_exit=st.booleans(), data=st.data())
def test_write_batch_under_any_answers(
    session: requests.Session, records: list[Record], archive_on_exit: bool, data: st.DataObject
) -> None:
    """Any answers to any of its calls: outcomes for every record, or a documented error."""
    options = {**OPTIONS, "on_exit": "archive" if archive_on_exit else "remove_tag"}
    writer = MailchimpWriter(session, CONFIG, RunContext("fuzz", options, list(EXPORTED), ["FNAME"]))
    writer.tag_ids.update(TAG_IDS)
    writer.field_tags["FNAME"] = "FNAME"
    clock = FakeClock()
    writer.batches = BatchRunner(writer.api, clock=clock)
    writer.batches.deadline = 6.0
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        answer_all(data, rsps, records)
        try:
            result = complete_batch(writer.write_batch(records), sleep=clock.sleep)
        except SegportError as exc:
            check_error(exc)
            return
        check_batch_result(result, records)
        assert result.requests == len(rsps.calls), "every call made is counted"


# -- pre-flight ------------------------------------------------------------------------------------
class Scripted:
    """Answers drawn before the run, per endpoint, in call order; then an empty object (the last page).

    prepare() calls from worker threads, where Hypothesis cannot draw: so everything is drawn first.
    """

    def __init__(self, script: dict[str, list[Answer]]) -> None:
        self.script = {name: list(answers) for name, answers in script.items()}
        self.lock = threading.Lock()

    def callback(self, name: str) -> Callable[[Any], tuple[int, dict[str, str], bytes]]:
        def answer(_: Any) -> tuple[int, dict[str, str], bytes]:
            with self.lock:
                queue = self.script.get(name) or [Answer(200, b"{}", None, None)]
                return (queue.pop(0) if len(queue) > 1 else queue[0]).reply()

        return answer


merge_fields = near(
    tag=st.sampled_from(["FNAME", "LNAME", "fname", "ADDRESS"]),
    name=st.text(max_size=5),
    type=st.sampled_from(["text", "number", "address", "birthday"]),
    required=st.booleans(),
)
static_segments = near(id=st.one_of(st.integers(0, 999), st.just("12")), name=st.sampled_from([*EXPORTED, "vip"]))


def pages(key: str, item: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Answer]]:
    page = near(**{key: listed(item)}, total_items=st.integers(0, 12))
    return st.lists(answers(page), min_size=1, max_size=3)


PREFLIGHT = {
    "audience": st.lists(answers(near(id=st.just(AUDIENCE), name=texts)), min_size=1, max_size=1),
    "audiences": st.lists(answers(near(lists=listed(near(id=texts, name=texts)))), min_size=1, max_size=1),
    "merge-fields": pages("merge_fields", merge_fields),
    "segments": pages("segments", static_segments),
    "new merge field": st.lists(answers(merge_fields), min_size=1, max_size=2),
    "new segment": st.lists(answers(static_segments), min_size=1, max_size=2),
}


@given(script=st.fixed_dictionaries(PREFLIGHT), create=st.booleans())
def test_prepare_under_any_answers(session: requests.Session, script: dict[str, list[Answer]], create: bool) -> None:
    """Any answers to the pre-flight reads and creates: ready to write (every tag has an id), or a documented error."""
    options = {**OPTIONS, "create_missing_fields": create}
    writer = MailchimpWriter(session, CONFIG, RunContext("fuzz", options, list(EXPORTED), ["FNAME", "LNAME"]))
    scripted = Scripted(script)
    lists = f"{BASE}/lists/{AUDIENCE}"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback("GET", re.compile(re.escape(lists) + r"\?"), callback=scripted.callback("audience"))
        rsps.add_callback("GET", re.compile(re.escape(BASE) + r"/lists\?"), callback=scripted.callback("audiences"))
        for name in ("merge-fields", "segments"):
            rsps.add_callback("GET", re.compile(f"{re.escape(lists)}/{name}"), callback=scripted.callback(name))
        rsps.add_callback("POST", f"{lists}/merge-fields", callback=scripted.callback("new merge field"))
        rsps.add_callback("POST", f"{lists}/segments", callback=scripted.callback("new segment"))
        try:
            writer.prepare()
        except SegportError as exc:
            check_error(exc)
            return
    assert set(writer.tag_ids) == set(EXPORTED) and all(type(i) is int for i in writer.tag_ids.values())
    assert set(writer.field_tags) == {"FNAME", "LNAME"} and all(isinstance(t, str) for t in writer.field_tags.values())
