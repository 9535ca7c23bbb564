"""MailchimpWriter against a strict ``responses`` mock: pre-flight, consent-safe upserts, tags, errors.

API facts: docs/providers/mailchimp.md (the batch endpoint, members, tags and static segments,
errors, statuses). Every registered response must fire, and an unregistered call fails, so
"no other call was made" is asserted by the mock itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import threading
from typing import Any, Callable, Iterable

import pytest
import requests
import responses
from responses import matchers

from segport import (
    AuthError,
    BadBatchError,
    BatchResult,
    ConfigError,
    Outcome,
    OutcomeStatus,
    Record,
    RetryableDestinationError,
    RunContext,
    UnknownAudienceError,
    complete_batch,
)
from segport.config import validate
from segport.testing.pytest_plugin import ORDERED
from segport_mailchimp import MailchimpDestination
from segport_mailchimp.auth import MailchimpAuth
from segport_mailchimp.writer import MailchimpWriter

API_KEY = "0123456789abcdef0123456789abcdef-us7"
CONFIG = {"api_key": API_KEY}
BASE = "https://us7.api.mailchimp.com/3.0"
AUDIENCE = "a1b2c3d4e5"
LIST_URL = f"{BASE}/lists/{AUDIENCE}"
MEMBERS_URL = f"{LIST_URL}/members"
SEGMENTS_URL = f"{LIST_URL}/segments"
MERGE_URL = f"{LIST_URL}/merge-fields"
BATCHES_URL = f"{BASE}/batches"
BATCH_ID = "b7c1d2e3f4"
# another host (docs/providers/mailchimp.md#batch-results)
RESULTS_URL = f"https://results.example.net/{BATCH_ID}-response.tar.gz"
OPTIONS = {
    "audience_id": AUDIENCE,
    "status_if_new": "subscribed",
    "tag_prefix": "",
    "create_missing_fields": False,
    "on_exit": "remove_tag",
}
EXPORTED = ("VIP", "Churn risk")
VIP, CHURN = 101, 102  # the static segment (tag) ids of the two exported segments

FNAME = {"merge_id": 1, "tag": "FNAME", "name": "First Name", "type": "text", "required": False}
LNAME = {"merge_id": 2, "tag": "LNAME", "name": "Last Name", "type": "text", "required": False}
ADDRESS = {"merge_id": 3, "tag": "ADDRESS", "name": "Address", "type": "address", "required": False}
PHONE = {"merge_id": 4, "tag": "PHONE", "name": "Phone Number", "type": "phone", "required": False}
STANDARD_FIELDS = (FNAME, LNAME, ADDRESS, PHONE)
STANDARD_TAGS = ({"id": VIP, "name": "VIP", "type": "static"}, {"id": CHURN, "name": "Churn risk", "type": "static"})

BASIC = matchers.header_matcher({"Authorization": re.compile(r"^Basic [A-Za-z0-9+/]+=*$")})
PROBLEM_TYPE = "application/problem+json; charset=utf-8"


# -- fixtures and helpers -------------------------------------------------------------------------
@pytest.fixture
def make_writer(session: requests.Session) -> Callable[..., MailchimpWriter]:
    session.auth = MailchimpAuth(CONFIG)

    def make(
        *,
        segments: Iterable[str] = EXPORTED,
        mapped: Iterable[str] = ("FNAME", "LNAME"),
        archived_by_segport: dict[str, str] | None = None,
        dry_run: bool = False,
        **options: Any,
    ) -> MailchimpWriter:
        context = RunContext(
            "vip-export",
            {**OPTIONS, **options},
            list(segments),
            list(mapped),
            dry_run=dry_run,
            archived_by_segport=archived_by_segport or {},
        )
        return MailchimpWriter(session, CONFIG, context)

    return make


@pytest.fixture
def prepared(
    rsps: responses.RequestsMock, make_writer: Callable[..., MailchimpWriter]
) -> Callable[..., MailchimpWriter]:
    """``prepared(**options)``: a writer whose prepare() found FNAME/LNAME and tags VIP (101), Churn risk (102).

    ``held={"archived": [...], "unsubscribed": [...], "cleaned": [...]}`` are the pre-flight's listings.
    """

    def make(held: dict[str, list[str]] | None = None, **options: Any) -> MailchimpWriter:
        expect_audience(rsps)
        expect_merge_fields(rsps, STANDARD_FIELDS)
        expect_segments(rsps, STANDARD_TAGS)
        expect_held(rsps, **(held or {}))
        writer = make_writer(**options)
        writer.prepare()
        return writer

    return make


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


def problem(status: int, title: str, detail: str, **extra: Any) -> str:
    return json.dumps(
        {
            "type": "https://mailchimp.com/developer/marketing/docs/errors/",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": "5d3d4f4e-2a8b-4c5e-9b8e-1f2e3d4c5b6a",
            **extra,
        }
    )


def query(**params: Any) -> Any:
    return matchers.query_param_matcher(params)


def expect_audience(rsps: responses.RequestsMock) -> None:
    rsps.get(LIST_URL, json={"id": AUDIENCE, "name": "Newsletter"}, match=[query(fields="id,name"), BASIC])


def expect_merge_fields(
    rsps: responses.RequestsMock, fields: Iterable[dict[str, Any]], *, offset: int = 0, total: int | None = None
) -> None:
    page = list(fields)
    body = {"merge_fields": page, "list_id": AUDIENCE, "total_items": len(page) if total is None else total}
    rsps.get(MERGE_URL, json=body, match=[query(count=1000, offset=offset)])


def expect_segments(
    rsps: responses.RequestsMock, segments: Iterable[dict[str, Any]], *, offset: int = 0, total: int | None = None
) -> None:
    page = list(segments)
    body = {"segments": page, "list_id": AUDIENCE, "total_items": len(page) if total is None else total}
    rsps.get(SEGMENTS_URL, json=body, match=[query(type="static", count=1000, offset=offset)])


def expect_held(
    rsps: responses.RequestsMock,
    archived: Iterable[str] = (),
    unsubscribed: Iterable[str] = (),
    cleaned: Iterable[str] = (),
) -> None:
    """The pre-flight's listings of archived, unsubscribed and cleaned members: addresses only, one page each.

    See docs/providers/mailchimp.md#archived-and-unsubscribed-members.
    """
    for status, emails in (("archived", archived), ("unsubscribed", unsubscribed), ("cleaned", cleaned)):
        page = [{"email_address": email} for email in emails]
        body = {"members": page, "total_items": len(page)}
        fields = "members.email_address,total_items"
        rsps.get(MEMBERS_URL, json=body, match=[query(status=status, fields=fields, count=1000, offset=0)])


def rec(
    name: str,
    *,
    new: bool = True,
    upsert: bool = True,
    segments: Iterable[str] | None = None,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    fields: dict[str, Any] | None = None,
) -> Record:
    """A record for ``<name>@example.com`` (key ``p-<name>``); segments default to ``add``."""
    return Record(
        f"p-{name}",
        f"{name}@example.com",
        {"FNAME": name.title(), "LNAME": "Example"} if fields is None else fields,
        frozenset(add if segments is None else segments),
        frozenset(add),
        frozenset(remove),
        upsert,
        new,
    )


def member_json(record: Record, *, status: str | None = "subscribed", tags: bool = True) -> dict[str, Any]:
    """The member body the writer must send: batch create (with ``status`` and ``tags``) or PUT (``status=None``)."""
    body: dict[str, Any] = {"email_address": record.email}
    if status is not None:
        body["status"] = status
    if record.fields:
        body["merge_fields"] = dict(record.fields)
    if status is not None and tags and record.add:
        body["tags"] = sorted(record.add)
    return body


def member(email: str, status: str = "subscribed", tags: Iterable[str] = ()) -> dict[str, Any]:
    """A list-member object as Mailchimp answers it (docs/providers/mailchimp.md#member-object)."""
    return {
        "id": md5(email),
        "email_address": email,
        "status": status,
        "merge_fields": {},
        "tags": [{"id": 900 + i, "name": name} for i, name in enumerate(tags)],
        "list_id": AUDIENCE,
    }


def batch_answer(
    created: Iterable[str] = (), errors: Iterable[dict[str, Any]] = (), tags: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """The batch create's answer; ``tags`` (email -> names) are shown on the new members."""
    new, errs = [member(e, tags=(tags or {}).get(e, ())) for e in created], list(errors)
    return {
        "new_members": new,
        "updated_members": [],
        "errors": errs,
        "total_created": len(new),
        "total_updated": 0,
        "error_count": len(errs),
    }


def batch_error(email: str, error: str, code: str = "ERROR_GENERIC", **extra: Any) -> dict[str, Any]:
    return {"email_address": email, "error": error, "error_code": code, "field": "", "field_message": "", **extra}


def segment_answer(
    added: Iterable[str] = (), removed: Iterable[str] = (), errors: Iterable[Any] = ()
) -> dict[str, Any]:
    a, r, e = [member(x) for x in added], [member(x) for x in removed], list(errors)
    return {
        "members_added": a,
        "members_removed": r,
        "errors": e,
        "total_added": len(a),
        "total_removed": len(r),
        "error_count": len(e),
    }


def expect_batch(
    rsps: responses.RequestsMock,
    records: Iterable[Record],
    answer: dict[str, Any],
    *,
    tags: bool = True,
    **options: Any,
) -> None:
    status = options.get("status_if_new", "subscribed")
    body = {"members": [member_json(r, status=status, tags=tags) for r in records], "update_existing": False}
    rsps.post(LIST_URL, json=answer, match=[matchers.json_params_matcher(body), BASIC])


def expect_put(
    rsps: responses.RequestsMock, record: Record, *, status: str = "subscribed", status_if_new: str = "subscribed"
) -> None:
    body = {**member_json(record, status=None), "status_if_new": status_if_new}
    rsps.put(
        f"{MEMBERS_URL}/{md5(record.email)}",
        json=member(record.email, status),
        match=[matchers.json_params_matcher(body)],
    )


def expect_tag(
    rsps: responses.RequestsMock,
    tag_id: int,
    add: Iterable[Record] = (),
    remove: Iterable[Record] = (),
    answer: dict[str, Any] | None = None,
) -> None:
    to_add, to_remove = [r.email for r in add], [r.email for r in remove]
    body = {"members_to_add": to_add, "members_to_remove": to_remove}
    rsps.post(
        f"{SEGMENTS_URL}/{tag_id}",
        json=answer if answer is not None else segment_answer(to_add, to_remove),
        match=[matchers.json_params_matcher(body)],
    )


def batch_resource(status: str, total: int, **extra: Any) -> dict[str, Any]:
    """A batch resource; a finished one carries the results URL (with its own secret).

    See docs/providers/mailchimp.md#batch-status.
    """
    done = total if status == "finished" else 0
    return {
        "id": BATCH_ID,
        "status": status,
        "total_operations": total,
        "finished_operations": done,
        "errored_operations": 0,
        "submitted_at": "2024-05-01T12:00:00+00:00",
        "completed_at": "2024-05-01T12:00:09+00:00" if status == "finished" else "",
        "response_body_url": f"{RESULTS_URL}?signature=s3cr3t" if status == "finished" else "",
        **extra,
    }


def op_result(operation_id: str, status: int, response: Any) -> dict[str, Any]:
    """One item of a results file: ``response`` is a JSON *string* (docs/providers/mailchimp.md#batch-results)."""
    return {"status_code": status, "operation_id": operation_id, "response": json.dumps(response)}


def results_tar(files: Iterable[Any], extra: dict[str, bytes] | None = None) -> bytes:
    """A gzipped tar of JSON array files (docs/providers/mailchimp.md#batch-results), plus ``extra`` raw files."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        contents = {f"{BATCH_ID}/{n}.json": json.dumps(items).encode() for n, items in enumerate(files)}
        for name, data in {**contents, **(extra or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def put_operation(record: Record, operation_id: str, status_if_new: str = "subscribed") -> dict[str, Any]:
    """The /batches operation of one existing person: the single PUT's body as a JSON string.

    See docs/providers/mailchimp.md#batch-operations-request.
    """
    body = {**member_json(record, status=None), "status_if_new": status_if_new}
    path = f"/lists/{AUDIENCE}/members/{md5(record.email)}"
    return {"method": "PUT", "path": path, "operation_id": operation_id, "params": {}, "body": json.dumps(body)}


def expect_batches(
    rsps: responses.RequestsMock,
    records: Iterable[Record],
    polls: Iterable[dict[str, Any]],
    archive: bytes | None = None,
    status_if_new: str = "subscribed",
) -> None:
    """POST /batches with one PUT per record (``r0``, ``r1``…), the given polls, then the download."""
    operations = [put_operation(r, f"r{i}", status_if_new) for i, r in enumerate(records)]
    rsps.post(
        BATCHES_URL,
        json=batch_resource("pending", len(operations)),
        match=[matchers.json_params_matcher({"operations": operations}), BASIC],
    )
    for answer in polls:
        rsps.get(f"{BATCHES_URL}/{BATCH_ID}", **answer)
    if archive is not None:
        rsps.get(RESULTS_URL, body=archive, content_type="application/gzip", match=[query(signature="s3cr3t")])


def finished(total: int) -> dict[str, Any]:
    return {"json": batch_resource("finished", total)}


def bodies(rsps: responses.RequestsMock, start: int = 0) -> list[tuple[str, str, Any]]:
    """(method, path, JSON body) of each call since ``start``."""
    sent = []
    for call in list(rsps.calls)[start:]:
        url = str(call.request.url).split("?")[0].removeprefix(BASE)
        sent.append((str(call.request.method), url, sent_json(call.request)))
    return sent


def sent_json(request: requests.PreparedRequest) -> Any:
    """The JSON body of a request (None when it had none)."""
    return json.loads(request.body) if request.body else None


def statuses(outcomes: Iterable[Outcome]) -> dict[str, OutcomeStatus]:
    return {o.key: o.status for o in outcomes}


# -- prepare(): audience ----------------------------------------------------------------------------
def test_prepare_reads_audience_merge_fields_and_tags_at_once(rsps: responses.RequestsMock, make_writer: Any) -> None:
    together = threading.Barrier(3, timeout=5)  # broken (and the test failed) unless all three are in flight

    def answer(body: dict[str, Any]) -> Callable[[requests.PreparedRequest], tuple[int, dict[str, str], str]]:
        def reply(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
            together.wait()
            return 200, {}, json.dumps(body)

        return reply

    rsps.add_callback(responses.GET, LIST_URL, callback=answer({"id": AUDIENCE, "name": "Newsletter"}))
    fields = {"merge_fields": list(STANDARD_FIELDS), "list_id": AUDIENCE, "total_items": 4}
    rsps.add_callback(responses.GET, MERGE_URL, callback=answer(fields))
    tags = {"segments": list(STANDARD_TAGS), "list_id": AUDIENCE, "total_items": 2}
    rsps.add_callback(responses.GET, SEGMENTS_URL, callback=answer(tags))

    writer = make_writer()
    expect_held(rsps)
    writer.prepare()  # FNAME/LNAME exist, both tags exist: nothing is created

    assert sorted((m, p) for m, p, _ in bodies(rsps)) == [
        ("GET", f"/lists/{AUDIENCE}"),
        *[("GET", f"/lists/{AUDIENCE}/members")] * 3,  # archived, unsubscribed, cleaned: after the checks
        ("GET", f"/lists/{AUDIENCE}/merge-fields"),
        ("GET", f"/lists/{AUDIENCE}/segments"),
    ]
    assert writer.tag_ids == {"VIP": VIP, "Churn risk": CHURN}


def test_prepare_unknown_audience_lists_the_known_ones(rsps: responses.RequestsMock, make_writer: Any) -> None:
    not_found = problem(404, "Resource Not Found", "The requested resource could not be found.")
    fast = threading.Event()

    def slow_audience(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        fast.wait(5)  # the merge-field 404 comes first: the audience's must still win
        return 404, {"Content-Type": PROBLEM_TYPE}, not_found

    def fast_merge_fields(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        fast.set()
        return 404, {"Content-Type": PROBLEM_TYPE}, not_found

    rsps.add_callback(responses.GET, LIST_URL, callback=slow_audience)
    rsps.add_callback(responses.GET, MERGE_URL, callback=fast_merge_fields)
    rsps.get(SEGMENTS_URL, status=404, body=not_found, content_type=PROBLEM_TYPE)
    rsps.get(
        f"{BASE}/lists",
        json={
            "lists": [{"id": "f00ba40001", "name": "Newsletter"}, {"id": "c0ffee0002", "name": "Customers"}],
            "total_items": 2,
        },
        match=[query(count=1000, fields="lists.id,lists.name")],
    )

    with pytest.raises(UnknownAudienceError) as caught:
        make_writer().prepare()

    assert str(caught.value) == (
        f"Mailchimp audience {AUDIENCE!r} does not exist for these credentials "
        "(audiences: f00ba40001 (Newsletter), c0ffee0002 (Customers)); "
        "fix --option audience_id (the API list id, not the web id in the browser URL)"
    )


def test_prepare_with_refused_credentials_is_an_auth_error(rsps: responses.RequestsMock, make_writer: Any) -> None:
    rsps.get(
        LIST_URL,
        status=401,
        content_type=PROBLEM_TYPE,
        body=problem(
            401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter."
        ),
    )

    with pytest.raises(AuthError) as caught:
        make_writer().prepare()
    assert API_KEY.split("-")[0] not in str(caught.value)


# -- prepare(): merge fields ------------------------------------------------------------------------
def test_prepare_accepts_mapped_fields_present_in_any_case(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_audience(rsps)
    expect_merge_fields(rsps, STANDARD_FIELDS)
    expect_segments(rsps, STANDARD_TAGS)
    writer = make_writer(mapped=["fname"])
    expect_held(rsps)
    writer.prepare()

    # the lower-case mapped name is sent under the audience's own merge tag
    record = Record("p-ada", "ada@example.com", {"fname": "Ada"})
    rsps.post(
        LIST_URL,
        json=batch_answer([record.email]),
        match=[
            matchers.json_params_matcher(
                {
                    "members": [
                        {"email_address": "ada@example.com", "status": "subscribed", "merge_fields": {"FNAME": "Ada"}}
                    ],
                    "update_existing": False,
                }
            )
        ],
    )
    result = writer.write_batch([record])
    assert result.outcomes == [Outcome("p-ada", OutcomeStatus.CREATED)]


def test_prepare_missing_merge_field_names_it_and_the_option(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_audience(rsps)
    expect_merge_fields(rsps, STANDARD_FIELDS)

    with pytest.raises(ConfigError) as caught:
        make_writer(mapped=["FNAME", "PLAN"]).prepare()

    message = str(caught.value)
    assert "PLAN" in message
    assert "create_missing_fields" in message
    assert "FNAME" not in message


def test_prepare_creates_missing_merge_fields_when_allowed(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_audience(rsps)
    expect_merge_fields(rsps, STANDARD_FIELDS)
    rsps.post(
        MERGE_URL,
        json={"merge_id": 9, "tag": "PLAN", "name": "PLAN", "type": "text", "required": False},
        match=[matchers.json_params_matcher({"name": "PLAN", "tag": "PLAN", "type": "text"})],
    )
    expect_segments(rsps, STANDARD_TAGS)

    expect_held(rsps)
    make_writer(mapped=["FNAME", "PLAN"], create_missing_fields=True).prepare()

    assert [m for m, _, _ in bodies(rsps)].count("POST") == 1


def test_dry_run_prepare_reads_and_notes_the_fields_and_tags_the_run_would_create(
    rsps: responses.RequestsMock, make_writer: Any
) -> None:
    expect_audience(rsps)
    expect_merge_fields(rsps, STANDARD_FIELDS)
    expect_segments(rsps, STANDARD_TAGS[:1])  # "Churn risk" has no tag yet
    expect_held(rsps, archived=["gone@example.com"])

    writer = make_writer(mapped=["FNAME", "PLAN"], create_missing_fields=True, dry_run=True, tag_prefix="")
    writer.prepare()  # no POST is registered: the strict mock would refuse one

    assert {method for method, _, _ in bodies(rsps)} == {"GET"}
    assert writer.would_create == ["merge field PLAN (text)", "tag Churn risk"]
    assert writer.held == {"gone@example.com": "archived"}  # the same reads as the run's pre-flight


def test_dry_run_prepare_refuses_a_missing_merge_field_as_the_run_does(
    rsps: responses.RequestsMock, make_writer: Any
) -> None:
    messages = []
    for dry_run in (False, True):
        expect_audience(rsps)
        expect_merge_fields(rsps, STANDARD_FIELDS)
        with pytest.raises(ConfigError) as caught:
            make_writer(mapped=["FNAME", "PLAN"], dry_run=dry_run).prepare()
        messages.append(str(caught.value))
    assert messages[0] == messages[1] and "has no merge field PLAN" in messages[0]


def test_prepare_pages_through_merge_fields(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_audience(rsps)
    expect_merge_fields(rsps, [FNAME, ADDRESS], total=3)
    expect_merge_fields(rsps, [LNAME], offset=2, total=3)
    expect_segments(rsps, STANDARD_TAGS)

    expect_held(rsps)
    make_writer(mapped=["FNAME", "LNAME"]).prepare()  # LNAME is on page 2: no ConfigError


def test_prepare_refuses_an_address_merge_field(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_audience(rsps)
    expect_merge_fields(rsps, STANDARD_FIELDS)

    with pytest.raises(ConfigError) as caught:
        make_writer(mapped=["FNAME", "ADDRESS"]).prepare()

    assert "ADDRESS" in str(caught.value)
    assert "address" in str(caught.value)


def test_prepare_refuses_a_required_merge_field_left_unmapped(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_audience(rsps)
    expect_merge_fields(rsps, [FNAME, {**LNAME, "required": True}, ADDRESS])

    with pytest.raises(ConfigError) as caught:
        make_writer(mapped=["FNAME"]).prepare()

    assert "LNAME" in str(caught.value)
    assert "--map LNAME=" in str(caught.value)


# -- prepare(): tags --------------------------------------------------------------------------------
def test_prepare_finds_tags_case_insensitively_and_creates_missing_ones(
    rsps: responses.RequestsMock, make_writer: Any
) -> None:
    expect_audience(rsps)
    expect_merge_fields(rsps, STANDARD_FIELDS)
    expect_segments(rsps, [{"id": 201, "name": "SEG:VIP", "type": "static"}])  # Mailchimp changed the casing
    rsps.post(
        SEGMENTS_URL,
        json={"id": 205, "name": "seg:Churn risk", "member_count": 0, "type": "static"},
        match=[matchers.json_params_matcher({"name": "seg:Churn risk", "static_segment": []})],
    )
    writer = make_writer(tag_prefix="seg:")
    expect_held(rsps)
    writer.prepare()
    assert [(m, p) for m, p, _ in bodies(rsps) if m == "POST"] == [("POST", f"/lists/{AUDIENCE}/segments")]

    # both ids are then used by write_batch, one call per tag
    ada = rec("ada", upsert=False, new=False, add={"VIP", "Churn risk"})
    expect_tag(rsps, 201, add=[ada])
    expect_tag(rsps, 205, add=[ada])
    result = writer.write_batch([ada])
    assert result.outcomes == [Outcome("p-ada", OutcomeStatus.UPDATED)]
    assert result.requests == 2


def test_prepare_pages_through_static_segments(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_audience(rsps)
    expect_merge_fields(rsps, STANDARD_FIELDS)
    expect_segments(rsps, [{"id": 1, "name": "Other", "type": "static"}, {"id": VIP, "name": "VIP"}], total=3)
    expect_segments(rsps, [{"id": CHURN, "name": "churn RISK", "type": "static"}], offset=2, total=3)

    writer = make_writer()
    expect_held(rsps)
    writer.prepare()  # both found: no POST /segments (unregistered, so it would fail)

    ada = rec("ada", upsert=False, new=False, remove={"Churn risk"}, segments=())
    expect_tag(rsps, CHURN, remove=[ada])
    assert writer.write_batch([ada]).outcomes == [Outcome("p-ada", OutcomeStatus.UPDATED)]


# -- write_batch(): creating new people -------------------------------------------------------------
@pytest.mark.parametrize("status_if_new", ["subscribed", "pending", "transactional"])
def test_new_records_are_batch_created_without_updating_existing(
    rsps: responses.RequestsMock, prepared: Any, status_if_new: str
) -> None:
    writer = prepared(status_if_new=status_if_new)
    start = len(rsps.calls)
    ada, grace = rec("ada"), rec("grace", fields={"FNAME": "Grace", "LNAME": "Hopper", "PHONE": 5551234})
    expect_batch(rsps, [ada, grace], batch_answer([ada.email, grace.email]), status_if_new=status_if_new)

    result = writer.write_batch([ada, grace])

    assert result.outcomes == [Outcome("p-ada", OutcomeStatus.CREATED), Outcome("p-grace", OutcomeStatus.CREATED)]
    assert result.requests == 1 == len(rsps.calls) - start
    ((method, path, body),) = bodies(rsps, start)
    assert (method, path, body["update_existing"]) == ("POST", f"/lists/{AUDIENCE}", False)
    # No `status_if_new` in batch members; no tags when none are added
    # (docs/providers/mailchimp.md#batch-subscribe-request).
    for sent in body["members"]:
        assert "tags" not in sent
        assert "status_if_new" not in sent
        assert sent["status"] == status_if_new


def test_merge_values_are_strings_or_numbers(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    ada = rec("ada", fields={"FNAME": "Ada", "LNAME": True})
    rsps.post(
        LIST_URL,
        json=batch_answer([ada.email]),
        match=[
            matchers.json_params_matcher(
                {
                    "members": [
                        {
                            "email_address": ada.email,
                            "status": "subscribed",
                            "merge_fields": {"FNAME": "Ada", "LNAME": "true"},
                        }
                    ],
                    "update_existing": False,
                }
            )
        ],
    )
    assert writer.write_batch([ada]).outcomes == [Outcome("p-ada", OutcomeStatus.CREATED)]


@ORDERED
def test_contact_exists_is_updated_with_put_and_without_status(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared(status_if_new="pending")
    start = len(rsps.calls)
    ada, grace = rec("ada"), rec("grace")
    exists = batch_error(
        ada.email,
        f"{ada.email} is already a list member. Use PUT to insert or update list members.",
        "ERROR_CONTACT_EXISTS",
    )
    expect_batch(rsps, [ada, grace], batch_answer([grace.email], [exists]), status_if_new="pending")
    expect_put(rsps, ada, status_if_new="pending")

    result = writer.write_batch([ada, grace])

    assert result.outcomes == [Outcome("p-ada", OutcomeStatus.UPDATED), Outcome("p-grace", OutcomeStatus.CREATED)]
    assert result.requests == 2 == len(rsps.calls) - start
    method, path, body = bodies(rsps, start)[1]
    assert (method, path) == ("PUT", f"/lists/{AUDIENCE}/members/{md5('ada@example.com')}")
    assert body == {
        "email_address": "ada@example.com",
        "status_if_new": "pending",
        "merge_fields": {"FNAME": "Ada", "LNAME": "Example"},
    }
    assert "status" not in body


@pytest.mark.parametrize("kept", ["unsubscribed", "cleaned"])
def test_existing_member_who_opted_out_is_skipped_for_compliance(
    rsps: responses.RequestsMock, prepared: Any, kept: str
) -> None:
    writer = prepared()
    ada = rec("ada")
    exists = batch_error(ada.email, f"{ada.email} is already a list member.", "ERROR_CONTACT_EXISTS")
    expect_batch(rsps, [ada], batch_answer([], [exists]))
    expect_put(rsps, ada, status=kept)

    (outcome,) = writer.write_batch([ada]).outcomes

    assert outcome.status is OutcomeStatus.SKIPPED
    assert outcome.reason is not None and outcome.reason.startswith("consent:")
    assert kept in outcome.reason


def test_existing_records_are_put_only(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    start = len(rsps.calls)
    ada, grace, lin = rec("ada", new=False), rec("grace", new=False), rec("lin", new=False)
    expect_put(rsps, ada)
    expect_put(rsps, grace, status="cleaned")
    expect_put(rsps, lin, status="pending")

    result = writer.write_batch([ada, grace, lin])  # no batch POST registered: it would fail

    assert statuses(result.outcomes) == {
        "p-ada": OutcomeStatus.UPDATED,
        "p-grace": OutcomeStatus.SKIPPED,
        "p-lin": OutcomeStatus.UPDATED,
    }
    assert result.requests == 3 == len(rsps.calls) - start
    assert all(m == "PUT" and "status" not in b for m, _, b in bodies(rsps, start))


def test_per_member_errors_of_the_batch_become_outcomes(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    start = len(rsps.calls)
    ok, fake, gone, merge, held, lost = (rec(n, add={"VIP"}) for n in ("ada", "fake", "gone", "merge", "held", "lost"))
    fake_text = f"{fake.email} looks fake or invalid, please enter a real email address."
    gone_text = (
        f"{gone.email} was permanently deleted and cannot be re-imported. "
        "The contact must re-subscribe to get back on the list."
    )
    held_text = (
        f"{held.email} is in a compliance state due to unsubscribe, bounce, or compliance review "
        "and cannot be subscribed."
    )
    errors = [
        batch_error(fake.email, fake_text),
        batch_error(gone.email, gone_text),
        batch_error(
            merge.email, "Your merge fields were invalid.", field="LNAME", field_message="Please enter a value"
        ),
        batch_error(held.email, held_text),
    ]  # "lost" is mentioned nowhere in the answer
    batch = [ok, fake, gone, merge, held, lost]
    expect_batch(rsps, batch, batch_answer([ok.email], errors))
    expect_tag(rsps, VIP, add=[ok])  # only the member Mailchimp created is tagged

    result = writer.write_batch(batch)

    by_key = {o.key: o for o in result.outcomes}
    assert [o.key for o in result.outcomes] == [r.key for r in batch]
    assert by_key["p-ada"] == Outcome("p-ada", OutcomeStatus.CREATED)
    assert by_key["p-fake"] == Outcome.rejected("p-fake", fake_text)
    assert by_key["p-gone"] == Outcome("p-gone", OutcomeStatus.SKIPPED, f"consent: {gone_text}")  # never re-imported
    assert by_key["p-merge"].status is OutcomeStatus.REJECTED
    assert "LNAME" in by_key["p-merge"].reason and "Please enter a value" in by_key["p-merge"].reason
    assert by_key["p-held"].status is OutcomeStatus.SKIPPED
    assert by_key["p-held"].reason.startswith("consent:")
    assert by_key["p-lost"].status is OutcomeStatus.RETRYABLE and by_key["p-lost"].reason
    assert result.requests == 2 == len(rsps.calls) - start
    tagged = [b["members_to_add"] for m, p, b in bodies(rsps, start) if p.startswith(f"/lists/{AUDIENCE}/segments/")]
    assert tagged == [["ada@example.com"]]


def test_compliance_state_on_create_is_never_tagged(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    held = rec("held", add={"VIP", "Churn risk"})
    text = (
        f"{held.email} is in a compliance state due to unsubscribe, bounce, or compliance review "
        "and cannot be subscribed."
    )
    expect_batch(rsps, [held], batch_answer([], [batch_error(held.email, text)]))
    # no tag call registered: a POST /segments/{id} would fail the test

    (outcome,) = writer.write_batch([held]).outcomes

    assert outcome == Outcome("p-held", OutcomeStatus.SKIPPED, f"consent: {text}")


# -- write_batch(): tags ----------------------------------------------------------------------------
def test_tags_are_one_call_per_segment_with_emails(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    start = len(rsps.calls)
    ada = rec("ada", upsert=False, new=False, add={"VIP"})
    grace = rec("grace", upsert=False, new=False, add={"VIP"}, remove={"Churn risk"})
    lin = rec("lin", upsert=False, new=False, segments={"VIP"}, remove={"Churn risk"})
    expect_tag(rsps, VIP, add=[ada, grace])
    expect_tag(rsps, CHURN, remove=[grace, lin])

    result = writer.write_batch([ada, grace, lin])  # marker-only: no member call is registered

    assert result.outcomes == [Outcome(r.key, OutcomeStatus.UPDATED) for r in (ada, grace, lin)]
    assert result.requests == 2 == len(rsps.calls) - start
    sent = {p: b for _, p, b in bodies(rsps, start)}
    assert sent[f"/lists/{AUDIENCE}/segments/{VIP}"] == {
        "members_to_add": ["ada@example.com", "grace@example.com"],
        "members_to_remove": [],
    }
    assert sent[f"/lists/{AUDIENCE}/segments/{CHURN}"] == {
        "members_to_add": [],
        "members_to_remove": ["grace@example.com", "lin@example.com"],
    }


def test_upserted_records_are_tagged_after_the_member_calls(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    start = len(rsps.calls)
    ada, grace = rec("ada", add={"VIP"}), rec("grace", new=False, add={"VIP"})
    expect_put(rsps, grace)
    expect_batch(rsps, [ada], batch_answer([ada.email]))
    expect_tag(rsps, VIP, add=[ada, grace])

    result = writer.write_batch([ada, grace])

    assert result.outcomes == [Outcome("p-ada", OutcomeStatus.CREATED), Outcome("p-grace", OutcomeStatus.UPDATED)]
    assert [m for m, _, _ in bodies(rsps, start)][-1] == "POST"
    assert bodies(rsps, start)[-1][1] == f"/lists/{AUDIENCE}/segments/{VIP}"
    assert result.requests == 3 == len(rsps.calls) - start


def test_tag_error_for_an_added_email_rejects_that_record(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared(tag_prefix="")
    ada = rec("ada", upsert=False, new=False, add={"VIP"})
    grace = rec("grace", upsert=False, new=False, add={"VIP"})
    answer = segment_answer(
        [ada.email],
        errors=[{"email_addresses": ["grace@example.com"], "error": "Email is not subscribed to this list"}],
    )
    expect_tag(rsps, VIP, add=[ada, grace], answer=answer)

    result = writer.write_batch([ada, grace])

    assert result.outcomes[0] == Outcome("p-ada", OutcomeStatus.UPDATED)
    assert result.outcomes[1].status is OutcomeStatus.REJECTED
    assert "VIP" in result.outcomes[1].reason
    assert "Email is not subscribed to this list" in result.outcomes[1].reason


def test_tag_for_a_segment_no_longer_exported_is_searched(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    start = len(rsps.calls)
    ada = rec("ada", upsert=False, new=False, segments=(), remove={"Old"})
    rsps.get(
        f"{LIST_URL}/tag-search",
        json={"tags": [{"id": 77, "name": "OLD"}], "total_items": 1},
        match=[query(name="Old")],
    )
    expect_tag(rsps, 77, remove=[ada])

    result = writer.write_batch([ada])

    assert result.outcomes == [Outcome("p-ada", OutcomeStatus.UPDATED)]
    assert result.requests == 2 == len(rsps.calls) - start


def test_removal_from_a_tag_that_no_longer_exists_creates_nothing(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    start = len(rsps.calls)
    ada = rec("ada", upsert=False, new=False, segments=(), remove={"Old"})
    rsps.get(f"{LIST_URL}/tag-search", json={"tags": [], "total_items": 0}, match=[query(name="Old")])

    result = writer.write_batch([ada])

    assert result.outcomes == [Outcome("p-ada", OutcomeStatus.UPDATED)]
    assert result.requests == len(rsps.calls) - start == 1


# -- write_batch(): errors of the batch call --------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "response", "error", "retry_after"),
    [
        pytest.param(
            401,
            {"body": problem(401, "API Key Invalid", "Your API key may be invalid."), "content_type": PROBLEM_TYPE},
            AuthError,
            None,
            id="401",
        ),
        pytest.param(
            403,
            {"body": problem(403, "Forbidden", "User disabled."), "content_type": PROBLEM_TYPE},
            AuthError,
            None,
            id="403-problem",
        ),
        pytest.param(403, {"body": ""}, RetryableDestinationError, None, id="403-bodiless-throttle"),
        pytest.param(
            429,
            {
                "body": problem(429, "Too Many Requests", "Too many connections."),
                "content_type": PROBLEM_TYPE,
                "headers": {"Retry-After": "7"},
            },
            RetryableDestinationError,
            7.0,
            id="429-retry-after",
        ),
        pytest.param(
            429,
            {"body": problem(429, "Too Many Requests", "Too many connections."), "content_type": PROBLEM_TYPE},
            RetryableDestinationError,
            None,
            id="429",
        ),
        pytest.param(
            500,
            {"body": problem(500, "Internal Server Error", "Oops.", instance=""), "content_type": PROBLEM_TYPE},
            RetryableDestinationError,
            None,
            id="500",
        ),
        pytest.param(
            503,
            {"body": "<html>unavailable</html>", "content_type": "text/html", "headers": {"Retry-After": "2"}},
            RetryableDestinationError,
            2.0,
            id="503-retry-after",
        ),
    ],
)
def test_batch_call_errors_map_to_segport_errors(
    rsps: responses.RequestsMock, prepared: Any, status: int, response: dict[str, Any], error: type, retry_after: Any
) -> None:
    writer = prepared()
    ada = rec("ada")
    rsps.post(LIST_URL, status=status, **response)

    with pytest.raises(Exception) as caught:
        writer.write_batch([ada])

    assert caught.type is error
    if error is RetryableDestinationError:
        assert getattr(caught.value, "retry_after", "missing") == retry_after
    assert API_KEY.split("-")[0] not in str(caught.value)


def test_batch_refused_for_its_content_is_a_bad_batch_with_the_detail(
    rsps: responses.RequestsMock, prepared: Any
) -> None:
    writer = prepared()
    detail = "The resource submitted could not be validated. For field-specific details, see the 'errors' array."
    rsps.post(
        LIST_URL,
        status=400,
        content_type=PROBLEM_TYPE,
        body=problem(
            400, "Invalid Resource", detail, errors=[{"field": "members", "message": "Schema describes array"}]
        ),
    )

    with pytest.raises(BadBatchError) as caught:
        writer.write_batch([rec("ada"), rec("grace")])

    assert detail in str(caught.value)
    assert "members: Schema describes array" in str(caught.value)


def test_batch_call_404_means_the_audience_is_gone(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    rsps.post(
        LIST_URL,
        status=404,
        content_type=PROBLEM_TYPE,
        body=problem(404, "Resource Not Found", "The requested resource could not be found."),
    )

    with pytest.raises(UnknownAudienceError) as caught:
        writer.write_batch([rec("ada")])
    assert AUDIENCE in str(caught.value)


def test_transport_fault_on_the_batch_call_reaches_the_dispatcher(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    rsps.post(LIST_URL, body=requests.ConnectionError("connection reset by peer"))

    with pytest.raises(requests.ConnectionError):  # the dispatcher retries the whole batch on it
        writer.write_batch([rec("ada")])


def test_put_answering_503_makes_only_that_record_retryable(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    start = len(rsps.calls)
    ada, grace = rec("ada", new=False, add={"VIP"}), rec("grace", new=False, add={"VIP"})
    rsps.put(
        f"{MEMBERS_URL}/{md5(ada.email)}",
        status=503,
        content_type=PROBLEM_TYPE,
        body=problem(503, "Service Unavailable", "Try again."),
    )
    expect_put(rsps, grace)
    expect_tag(rsps, VIP, add=[grace])  # the retryable one is tagged when it is retried, not now

    result = writer.write_batch([ada, grace])

    assert result.outcomes[0].status is OutcomeStatus.RETRYABLE and result.outcomes[0].reason
    assert result.outcomes[1] == Outcome("p-grace", OutcomeStatus.UPDATED)
    assert result.requests == 3 == len(rsps.calls) - start


def test_put_refused_for_a_member_is_rejected_and_not_tagged(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    ada = rec("ada", new=False, add={"VIP"})
    rsps.put(
        f"{MEMBERS_URL}/{md5(ada.email)}",
        status=400,
        content_type=PROBLEM_TYPE,
        body=problem(
            400,
            "Invalid Resource",
            "Your merge fields were invalid.",
            errors=[{"field": "LNAME", "message": "Please enter a value"}],
        ),
    )

    (outcome,) = writer.write_batch([ada]).outcomes

    assert outcome.status is OutcomeStatus.REJECTED
    assert "LNAME" in outcome.reason and "Please enter a value" in outcome.reason


# -- on_exit: archive ------------------------------------------------------------------------------
@ORDERED
def test_archive_deletes_a_member_who_left_every_segment_after_the_tag_removal(
    rsps: responses.RequestsMock, prepared: Any
) -> None:
    writer = prepared(on_exit="archive")
    start = len(rsps.calls)
    leaver = rec("leaver", upsert=False, new=False, segments=(), remove={"VIP"})
    stayer = rec("stayer", upsert=False, new=False, segments={"Churn risk"}, remove={"VIP"})
    expect_tag(rsps, VIP, remove=[leaver, stayer])
    rsps.delete(f"{MEMBERS_URL}/{md5(leaver.email)}", status=204)

    result = writer.write_batch([leaver, stayer])

    assert result.outcomes == [Outcome("p-leaver", OutcomeStatus.UPDATED), Outcome("p-stayer", OutcomeStatus.UPDATED)]
    assert [(m, p) for m, p, _ in bodies(rsps, start)] == [
        ("POST", f"/lists/{AUDIENCE}/segments/{VIP}"),
        ("DELETE", f"/lists/{AUDIENCE}/members/{md5('leaver@example.com')}"),
    ]
    assert result.requests == 2


def test_archive_of_a_member_already_gone_is_updated(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared(on_exit="archive")
    leaver = rec("leaver", upsert=False, new=False, segments=(), remove={"VIP"})
    expect_tag(rsps, VIP, remove=[leaver])
    rsps.delete(
        f"{MEMBERS_URL}/{md5(leaver.email)}",
        status=404,
        content_type=PROBLEM_TYPE,
        body=problem(404, "Resource Not Found", "The requested resource could not be found."),
    )

    assert writer.write_batch([leaver]).outcomes == [Outcome("p-leaver", OutcomeStatus.UPDATED)]


def test_remove_tag_mode_never_deletes(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()  # on_exit: remove_tag
    leaver = rec("leaver", upsert=False, new=False, segments=(), remove={"VIP"})
    expect_tag(rsps, VIP, remove=[leaver])  # a DELETE is not registered: it would fail

    result = writer.write_batch([leaver])
    assert (result.outcomes, result.requests) == ([Outcome("p-leaver", OutcomeStatus.UPDATED)], 1)


# -- requests_for() matches write_batch() ---------------------------------------------------------
def _answer_batch(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
    """A server that applies the members' tags and shows them on the new members.

    See docs/providers/mailchimp.md#tags-in-batch-members.
    """
    members = sent_json(request)["members"]
    tags = {m["email_address"]: m.get("tags", []) for m in members}
    return 200, {}, json.dumps(batch_answer([m["email_address"] for m in members], tags=tags))


def _answer_batches(rsps: responses.RequestsMock) -> None:
    """POST /batches answered pending, the first poll finished, the results all 200."""
    submitted: list[dict[str, Any]] = []

    def submit(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        submitted[:] = sent_json(request)["operations"]
        return 200, {}, json.dumps(batch_resource("pending", len(submitted)))

    def download(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        answers = [
            op_result(op["operation_id"], 200, member(json.loads(op["body"])["email_address"])) for op in submitted
        ]
        return 200, {}, results_tar([answers])

    rsps.add_callback(responses.POST, BATCHES_URL, callback=submit)
    rsps.get(f"{BATCHES_URL}/{BATCH_ID}", json=batch_resource("finished", 5))
    rsps.add_callback(responses.GET, RESULTS_URL, callback=download, match=[query(signature="s3cr3t")])


def _answer_put(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
    return 200, {}, json.dumps(member(sent_json(request)["email_address"]))


def _answer_tag(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
    body = sent_json(request)
    return 200, {}, json.dumps(segment_answer(body["members_to_add"], body["members_to_remove"]))


PLANS = [
    pytest.param([rec("a", add={"VIP"}), rec("b", add={"VIP"}), rec("c")], {}, {"batch"}, 1, id="new"),
    pytest.param(
        [rec("a", new=False, add={"VIP"}), rec("b", new=False, remove={"Churn risk"}), rec("c", add={"VIP"})],
        {},
        {"batch", "put", "tags"},
        5,
        id="mixed",
    ),
    pytest.param(
        [rec("a", upsert=False, new=False, add={"VIP"}), rec("b", upsert=False, new=False, remove={"Churn risk"})],
        {},
        {"tags"},
        2,
        id="markers-only",
    ),
    pytest.param(
        [rec("a", upsert=False, new=False, segments=(), remove={"VIP"}), rec("b", new=False, segments={"VIP"})],
        {"on_exit": "archive"},
        {"put", "tags", "delete"},
        3,
        id="archive",
    ),
    pytest.param([rec("a", new=False), rec("b", new=False)], {}, {"put"}, 2, id="updates-only"),
    pytest.param([rec(n, new=False) for n in "abcde"], {}, {"batches"}, 3, id="batched-updates"),
    pytest.param(
        [*(rec(n, new=False, add={"VIP"}) for n in "abcde"), rec("f", add={"VIP"}), rec("g", add={"Churn risk"})],
        {},
        {"batch", "batches", "tags"},
        5,
        id="full-mix",
    ),
    pytest.param([], {}, set(), 0, id="empty"),
]


@pytest.mark.parametrize(("records", "options", "endpoints", "expected"), PLANS)
def test_requests_for_counts_the_calls_write_batch_makes(
    rsps: responses.RequestsMock,
    prepared: Any,
    records: list[Record],
    options: dict[str, Any],
    endpoints: set[str],
    expected: int,
) -> None:
    writer = prepared(**options)
    start = len(rsps.calls)
    if "batch" in endpoints:
        rsps.add_callback(responses.POST, LIST_URL, callback=_answer_batch)
    if "put" in endpoints:
        rsps.add_callback(responses.PUT, re.compile(rf"{re.escape(MEMBERS_URL)}/[0-9a-f]{{32}}"), callback=_answer_put)
    if "tags" in endpoints:
        rsps.add_callback(responses.POST, re.compile(rf"{re.escape(SEGMENTS_URL)}/(101|102)"), callback=_answer_tag)
    if "delete" in endpoints:
        rsps.delete(re.compile(rf"{re.escape(MEMBERS_URL)}/[0-9a-f]{{32}}"), status=204)
    if "batches" in endpoints:
        _answer_batches(rsps)

    planned = writer.requests_for(records)
    result = complete_batch(writer.write_batch(records), sleep=lambda seconds: None)  # a /batches job: to its end

    assert planned == expected
    assert result.requests == expected
    assert len(rsps.calls) - start == expected
    assert all(o.status.delivered for o in result.outcomes)


# -- tags inside the batch create (docs/providers/mailchimp.md#tags-in-batch-members) ------------------------
def test_tags_confirmed_by_the_batch_create_need_no_segment_call(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    start = len(rsps.calls)
    ada, grace = rec("ada", add={"VIP", "Churn risk"}), rec("grace", add={"VIP"})
    rsps.post(
        LIST_URL,
        json=batch_answer(  # Mailchimp may change the casing (docs/providers/mailchimp.md#tag-name-casing)
            [ada.email, grace.email], tags={ada.email: ["vip", "CHURN RISK"], grace.email: ["VIP"]}
        ),
        match=[
            matchers.json_params_matcher(
                {
                    "members": [
                        {
                            "email_address": "ada@example.com",
                            "status": "subscribed",
                            "merge_fields": {"FNAME": "Ada", "LNAME": "Example"},
                            "tags": ["Churn risk", "VIP"],
                        },
                        {
                            "email_address": "grace@example.com",
                            "status": "subscribed",
                            "merge_fields": {"FNAME": "Grace", "LNAME": "Example"},
                            "tags": ["VIP"],
                        },
                    ],
                    "update_existing": False,
                }
            )
        ],
    )

    result = writer.write_batch([ada, grace])  # no segment call registered: one would fail

    assert result.outcomes == [Outcome("p-ada", OutcomeStatus.CREATED), Outcome("p-grace", OutcomeStatus.CREATED)]
    assert result.requests == 1 == len(rsps.calls) - start == writer.requests_for([ada, grace])


def test_tags_not_confirmed_fall_back_to_the_segment_call(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    start = len(rsps.calls)
    ada, grace, lin = rec("ada", add={"VIP", "Churn risk"}), rec("grace", add={"VIP"}), rec("lin", add={"VIP"})
    # ada: only VIP confirmed; grace: no tags shown (a server that ignores them); lin: all confirmed
    answer = batch_answer([ada.email, grace.email, lin.email], tags={ada.email: ["VIP"], lin.email: ["VIP"]})
    expect_batch(rsps, [ada, grace, lin], answer)
    expect_tag(rsps, VIP, add=[grace])
    expect_tag(rsps, CHURN, add=[ada])

    result = writer.write_batch([ada, grace, lin])

    assert result.outcomes == [Outcome(r.key, OutcomeStatus.CREATED) for r in (ada, grace, lin)]
    assert result.requests == 3 == len(rsps.calls) - start
    assert writer.requests_for([ada, grace, lin]) == 1  # the plan counts on tags landing


def test_a_server_refusing_member_tags_gets_the_batch_again_without_them(
    rsps: responses.RequestsMock, prepared: Any
) -> None:
    writer = prepared()
    start = len(rsps.calls)
    ada = rec("ada", add={"VIP"})
    refusal = problem(
        400,
        "Invalid Resource",
        "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
        errors=[{"field": "members.0.tags", "message": "Property is not allowed"}],
    )
    rsps.post(
        LIST_URL,
        status=400,
        body=refusal,
        content_type=PROBLEM_TYPE,
        match=[matchers.json_params_matcher({"members": [member_json(ada)], "update_existing": False})],
    )
    expect_batch(rsps, [ada], batch_answer([ada.email]), tags=False)
    expect_tag(rsps, VIP, add=[ada])

    result = writer.write_batch([ada])

    assert result.outcomes == [Outcome("p-ada", OutcomeStatus.CREATED)]
    assert result.requests == 3 == len(rsps.calls) - start
    assert writer.requests_for([rec("grace", add={"VIP"})]) == 2  # tags are no longer sent with the create

    grace = rec("grace", add={"VIP"})
    expect_batch(rsps, [grace], batch_answer([grace.email]), tags=False)
    expect_tag(rsps, VIP, add=[grace])
    assert writer.write_batch([grace]).requests == 2


# -- existing people through POST /batches (docs/providers/mailchimp.md#batch-operations-request) -------------
@pytest.fixture
def sleeps(prepared: Any) -> list[float]:
    """Poll waits, recorded instead of slept."""
    return []


def batched_writer(prepared: Any, sleeps: list[float], **options: Any) -> MailchimpWriter:
    writer: MailchimpWriter = prepared(**options)
    return writer


def written(writer: MailchimpWriter, records: list[Record], sleeps: list[float]) -> BatchResult:
    """``write_batch`` driven as the engine drives it: a pending /batches job polled to its end, the
    waits between polls recorded in ``sleeps`` instead of slept."""
    return complete_batch(writer.write_batch(records), sleep=sleeps.append)


def test_batch_results_become_the_outcomes_a_put_gives(
    rsps: responses.RequestsMock, prepared: Any, sleeps: list[float]
) -> None:
    writer = batched_writer(prepared, sleeps, status_if_new="pending")
    start = len(rsps.calls)
    names = ("ok", "gone", "bad", "held", "busy", "down", "lost")
    ok, gone, _, held, *_ = records = [rec(n, new=False, add={"VIP"}) for n in names]
    held_text = (
        f"{held.email} is in a compliance state due to unsubscribe, bounce, or compliance review "
        "and cannot be subscribed."
    )
    merge_problem = json.loads(
        problem(
            400,
            "Invalid Resource",
            "Your merge fields were invalid.",
            errors=[{"field": "LNAME", "message": "Please enter a value"}],
        )
    )
    archive = results_tar(
        [
            [op_result("r0", 200, member(ok.email)), op_result("r1", 200, member(gone.email, "unsubscribed"))],
            [
                op_result("r2", 400, merge_problem),
                op_result("r3", 400, json.loads(problem(400, "Member In Compliance State", held_text))),
                op_result("r4", 429, json.loads(problem(429, "Too Many Requests", "Too many connections."))),
                op_result("r5", 503, {}),
            ],  # "lost" (r6) has no result
        ],
        extra={"README.txt": b"not json"},
    )
    pending = {"json": batch_resource("pending", 7)}
    started = {"json": batch_resource("started", 7, finished_operations=3)}
    expect_batches(rsps, records, [pending, started, finished(7)], archive, status_if_new="pending")
    expect_tag(rsps, VIP, add=[ok, gone, held])  # delivered ones only: rejected and retryable are not tagged

    result = written(writer, records, sleeps)

    by_key = {o.key: o for o in result.outcomes}
    assert by_key["p-ok"] == Outcome("p-ok", OutcomeStatus.UPDATED)
    assert by_key["p-gone"] == Outcome(
        "p-gone", OutcomeStatus.SKIPPED, "consent: member is unsubscribed; status left unchanged"
    )
    assert by_key["p-bad"] == Outcome.rejected(
        "p-bad", "Your merge fields were invalid. (field: LNAME: Please enter a value)"
    )
    assert by_key["p-held"] == Outcome("p-held", OutcomeStatus.SKIPPED, f"consent: {held_text}")
    assert by_key["p-busy"] == Outcome.retryable("p-busy", "Mailchimp answered 429 Too Many Requests")
    assert by_key["p-down"] == Outcome.retryable("p-down", "Mailchimp answered 503")
    assert by_key["p-lost"] == Outcome.retryable("p-lost", "Mailchimp's batch results did not mention it")
    assert sleeps == [0.5, 1.0, 2.0]  # backoff between the three polls
    calls = list(rsps.calls)[start:]
    assert result.requests == 6 == len(calls)  # submit, 3 polls, download, one tag call
    download = calls[4].request
    assert str(download.url).startswith(RESULTS_URL)
    assert "Authorization" not in download.headers  # the API key never leaves the API host
    assert "Authorization" in calls[0].request.headers


def test_batch_operations_carry_the_put_body_as_a_json_string(
    rsps: responses.RequestsMock, prepared: Any, sleeps: list[float]
) -> None:
    writer = batched_writer(prepared, sleeps)
    records = [rec(n, new=False) for n in ("ada", "grace", "lin", "mae", "kim")]
    archive = results_tar([[op_result(f"r{i}", 200, member(r.email)) for i, r in enumerate(records)]])
    expect_batches(rsps, records, [finished(5)], archive)

    result = written(writer, records, sleeps)

    assert result.outcomes == [Outcome(r.key, OutcomeStatus.UPDATED) for r in records]
    assert result.requests == 3
    (submitted,) = [b for m, p, b in bodies(rsps) if (m, p) == ("POST", "/batches")]
    first = submitted["operations"][0]
    assert isinstance(first["body"], str)
    assert json.loads(first["body"]) == {
        "email_address": "ada@example.com",
        "merge_fields": {"FNAME": "Ada", "LNAME": "Example"},
        "status_if_new": "subscribed",
    }  # no `status`: an existing member's status never changes (docs/providers/mailchimp.md#add-or-update-a-member)


def test_an_audience_gone_in_the_batch_results_stops_the_run(
    rsps: responses.RequestsMock, prepared: Any, sleeps: list[float]
) -> None:
    writer = batched_writer(prepared, sleeps)
    records = [rec(n, new=False) for n in "abcde"]
    not_found = json.loads(problem(404, "Resource Not Found", "The requested resource could not be found."))
    archive = results_tar([[op_result(f"r{i}", 404, not_found) for i in range(5)]])
    expect_batches(rsps, records, [finished(5)], archive)

    with pytest.raises(UnknownAudienceError) as caught:
        written(writer, records, sleeps)
    assert AUDIENCE in str(caught.value)


@pytest.mark.parametrize("status", [404, 405])
def test_a_server_without_batches_gets_single_puts(
    rsps: responses.RequestsMock, prepared: Any, sleeps: list[float], status: int
) -> None:
    writer = batched_writer(prepared, sleeps)
    start = len(rsps.calls)
    records = [rec(n, new=False) for n in "abcde"]
    title = "Resource Not Found" if status == 404 else "Method Not Allowed"
    rsps.post(BATCHES_URL, status=status, body=problem(status, title, "No."), content_type=PROBLEM_TYPE)
    for record in records:
        expect_put(rsps, record)

    result = written(writer, records, sleeps)

    assert result.outcomes == [Outcome(r.key, OutcomeStatus.UPDATED) for r in records]
    assert result.requests == 6 == len(rsps.calls) - start
    assert writer.requests_for(records) == 5  # and it is not asked again
    for record in records:
        expect_put(rsps, record)
    assert written(writer, records, sleeps).requests == 5


def test_a_throttled_batch_submit_makes_the_updates_retryable(
    rsps: responses.RequestsMock, prepared: Any, sleeps: list[float]
) -> None:
    writer = batched_writer(prepared, sleeps)
    records = [rec(n, new=False, add={"VIP"}) for n in "abcde"]
    rsps.post(BATCHES_URL, status=429, body=problem(429, "Too Many Requests", "Slow down."), content_type=PROBLEM_TYPE)

    result = written(writer, records, sleeps)  # no tag call: retryable records are tagged when retried

    reason = "Mailchimp answered 429 Too Many Requests on POST /batches"  # the message names the call
    assert result.outcomes == [Outcome.retryable(r.key, reason) for r in records]
    assert result.requests == 1


def test_failed_polls_are_retried_until_the_batch_finishes(
    rsps: responses.RequestsMock, prepared: Any, sleeps: list[float]
) -> None:
    writer = batched_writer(prepared, sleeps)
    records = [rec(n, new=False) for n in "abcde"]
    archive = results_tar([[op_result(f"r{i}", 200, member(r.email)) for i, r in enumerate(records)]])
    throttled = {"status": 503, "body": problem(503, "Service Unavailable", "Later."), "content_type": PROBLEM_TYPE}
    expect_batches(rsps, records, [throttled, {"body": requests.ConnectionError("reset")}, finished(5)], archive)

    result = written(writer, records, sleeps)

    assert result.outcomes == [Outcome(r.key, OutcomeStatus.UPDATED) for r in records]
    assert result.requests == 5
    assert sleeps == [0.5, 1.0, 2.0]


def test_a_batch_still_queued_at_the_deadline_is_cancelled_and_retryable(
    rsps: responses.RequestsMock, prepared: Any, sleeps: list[float]
) -> None:
    writer = batched_writer(prepared, sleeps)
    now = [0.0]
    writer.batches.clock = lambda: now[0]
    writer.batches.deadline = 20.0
    records = [rec(n, new=False) for n in "abcde"]
    expect_batches(rsps, records, [{"json": batch_resource("pending", 5)}])
    rsps.delete(f"{BATCHES_URL}/{BATCH_ID}", status=204)

    pause = lambda s: (sleeps.append(s), now.__setitem__(0, now[0] + s))  # noqa: E731
    result = complete_batch(writer.write_batch(records), sleep=pause)

    reason = f"Mailchimp batch {BATCH_ID} did not finish within 20 s (cancelled)"
    assert result.outcomes == [Outcome.retryable(r.key, reason) for r in records]
    assert sleeps == [0.5, 1.0] + [2.0] * 9  # doubling, capped at 2 s; 19.5 s + 2 s > 20 s
    assert result.requests == 1 + 11 + 1  # submit, polls, DELETE


def test_a_batch_lost_by_mailchimp_is_retryable(
    rsps: responses.RequestsMock, prepared: Any, sleeps: list[float]
) -> None:
    writer = batched_writer(prepared, sleeps)
    records = [rec(n, new=False) for n in "abcde"]
    gone = {"status": 404, "body": problem(404, "Resource Not Found", "Gone."), "content_type": PROBLEM_TYPE}
    expect_batches(rsps, records, [gone])

    result = written(writer, records, sleeps)

    reason = f"Mailchimp lost batch {BATCH_ID} (404 Resource Not Found)"
    assert result.outcomes == [Outcome.retryable(r.key, reason) for r in records]
    assert result.requests == 2


@pytest.mark.parametrize(
    ("download", "reason"),
    [
        (
            {"status": 403, "body": "<Error>AccessDenied</Error>"},
            "could not download Mailchimp's batch results (HTTP 403)",
        ),
        (
            {"body": requests.ConnectionError(f"cannot reach {RESULTS_URL}?signature=s3cr3t")},
            "could not download Mailchimp's batch results (ConnectionError)",
        ),
        ({"body": b"\x1f\x8b not really gzip"}, "Mailchimp's batch results are not a readable .tar.gz"),
    ],
    ids=["refused", "network", "corrupt"],
)
def test_results_that_cannot_be_had_make_the_updates_retryable_without_leaking_the_url(
    rsps: responses.RequestsMock, prepared: Any, sleeps: list[float], download: dict[str, Any], reason: str
) -> None:
    writer = batched_writer(prepared, sleeps)
    records = [rec(n, new=False) for n in "abcde"]
    expect_batches(rsps, records, [finished(5)])
    rsps.get(RESULTS_URL, match=[query(signature="s3cr3t")], **download)

    result = written(writer, records, sleeps)

    assert result.outcomes == [Outcome.retryable(r.key, reason) for r in records]
    assert result.requests == 3
    assert "s3cr3t" not in reason


def test_fewer_updates_than_the_threshold_stay_single_puts(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    records = [rec(n, new=False) for n in "abcd"]  # 4 < BATCH_UPDATES_FROM
    for record in records:
        expect_put(rsps, record)  # no /batches registered: a submit would fail

    assert writer.requests_for(records) == 4
    assert writer.write_batch(records).requests == 4


# -- consent: archived, unsubscribed and cleaned members (docs/providers/mailchimp.md#archived-and-unsubscribed-members)
def test_prepare_lists_held_members_page_by_page_with_addresses_only(
    rsps: responses.RequestsMock, make_writer: Any
) -> None:
    expect_audience(rsps)
    expect_merge_fields(rsps, STANDARD_FIELDS)
    expect_segments(rsps, STANDARD_TAGS)
    fields = "members.email_address,total_items"
    first = {"members": [{"email_address": f"A{i}@example.com"} for i in range(1000)], "total_items": 1001}
    rsps.get(MEMBERS_URL, json=first, match=[query(status="archived", fields=fields, count=1000, offset=0)])
    last = {"members": [{"email_address": "last@example.com"}], "total_items": 1001}
    rsps.get(MEMBERS_URL, json=last, match=[query(status="archived", fields=fields, count=1000, offset=1000)])
    for status, email in (("unsubscribed", "u@example.com"), ("cleaned", "c@example.com")):
        page = {"members": [{"email_address": email}], "total_items": 1}
        rsps.get(MEMBERS_URL, json=page, match=[query(status=status, fields=fields, count=1000, offset=0)])
    writer = make_writer()

    writer.prepare()

    assert len(writer.held) == 1003
    assert writer.held["a0@example.com"] == writer.held["last@example.com"] == "archived"  # addresses lower-cased
    assert (writer.held["u@example.com"], writer.held["c@example.com"]) == ("unsubscribed", "cleaned")


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(rec("gone", add={"VIP"}), id="new export"),
        pytest.param(rec("gone", new=False, add={"VIP"}), id="full run"),
        pytest.param(rec("gone", new=False, upsert=False, add={"VIP"}), id="re-entering a segment"),
    ],
)
def test_an_archived_member_is_never_re_added(rsps: responses.RequestsMock, prepared: Any, record: Record) -> None:
    writer = prepared(held={"archived": ["gone@example.com"]})
    start = len(rsps.calls)

    result = writer.write_batch([record])  # no call at all: a create or PUT would subscribe them again

    (outcome,) = result.outcomes
    assert outcome.status is OutcomeStatus.SKIPPED and outcome.reason is not None
    assert outcome.reason.startswith("consent: member is archived") and "readd_archived" in outcome.reason
    assert outcome.platform_status == "archived" and not outcome.archived
    assert len(rsps.calls) == start and result.requests == 0


def test_an_archived_member_segport_archived_from_unsubscribed_stays_out(
    rsps: responses.RequestsMock, prepared: Any
) -> None:
    writer = prepared(held={"archived": ["gone@example.com"]}, archived_by_segport={"gone@example.com": "unsubscribed"})
    start = len(rsps.calls)
    result = writer.write_batch([rec("gone", new=False, add={"VIP"})])
    assert result.outcomes[0].status is OutcomeStatus.SKIPPED and len(rsps.calls) == start


def test_an_archived_member_segport_archived_while_subscribed_is_re_added(
    rsps: responses.RequestsMock, prepared: Any
) -> None:
    back = rec("back", new=False, upsert=False, add={"VIP"})  # came back into a segment, fields unchanged
    writer = prepared(held={"archived": [back.email]}, archived_by_segport={back.email: "subscribed"})
    expect_put(rsps, back)  # status_if_new re-adds them
    expect_tag(rsps, VIP, add=[back])

    result = writer.write_batch([back])

    assert result.outcomes == [Outcome("p-back", OutcomeStatus.UPDATED)]
    assert result.outcomes[0].platform_status == "subscribed"


def test_readd_archived_re_adds_archived_members_and_is_off_by_default(
    rsps: responses.RequestsMock, prepared: Any
) -> None:
    gone = rec("gone", add={"VIP"})
    writer = prepared(held={"archived": [gone.email]}, readd_archived=True)
    expect_batch(rsps, [gone], batch_answer([gone.email], tags={gone.email: ["VIP"]}))

    result = writer.write_batch([gone])

    assert result.outcomes == [Outcome("p-gone", OutcomeStatus.CREATED)]
    assert result.outcomes[0].platform_status == "subscribed"


def test_readd_archived_is_off_by_default(rsps: responses.RequestsMock, prepared: Any) -> None:
    defaults = validate({"audience_id": AUDIENCE}, MailchimpDestination().spec().export_schema, "options")
    assert defaults["readd_archived"] is False
    writer = prepared(held={"archived": ["gone@example.com"]}, **defaults)
    start = len(rsps.calls)
    assert writer.write_batch([rec("gone", add={"VIP"})]).outcomes[0].status is OutcomeStatus.SKIPPED
    assert len(rsps.calls) == start


def test_a_listed_unsubscribed_member_is_put_without_status_and_comes_back_unsubscribed_if_archived(
    rsps: responses.RequestsMock, prepared: Any
) -> None:
    held = rec("held", add={"VIP"})  # new to this export, unsubscribed at Mailchimp
    writer = prepared(held={"unsubscribed": [held.email]})
    expect_put(rsps, held, status="unsubscribed", status_if_new="unsubscribed")  # never a batch create
    expect_tag(rsps, VIP, add=[held])

    result = writer.write_batch([held])

    (outcome,) = result.outcomes
    assert outcome == Outcome("p-held", OutcomeStatus.SKIPPED, "consent: member is unsubscribed; status left unchanged")
    assert outcome.platform_status == "unsubscribed"


def test_no_member_is_ever_sent_status_subscribed_but_new_ones(rsps: responses.RequestsMock, prepared: Any) -> None:
    records = [rec(n, new=n == "new", add={"VIP"}) for n in ("new", "arch", "unsub", "clean", "known")]
    held = {"archived": ["arch@example.com"], "unsubscribed": ["unsub@example.com"], "cleaned": ["clean@example.com"]}
    writer = prepared(held=held)
    rsps.post(LIST_URL, json=batch_answer(["new@example.com"], tags={"new@example.com": ["VIP"]}))
    for name, status in (("unsub", "unsubscribed"), ("clean", "cleaned"), ("known", "subscribed")):
        rsps.put(f"{MEMBERS_URL}/{md5(name + '@example.com')}", json=member(f"{name}@example.com", status))
    rsps.post(f"{SEGMENTS_URL}/{VIP}", json=segment_answer(["unsub@example.com", "clean@example.com"]))
    start = len(rsps.calls)

    writer.write_batch(records)

    for method, path, body in bodies(rsps, start):
        members = body.get("members", [body]) if isinstance(body, dict) else []
        for sent in members:
            address = sent.get("email_address")
            if sent.get("status") == "subscribed" or sent.get("status_if_new") == "subscribed":
                assert address in ("new@example.com", "known@example.com"), (method, path, sent)
            assert "status" not in sent or address == "new@example.com"


def test_an_archive_reports_the_status_just_before_for_the_ledger(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared(on_exit="archive", held={"unsubscribed": ["unsub@example.com"]})
    unsub = rec("unsub", upsert=False, new=False, segments=(), remove={"VIP"})
    known = rec("known", upsert=False, new=False, segments=(), remove={"VIP"})
    expect_tag(rsps, VIP, remove=[unsub, known])
    rsps.delete(f"{MEMBERS_URL}/{md5(unsub.email)}", status=204)
    rsps.delete(f"{MEMBERS_URL}/{md5(known.email)}", status=204)

    by_key = {o.key: o for o in writer.write_batch([unsub, known]).outcomes}

    assert (by_key["p-unsub"].archived, by_key["p-unsub"].platform_status) == (True, "unsubscribed")
    assert (by_key["p-known"].archived, by_key["p-known"].platform_status) == (True, None)  # the ledger knows


def test_a_permanently_deleted_address_is_a_consent_skip_on_put(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    erased = rec("erased", new=False)
    text = (
        "erased@example.com was permanently deleted and cannot be re-imported. "
        "The contact must re-subscribe to get back on the list."
    )
    rsps.put(
        f"{MEMBERS_URL}/{md5(erased.email)}",
        body=problem(400, "Forgotten Email Not Subscribed", text),
        status=400,
        content_type=PROBLEM_TYPE,
    )
    assert writer.write_batch([erased]).outcomes == [Outcome("p-erased", OutcomeStatus.SKIPPED, f"consent: {text}")]
