"""CampaignMonitorWriter against a strict ``responses`` mock: pre-flight, one import per batch, errors.

API facts: docs/providers/campaignmonitor.md (lists and custom fields, the import and its code-210
partial envelope, errors, rule segments). Every registered response must fire, and an
unregistered call fails, so "no other call was made" is asserted by the mock itself.
"""

from __future__ import annotations

import base64
import json
import threading
from typing import Any, Callable, Iterable, Iterator

import pytest
import requests
import responses
from responses import matchers

from segport import (
    AuthError,
    BadBatchError,
    ConfigError,
    DestinationError,
    Outcome,
    OutcomeStatus,
    Record,
    RetryableDestinationError,
    RunContext,
    UnknownAudienceError,
)
from segport.testing.pytest_plugin import ORDERED
from segport_campaignmonitor.auth import CampaignMonitorAuth
from segport_campaignmonitor.destination import CampaignMonitorDestination
from segport_campaignmonitor.writer import IMPORT_LIMIT, PREFLIGHT_WORKERS, CampaignMonitorWriter

API_KEY = "cm-key-123"
BASE = "https://api.createsend.com/api/v3.3"
CONFIG = {"api_key": API_KEY, "api_base_url": BASE}
LIST_ID = "a" * 32
LIST_URL = f"{BASE}/lists/{LIST_ID}.json"
FIELDS_URL = f"{BASE}/lists/{LIST_ID}/customfields.json"
OPTIONS_URL = f"{BASE}/lists/{LIST_ID}/customfields/%5Bsegments%5D/options.json"
LIST_SEGMENTS_URL = f"{BASE}/lists/{LIST_ID}/segments.json"
NEW_SEGMENT_URL = f"{BASE}/segments/{LIST_ID}.json"
IMPORT_URL = f"{BASE}/subscribers/{LIST_ID}/import.json"
OPTIONS = {
    "list_id": LIST_ID,
    "consent_to_track": "Unchanged",
    "resubscribe": False,
    "segment_field": "Segments",
    "create_rule_segments": True,
}
EXPORTED = ("VIP", "Churn risk")
MAPPED = ("Name", "plan", "score")

PLAN = {"FieldName": "plan", "Key": "[plan]", "DataType": "Text", "FieldOptions": [], "VisibleInPreferenceCenter": True}
SCORE = {
    "FieldName": "score",
    "Key": "[score]",
    "DataType": "Number",
    "FieldOptions": [],
    "VisibleInPreferenceCenter": True,
}
INTERESTS = {
    "FieldName": "Interests",
    "Key": "[Interests]",
    "DataType": "MultiSelectMany",
    "FieldOptions": ["Books", "Music"],
    "VisibleInPreferenceCenter": True,
}
SEGMENTS_FIELD = {
    "FieldName": "Segments",
    "Key": "[segments]",
    "DataType": "MultiSelectMany",
    "FieldOptions": ["VIP", "Churn risk"],
    "VisibleInPreferenceCenter": False,
}
STANDARD_FIELDS = (PLAN, SCORE, INTERESTS, SEGMENTS_FIELD)
STANDARD_SEGMENTS = (
    {"ListID": LIST_ID, "SegmentID": "b" * 32, "Title": "VIP"},
    {"ListID": LIST_ID, "SegmentID": "c" * 32, "Title": "Churn risk"},
)
CLIENTS = [
    {"ClientID": "4a397ccaaa55eb4e6aa1221e1e2d7122", "Name": "Acme Corp"},
    {"ClientID": "a206def0582eec7dae47d937a4109cb2", "Name": "Beta Ltd"},
]

BASIC = matchers.header_matcher({"Authorization": "Basic " + base64.b64encode(f"{API_KEY}:x".encode()).decode()})


# -- fixtures and helpers -------------------------------------------------------------------------
@pytest.fixture
def rsps(strict_responses: responses.RequestsMock) -> Iterator[responses.RequestsMock]:
    """The strict mock of segport's pytest plugin; ``@ORDERED`` also checks call order.

    prepare() reads concurrently and may drop a read's answer once another check failed, so an
    unregistered call could go unnoticed: every call must have matched a registered response.
    """
    yield strict_responses
    unmatched = [c.request.url for c in strict_responses.calls if "match any registered mock" in str(c.response)]
    assert not unmatched, f"unregistered calls: {unmatched}"


@pytest.fixture
def make_writer(session: requests.Session) -> Callable[..., CampaignMonitorWriter]:
    session.auth = CampaignMonitorAuth(CONFIG)

    def make(
        *, segments: Iterable[str] = EXPORTED, mapped: Iterable[str] = MAPPED, dry_run: bool = False, **options: Any
    ) -> CampaignMonitorWriter:
        context = RunContext("vip-export", {**OPTIONS, **options}, list(segments), list(mapped), dry_run=dry_run)
        return CampaignMonitorWriter(session, CONFIG, context)

    return make


@pytest.fixture
def prepared(
    rsps: responses.RequestsMock, make_writer: Callable[..., CampaignMonitorWriter]
) -> Callable[..., CampaignMonitorWriter]:
    """``prepared(**options)``: a writer whose prepare() found plan, score, Segments and both rule segments."""

    def make(**options: Any) -> CampaignMonitorWriter:
        expect_list(rsps)
        expect_fields(rsps, STANDARD_FIELDS)
        if options.get("create_rule_segments", True):
            expect_segments(rsps, STANDARD_SEGMENTS)
        writer = make_writer(**options)
        writer.prepare()
        return writer

    return make


def expect_list(rsps: responses.RequestsMock) -> None:
    rsps.get(
        LIST_URL,
        json={
            "ListID": LIST_ID,
            "Title": "Newsletter",
            "UnsubscribePage": "",
            "UnsubscribeSetting": "AllClientLists",
            "ConfirmedOptIn": False,
            "ConfirmationSuccessPage": "",
        },
        match=[BASIC],
    )


def expect_fields(rsps: responses.RequestsMock, fields: Iterable[dict[str, Any]]) -> None:
    rsps.get(FIELDS_URL, json=list(fields), match=[BASIC])


def expect_segments(rsps: responses.RequestsMock, segments: Iterable[dict[str, Any]]) -> None:
    rsps.get(LIST_SEGMENTS_URL, json=list(segments), match=[BASIC])


def cm_error(code: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"Code": code, "Message": message, **extra}


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
        {"Name": f"{name.title()} Example", "plan": "pro", "score": 42} if fields is None else fields,
        frozenset(add if segments is None else segments),
        frozenset(add),
        frozenset(remove),
        upsert,
        new,
    )


def subscriber(
    email: str,
    *,
    consent: str = "Unchanged",
    name: str | None = None,
    custom: Iterable[dict[str, Any]] = (),
    segments: Iterable[str] = (),
    cleared: Iterable[str] = (),
) -> dict[str, Any]:
    """One row of the import body: custom field items, then one item per segment, then Clear items."""
    row: dict[str, Any] = {"EmailAddress": email, "ConsentToTrack": consent}
    if name is not None:
        row["Name"] = name
    items = [*custom]
    items += [{"Key": "segments", "Value": s} for s in segments]
    items += [{"Key": "segments", "Value": s, "Clear": True} for s in cleared]
    if items:
        row["CustomFields"] = items
    return row


def import_body(rows: Iterable[dict[str, Any]], *, resubscribe: bool = False) -> dict[str, Any]:
    return {
        "Subscribers": list(rows),
        "Resubscribe": resubscribe,
        "QueueSubscriptionBasedAutoResponders": False,
        "RestartSubscriptionBasedAutoresponders": False,
    }


def import_result(
    new: int = 0, existing: int = 0, failures: Iterable[dict[str, Any]] = (), submitted: int | None = None
) -> dict[str, Any]:
    failed = list(failures)
    return {
        "FailureDetails": failed,
        "TotalUniqueEmailsSubmitted": new + existing + len(failed) if submitted is None else submitted,
        "TotalExistingSubscribers": existing,
        "TotalNewSubscribers": new,
        "DuplicateEmailsInSubmission": [],
    }


def expect_import(
    rsps: responses.RequestsMock,
    rows: Iterable[dict[str, Any]],
    *,
    status: int = 201,
    answer: Any = None,
    resubscribe: bool = False,
) -> None:
    rows = list(rows)
    rsps.post(
        IMPORT_URL,
        status=status,
        json=import_result(new=len(rows)) if answer is None else answer,
        match=[matchers.json_params_matcher(import_body(rows, resubscribe=resubscribe)), BASIC],
    )


def default_row(record: Record, **overrides: Any) -> dict[str, Any]:
    """The import row of a record built by ``rec()`` with default fields."""
    values: dict[str, Any] = {
        "name": record.fields.get("Name"),
        "custom": [{"Key": "plan", "Value": "pro"}, {"Key": "score", "Value": "42"}],
        "segments": sorted(record.segments),
        "cleared": sorted(record.remove),
    }
    values.update(overrides)
    return subscriber(record.email, **values)


def sent_json(request: requests.PreparedRequest) -> Any:
    return json.loads(request.body) if request.body else None


def calls(rsps: responses.RequestsMock, start: int = 0) -> list[tuple[str, str]]:
    """(method, path) of each call since ``start``."""
    return [
        (str(c.request.method), str(c.request.url).split("?")[0].removeprefix(BASE)) for c in list(rsps.calls)[start:]
    ]


# -- prepare(): the list -------------------------------------------------------------------------
Answer = Callable[[requests.PreparedRequest], tuple[int, dict[str, str], str]]


def in_step(parties: int) -> Callable[[Any], Answer]:
    """``in_step(n)(body)``: a callback answering ``body`` once n such calls are in flight (5 s, then fails)."""
    barrier = threading.Barrier(parties, timeout=5)

    def answering(body: Any) -> Answer:
        def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
            barrier.wait()  # BrokenBarrierError when the calls are made one after another
            return 200, {}, json.dumps(body)

        return callback

    return answering


LIST_DETAILS = {
    "ListID": LIST_ID,
    "Title": "Newsletter",
    "UnsubscribePage": "",
    "UnsubscribeSetting": "AllClientLists",
    "ConfirmedOptIn": False,
    "ConfirmationSuccessPage": "",
}


def test_prepare_reads_list_fields_and_segments_concurrently(rsps: responses.RequestsMock, make_writer: Any) -> None:
    answer = in_step(3)
    rsps.add_callback(responses.GET, LIST_URL, callback=answer(LIST_DETAILS), match=[BASIC])
    rsps.add_callback(responses.GET, FIELDS_URL, callback=answer(list(STANDARD_FIELDS)), match=[BASIC])
    rsps.add_callback(responses.GET, LIST_SEGMENTS_URL, callback=answer(list(STANDARD_SEGMENTS)), match=[BASIC])

    make_writer().prepare()  # each read answers only once all three are in flight

    assert len(rsps.calls) == 3


def test_prepare_without_rule_segments_reads_list_and_fields_concurrently(
    rsps: responses.RequestsMock, make_writer: Any
) -> None:
    answer = in_step(2)
    rsps.add_callback(responses.GET, LIST_URL, callback=answer(LIST_DETAILS), match=[BASIC])
    rsps.add_callback(responses.GET, FIELDS_URL, callback=answer(list(STANDARD_FIELDS)), match=[BASIC])

    make_writer(create_rule_segments=False).prepare()

    assert len(rsps.calls) == 2


def test_prepare_of_an_up_to_date_list_only_reads(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_list(rsps)
    expect_fields(rsps, STANDARD_FIELDS)
    expect_segments(rsps, STANDARD_SEGMENTS)

    writer = make_writer()
    writer.prepare()  # plan, score and Segments (with both options) exist, so do both segments

    assert sorted(calls(rsps)) == [  # no POST or PUT is registered either: the strict mock would refuse it
        ("GET", f"/lists/{LIST_ID}.json"),
        ("GET", f"/lists/{LIST_ID}/customfields.json"),
        ("GET", f"/lists/{LIST_ID}/segments.json"),
    ]
    assert writer.membership_key == "segments"
    assert writer.field_keys == {"plan": "plan", "score": "score"}


def test_dry_run_prepare_reads_and_notes_what_the_run_would_create(
    rsps: responses.RequestsMock, make_writer: Any
) -> None:
    expect_list(rsps)
    expect_fields(rsps, [PLAN, SCORE])  # no membership field yet
    expect_segments(rsps, [])

    writer = make_writer(dry_run=True)
    writer.prepare()  # no POST or PUT is registered: the strict mock would refuse one

    assert {method for method, _ in calls(rsps)} == {"GET"}
    assert writer.would_create == [
        "custom field Segments (MultiSelectMany) with options VIP, Churn risk",
        "rule segment VIP",
        "rule segment Churn risk",
    ]


def test_dry_run_prepare_notes_missing_options_of_the_membership_field(
    rsps: responses.RequestsMock, make_writer: Any
) -> None:
    expect_list(rsps)
    expect_fields(rsps, [PLAN, SCORE, {**SEGMENTS_FIELD, "FieldOptions": ["VIP"]}])
    expect_segments(rsps, STANDARD_SEGMENTS)

    writer = make_writer(dry_run=True)
    writer.prepare()

    assert writer.would_create == ["options Churn risk of custom field Segments"]
    assert writer.membership_key == "segments"


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_prepare_refuses_a_mapped_field_the_list_lacks_in_a_dry_run_too(
    rsps: responses.RequestsMock, make_writer: Any, dry_run: bool
) -> None:
    expect_list(rsps)
    expect_fields(rsps, [SCORE, SEGMENTS_FIELD])  # no plan
    expect_segments(rsps, STANDARD_SEGMENTS)

    with pytest.raises(ConfigError) as caught:
        make_writer(dry_run=dry_run).prepare()

    assert str(caught.value) == (
        f"list {LIST_ID} has no custom field plan: create it in Campaign Monitor (List > Custom fields) or change --map"
    )


def test_preflight_threads_fit_the_session_pool() -> None:
    """The engine sizes the session's HTTPAdapter pool to max_concurrency; pre-flight stays within it."""
    assert PREFLIGHT_WORKERS <= CampaignMonitorDestination().spec().limits.max_concurrency


def expect_known_lists(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{BASE}/clients.json", json=CLIENTS, match=[BASIC])
    rsps.get(
        f"{BASE}/clients/{CLIENTS[0]['ClientID']}/lists.json",
        json=[{"ListID": "1" * 32, "Name": "Newsletter"}, {"ListID": "2" * 32, "Name": "Customers"}],
    )
    rsps.get(f"{BASE}/clients/{CLIENTS[1]['ClientID']}/lists.json", json=[{"ListID": "3" * 32, "Name": "Beta news"}])


def assert_names_the_known_lists(message: str) -> None:
    assert LIST_ID in message
    assert "list_id" in message
    assert f"{'1' * 32} (Newsletter)" in message
    assert f"{'2' * 32} (Customers)" in message
    assert f"{'3' * 32} (Beta news)" in message
    assert API_KEY not in message


@pytest.mark.parametrize(
    ("status", "body"),
    [(400, cm_error(101, "Invalid ListID")), (404, None)],
    ids=["400-code-101", "404"],
)
def test_prepare_unknown_list_names_it_and_lists_the_known_ones(
    rsps: responses.RequestsMock, make_writer: Any, status: int, body: Any
) -> None:
    for url in (LIST_URL, FIELDS_URL, LIST_SEGMENTS_URL):  # the same wrong id fails every read
        rsps.get(url, status=status, **({"json": body} if body else {"body": ""}))
    expect_known_lists(rsps)

    with pytest.raises(UnknownAudienceError) as caught:
        make_writer().prepare()

    assert_names_the_known_lists(str(caught.value))


@pytest.mark.parametrize(
    "other",
    [
        {"status": 400, "json": cm_error(101, "Invalid ListID")},
        {"status": 404, "body": ""},
        {"status": 500, "json": cm_error(500, "Sorry, we've run into a problem")},
        {"body": requests.ConnectionError("connection reset by peer")},
    ],
    ids=["101", "404", "500", "transport"],
)
def test_prepare_unknown_list_wins_over_the_other_reads_failing_first(
    rsps: responses.RequestsMock, make_writer: Any, other: dict[str, Any]
) -> None:
    others_done = threading.Barrier(3, timeout=5)

    def after_the_others(body: Any) -> Callable[[requests.PreparedRequest], Any]:
        def callback(request: requests.PreparedRequest) -> Any:
            others_done.wait()
            return body

        return callback

    def fail_after_the_others(response: dict[str, Any]) -> Callable[[requests.PreparedRequest], Any]:
        def callback(request: requests.PreparedRequest) -> Any:
            try:
                if isinstance(response.get("body"), Exception):
                    raise response["body"]
                return response.get("status", 200), {}, json.dumps(response.get("json", ""))
            finally:
                others_done.wait()  # the list read answers only after both others have

        return callback

    rsps.add_callback(
        responses.GET, LIST_URL, callback=after_the_others((400, {}, json.dumps(cm_error(101, "Invalid ListID"))))
    )
    rsps.add_callback(responses.GET, FIELDS_URL, callback=fail_after_the_others(other))
    rsps.add_callback(responses.GET, LIST_SEGMENTS_URL, callback=fail_after_the_others(other))
    expect_known_lists(rsps)

    with pytest.raises(UnknownAudienceError) as caught:
        make_writer().prepare()

    assert_names_the_known_lists(str(caught.value))


def test_prepare_unknown_list_without_known_lists_still_names_it(
    rsps: responses.RequestsMock, make_writer: Any
) -> None:
    for url in (LIST_URL, FIELDS_URL, LIST_SEGMENTS_URL):
        rsps.get(url, status=400, json=cm_error(101, "Invalid ListID"))
    rsps.get(f"{BASE}/clients.json", status=400, json=cm_error(403, "Agency only"))

    with pytest.raises(UnknownAudienceError) as caught:
        make_writer().prepare()
    assert LIST_ID in str(caught.value)


def test_prepare_with_refused_credentials_is_an_auth_error(rsps: responses.RequestsMock, make_writer: Any) -> None:
    for url in (LIST_URL, FIELDS_URL, LIST_SEGMENTS_URL):
        rsps.get(url, status=401, json=cm_error(100, "Invalid API Key"))

    with pytest.raises(AuthError) as caught:
        make_writer().prepare()
    assert API_KEY not in str(caught.value)
    assert "Invalid API Key" in str(caught.value)


def test_prepare_auth_error_on_a_later_read_still_surfaces(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_list(rsps)
    rsps.get(FIELDS_URL, status=401, json=cm_error(100, "Invalid API Key"))
    rsps.get(LIST_SEGMENTS_URL, status=401, json=cm_error(100, "Invalid API Key"))

    with pytest.raises(AuthError) as caught:
        make_writer().prepare()
    assert API_KEY not in str(caught.value)


def test_expired_oauth_token_during_prepare_is_refreshed_once(rsps: responses.RequestsMock) -> None:
    config = {
        "auth_method": "oauth2",
        "client_id": "98765",
        "client_secret": "s3cr3t",
        "access_token": "old-token",
        "refresh_token": "old-refresh",
        "api_base_url": BASE,
    }
    expired = threading.Barrier(3, timeout=5)  # all three reads carry the old token before any refresh

    def expired_token(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        expired.wait()
        return 401, {}, json.dumps(cm_error(121, "Expired OAuth Token"))

    old, new = ({"Authorization": f"Bearer {t}"} for t in ("old-token", "new-token"))
    for url in (LIST_URL, FIELDS_URL, LIST_SEGMENTS_URL):
        rsps.add_callback(responses.GET, url, callback=expired_token, match=[matchers.header_matcher(old)])
    rsps.post(
        "https://api.createsend.com/oauth/token",
        json={"access_token": "new-token", "expires_in": 1209600, "refresh_token": "new-refresh"},
        match=[matchers.urlencoded_params_matcher({"grant_type": "refresh_token", "refresh_token": "old-refresh"})],
    )
    rsps.get(LIST_URL, json=LIST_DETAILS, match=[matchers.header_matcher(new)])
    rsps.get(FIELDS_URL, json=list(STANDARD_FIELDS), match=[matchers.header_matcher(new)])
    rsps.get(LIST_SEGMENTS_URL, json=list(STANDARD_SEGMENTS), match=[matchers.header_matcher(new)])

    with requests.Session() as http:
        auth = http.auth = CampaignMonitorAuth(config)
        CampaignMonitorWriter(http, config, RunContext("vip-export", OPTIONS, list(EXPORTED), [])).prepare()

    assert [c.request.method for c in rsps.calls].count("POST") == 1  # one refresh for the three reads
    assert auth.updated_secrets() == {"access_token": "new-token", "refresh_token": "new-refresh"}


# -- prepare(): mapped custom fields --------------------------------------------------------------
def test_prepare_missing_custom_field_names_it(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_list(rsps)
    expect_fields(rsps, STANDARD_FIELDS)
    expect_segments(rsps, STANDARD_SEGMENTS)  # read together with the fields

    with pytest.raises(ConfigError) as caught:
        make_writer(mapped=["Name", "plan", "tier"]).prepare()

    message = str(caught.value)
    assert "tier" in message
    assert "--map" in message
    assert "plan" not in message


def test_prepare_name_and_consent_need_no_custom_field(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_list(rsps)
    expect_fields(rsps, [SEGMENTS_FIELD])
    expect_segments(rsps, STANDARD_SEGMENTS)

    make_writer(mapped=["ConsentToTrack", "Name"]).prepare()  # neither is a custom field: no ConfigError


@pytest.mark.parametrize("field", [INTERESTS, {**INTERESTS, "FieldName": "plan", "Key": "[plan]"}], ids=["a", "b"])
def test_prepare_refuses_a_mapped_multiselectmany_field(
    rsps: responses.RequestsMock, make_writer: Any, field: dict[str, Any]
) -> None:
    expect_list(rsps)
    expect_fields(rsps, [field, SEGMENTS_FIELD])
    expect_segments(rsps, STANDARD_SEGMENTS)

    with pytest.raises(ConfigError) as caught:
        make_writer(mapped=["Name", field["FieldName"]]).prepare()

    assert field["FieldName"] in str(caught.value)
    assert "MultiSelectMany" in str(caught.value)


def test_prepare_matches_field_names_case_insensitively_and_sends_the_key(
    rsps: responses.RequestsMock, make_writer: Any
) -> None:
    expect_list(rsps)
    tier = {"FieldName": "Plan Tier", "Key": "[PlanTier]", "DataType": "MultiSelectOne", "FieldOptions": ["Gold"]}
    expect_fields(rsps, [tier, SEGMENTS_FIELD])
    expect_segments(rsps, STANDARD_SEGMENTS)
    writer = make_writer(mapped=["plan tier"])
    writer.prepare()

    ada = Record("p-ada", "ada@example.com", {"plan tier": "Gold"}, frozenset({"VIP"}), frozenset({"VIP"}))
    expect_import(rsps, [subscriber(ada.email, custom=[{"Key": "PlanTier", "Value": "Gold"}], segments=["VIP"])])

    assert writer.write_batch([ada]).outcomes == [Outcome("p-ada", OutcomeStatus.CREATED)]


# -- prepare(): the membership field --------------------------------------------------------------
def test_prepare_creates_the_missing_membership_field(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_list(rsps)
    expect_fields(rsps, [PLAN, SCORE])
    rsps.post(
        FIELDS_URL,
        status=201,
        json="[segments]",
        match=[
            matchers.json_params_matcher(
                {
                    "FieldName": "Segments",
                    "DataType": "MultiSelectMany",
                    "Options": ["VIP", "Churn risk"],
                    "VisibleInPreferenceCenter": False,
                }
            ),
            BASIC,
        ],
    )
    expect_segments(rsps, STANDARD_SEGMENTS)

    make_writer().prepare()

    made = calls(rsps)
    assert sorted(made[:3]) == [  # the three reads answered before the one write
        ("GET", f"/lists/{LIST_ID}.json"),
        ("GET", f"/lists/{LIST_ID}/customfields.json"),
        ("GET", f"/lists/{LIST_ID}/segments.json"),
    ]
    assert made[3:] == [("POST", f"/lists/{LIST_ID}/customfields.json")]


def test_created_membership_field_key_is_used_in_items_and_rules(
    rsps: responses.RequestsMock, make_writer: Any
) -> None:
    expect_list(rsps)
    expect_fields(rsps, [PLAN, SCORE])
    rsps.post(
        FIELDS_URL,
        status=201,
        json="[ExportedAudiences]",
        match=[
            matchers.json_params_matcher(
                {
                    "FieldName": "Exported Audiences",
                    "DataType": "MultiSelectMany",
                    "Options": ["VIP"],
                    "VisibleInPreferenceCenter": False,
                }
            )
        ],
    )
    expect_segments(rsps, [])
    rsps.post(
        NEW_SEGMENT_URL,
        status=201,
        json="d" * 32,
        match=[
            matchers.json_params_matcher(
                {
                    "Title": "VIP",
                    "RuleGroups": [{"Rules": [{"RuleType": "[ExportedAudiences]", "Clause": "EQUALS VIP"}]}],
                }
            )
        ],
    )
    writer = make_writer(segments=["VIP"], segment_field="Exported Audiences")
    writer.prepare()

    ada = rec("ada", upsert=False, new=False, add={"VIP"})
    expect_import(rsps, [subscriber(ada.email, custom=[{"Key": "ExportedAudiences", "Value": "VIP"}])])
    assert writer.write_batch([ada]).outcomes == [Outcome("p-ada", OutcomeStatus.UPDATED)]


def test_prepare_adds_only_the_missing_options(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_list(rsps)
    expect_fields(rsps, [PLAN, SCORE, {**SEGMENTS_FIELD, "FieldOptions": ["Churn risk", "Old"]}])
    rsps.put(
        OPTIONS_URL,
        status=200,
        body="",
        match=[matchers.json_params_matcher({"Options": ["VIP", "Dormant"], "KeepExistingOptions": True}), BASIC],
    )
    expect_segments(rsps, [*STANDARD_SEGMENTS, {"ListID": LIST_ID, "SegmentID": "e" * 32, "Title": "Dormant"}])

    make_writer(segments=["VIP", "Churn risk", "Dormant"]).prepare()

    assert ("PUT", f"/lists/{LIST_ID}/customfields/%5Bsegments%5D/options.json") in calls(rsps)


def test_prepare_finds_the_membership_field_case_insensitively(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_list(rsps)
    expect_fields(rsps, [PLAN, SCORE, {**SEGMENTS_FIELD, "FieldName": "SEGMENTS"}])
    expect_segments(rsps, STANDARD_SEGMENTS)

    make_writer().prepare()  # no POST customfields.json is registered: it would fail


@pytest.mark.parametrize("data_type", ["Text", "MultiSelectOne", "Number"])
def test_prepare_refuses_a_membership_field_of_another_type(
    rsps: responses.RequestsMock, make_writer: Any, data_type: str
) -> None:
    expect_list(rsps)
    expect_fields(rsps, [PLAN, SCORE, {**SEGMENTS_FIELD, "DataType": data_type}])
    rsps.get(LIST_SEGMENTS_URL, status=500, json=cm_error(500, "Sorry, we've run into a problem"))

    with pytest.raises(ConfigError) as caught:
        make_writer().prepare()

    message = str(caught.value)  # the field's type is checked before the (failed) segments read counts
    assert "Segments" in message and data_type in message
    assert "segment_field" in message


def test_prepare_mapped_field_error_wins_over_a_failed_segments_read(
    rsps: responses.RequestsMock, make_writer: Any
) -> None:
    expect_list(rsps)
    expect_fields(rsps, STANDARD_FIELDS)
    rsps.get(LIST_SEGMENTS_URL, status=500, json=cm_error(500, "Sorry, we've run into a problem"))

    with pytest.raises(ConfigError, match="tier"):
        make_writer(mapped=["Name", "tier"]).prepare()


def test_prepare_failed_segments_read_stops_before_any_write(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_list(rsps)
    expect_fields(rsps, [PLAN, SCORE])  # the membership field is missing, but nothing is created
    rsps.get(LIST_SEGMENTS_URL, status=503, body="<html>unavailable</html>", content_type="text/html")

    with pytest.raises(RetryableDestinationError):
        make_writer().prepare()

    assert {m for m, _ in calls(rsps)} == {"GET"}


# -- prepare(): rule segments ---------------------------------------------------------------------
def test_prepare_creates_rule_segments_for_missing_titles(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_list(rsps)
    expect_fields(rsps, STANDARD_FIELDS)
    expect_segments(rsps, [STANDARD_SEGMENTS[1], {"ListID": LIST_ID, "SegmentID": "f" * 32, "Title": "Other"}])
    rsps.post(
        NEW_SEGMENT_URL,
        status=201,
        json="d" * 32,
        match=[
            matchers.json_params_matcher(
                {"Title": "VIP", "RuleGroups": [{"Rules": [{"RuleType": "[segments]", "Clause": "EQUALS VIP"}]}]}
            ),
            BASIC,
        ],
    )

    make_writer().prepare()  # "Churn risk" exists: only VIP is created

    assert [c for c in calls(rsps) if c[0] == "POST"] == [("POST", f"/segments/{LIST_ID}.json")]


def test_prepare_creates_every_missing_rule_segment(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_list(rsps)
    expect_fields(rsps, STANDARD_FIELDS)
    expect_segments(rsps, [])
    for segment in EXPORTED:
        rule = {"RuleType": "[segments]", "Clause": f"EQUALS {segment}"}
        rsps.post(
            NEW_SEGMENT_URL,
            status=201,
            json="d" * 32,
            match=[matchers.json_params_matcher({"Title": segment, "RuleGroups": [{"Rules": [rule]}]})],
        )

    make_writer().prepare()

    sent = [sent_json(c.request)["Title"] for c in rsps.calls if c.request.method == "POST"]
    assert sorted(sent) == sorted(EXPORTED)


def test_prepare_on_a_new_list_creates_the_field_then_the_segments_concurrently(
    rsps: responses.RequestsMock, make_writer: Any
) -> None:
    order: list[str] = []
    created = in_step(3)  # the three segments are created at once, after the field

    def segment_created(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        order.append(sent_json(request)["Title"])
        return created("d" * 32)(request)

    def field_created(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        order.append("field")
        return 201, {}, json.dumps("[segments]")

    expect_list(rsps)
    expect_fields(rsps, [])
    expect_segments(rsps, [])
    rsps.add_callback(responses.POST, FIELDS_URL, callback=field_created, match=[BASIC])
    for segment in ("VIP", "Churn risk", "Dormant"):
        rule = {"RuleType": "[segments]", "Clause": f"EQUALS {segment}"}
        body = matchers.json_params_matcher({"Title": segment, "RuleGroups": [{"Rules": [rule]}]})
        rsps.add_callback(responses.POST, NEW_SEGMENT_URL, callback=segment_created, match=[body, BASIC])

    make_writer(segments=["VIP", "Churn risk", "Dormant"], mapped=["Name"]).prepare()

    assert order[0] == "field"
    assert sorted(order[1:]) == ["Churn risk", "Dormant", "VIP"]


def test_prepare_failed_segment_creations_report_the_first_in_export_order(
    rsps: responses.RequestsMock, make_writer: Any
) -> None:
    expect_list(rsps)
    expect_fields(rsps, STANDARD_FIELDS)
    expect_segments(rsps, [])
    for segment, code in (("VIP", 277), ("Churn risk", 275)):
        rsps.post(
            NEW_SEGMENT_URL,
            status=400,
            json=cm_error(code, f"failed {segment}"),
            match=[matchers.json_params_matcher({"Title": segment}, strict_match=False)],
        )

    with pytest.raises(DestinationError, match="failed VIP"):
        make_writer().prepare()


def test_prepare_without_rule_segments_makes_no_segment_call(rsps: responses.RequestsMock, make_writer: Any) -> None:
    expect_list(rsps)
    expect_fields(rsps, STANDARD_FIELDS)  # neither GET nor POST of segments is registered

    make_writer(create_rule_segments=False).prepare()

    assert len(rsps.calls) == 2


# -- write_batch(): the import body --------------------------------------------------------------
def test_one_import_call_with_exact_body(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    start = len(rsps.calls)
    ada, grace = rec("ada", add={"VIP"}), rec("grace", add={"VIP", "Churn risk"})
    expect_import(rsps, [default_row(ada), default_row(grace)], answer=import_result(new=2))

    result = writer.write_batch([ada, grace])

    assert result.outcomes == [Outcome("p-ada", OutcomeStatus.CREATED), Outcome("p-grace", OutcomeStatus.CREATED)]
    assert result.requests == 1 == len(rsps.calls) - start
    body = sent_json(rsps.calls[-1].request)
    assert body["QueueSubscriptionBasedAutoResponders"] is False  # capital R, as every official client
    assert body["RestartSubscriptionBasedAutoresponders"] is False  # lower-case r
    assert body["Resubscribe"] is False
    assert body["Subscribers"][1]["CustomFields"][-2:] == [
        {"Key": "segments", "Value": "Churn risk"},
        {"Key": "segments", "Value": "VIP"},
    ]


def test_resubscribe_comes_from_the_option(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared(resubscribe=True)
    ada = rec("ada", add={"VIP"})
    expect_import(rsps, [default_row(ada)], resubscribe=True)

    assert writer.write_batch([ada]).outcomes == [Outcome("p-ada", OutcomeStatus.CREATED)]


@pytest.mark.parametrize(
    ("literal", "sent"),
    [("Unchanged", "Unchanged"), ("Yes", "Yes"), ("yes", "Yes"), ("No", "No"), ("UNCHANGED", "Unchanged")],
)
def test_literal_consent_is_sent_on_every_row(
    rsps: responses.RequestsMock, prepared: Any, literal: str, sent: str
) -> None:
    writer = prepared(consent_to_track=literal)
    ada = rec("ada", add={"VIP"})
    marker = rec("lin", upsert=False, new=False, add={"VIP"})
    expect_import(
        rsps,
        [default_row(ada, consent=sent), subscriber(marker.email, consent=sent, segments=["VIP"])],
    )

    writer.write_batch([ada, marker])


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("yes", "Yes"),
        (" YES ", "Yes"),
        ("Yes", "Yes"),
        ("no", "No"),  # the option's contract: an attribute holding Yes/No
        ("maybe", "Unchanged"),
        ("", "Unchanged"),
        (None, "Unchanged"),
        (True, "Unchanged"),
    ],
)
def test_consent_from_a_profile_attribute(rsps: responses.RequestsMock, prepared: Any, value: Any, sent: str) -> None:
    writer = prepared(consent_to_track="gdpr_ok")
    fields = {"Name": "Ada Example", "plan": "pro", "score": 42}
    if value is not None:
        fields["ConsentToTrack"] = value
    ada = rec("ada", add={"VIP"}, fields=fields)
    expect_import(rsps, [default_row(ada, consent=sent)])  # ConsentToTrack is not a custom field item

    writer.write_batch([ada])


def test_custom_field_values_are_strings_and_empty_values_clear(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    ada = rec("ada", add={"VIP"}, fields={"Name": "Ada Lovelace", "plan": "", "score": 7.5})
    grace = rec("grace", add={"VIP"}, fields={"Name": "Grace Hopper", "score": 0})  # plan not in the record
    expect_import(
        rsps,
        [
            subscriber(
                ada.email,
                name="Ada Lovelace",
                custom=[{"Key": "plan", "Value": "", "Clear": True}, {"Key": "score", "Value": "7.5"}],
                segments=["VIP"],
            ),
            subscriber(
                grace.email,
                name="Grace Hopper",
                custom=[{"Key": "plan", "Value": "", "Clear": True}, {"Key": "score", "Value": "0"}],
                segments=["VIP"],
            ),
        ],
    )

    writer.write_batch([ada, grace])


def test_name_is_sent_only_when_the_record_has_one(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    ada = rec("ada", add={"VIP"}, fields={"plan": "pro", "score": 42})
    expect_import(rsps, [default_row(ada, name=None)])

    writer.write_batch([ada])

    assert "Name" not in sent_json(rsps.calls[-1].request)["Subscribers"][0]


def test_membership_items_per_current_and_removed_segment(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    ada = rec("ada", new=False, segments={"VIP"}, add={"VIP"}, remove={"Churn risk"})
    expect_import(
        rsps,
        [
            subscriber(
                ada.email,
                name="Ada Example",
                custom=[
                    {"Key": "plan", "Value": "pro"},
                    {"Key": "score", "Value": "42"},
                    {"Key": "segments", "Value": "VIP"},
                    {"Key": "segments", "Value": "Churn risk", "Clear": True},
                ],
            )
        ],
        answer=import_result(existing=1),
    )

    assert writer.write_batch([ada]).outcomes == [Outcome("p-ada", OutcomeStatus.UPDATED)]


def test_current_segments_are_all_sent_not_only_the_added_ones(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    ada = rec("ada", upsert=False, new=False, segments={"VIP", "Churn risk"}, add={"Churn risk"})
    expect_import(rsps, [subscriber(ada.email, segments=["Churn risk", "VIP"])])

    writer.write_batch([ada])


def test_marker_only_record_carries_only_membership(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    lin = rec("lin", upsert=False, new=False, segments={"VIP"}, add={"VIP"}, remove={"Churn risk"})
    expect_import(rsps, [subscriber(lin.email, segments=["VIP"], cleared=["Churn risk"])])

    result = writer.write_batch([lin])

    assert result.outcomes == [Outcome("p-lin", OutcomeStatus.UPDATED)]
    (row,) = sent_json(rsps.calls[-1].request)["Subscribers"]
    assert "Name" not in row
    assert {item["Key"] for item in row["CustomFields"]} == {"segments"}


def test_exit_carries_only_the_clear_item(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    leaver = rec("leaver", upsert=False, new=False, segments=(), remove={"VIP"})
    expect_import(rsps, [subscriber(leaver.email, cleared=["VIP"])])

    result = writer.write_batch([leaver])

    assert result.outcomes == [Outcome("p-leaver", OutcomeStatus.UPDATED)]
    (row,) = sent_json(rsps.calls[-1].request)["Subscribers"]
    assert row == {
        "EmailAddress": "leaver@example.com",
        "ConsentToTrack": "Unchanged",
        "CustomFields": [{"Key": "segments", "Value": "VIP", "Clear": True}],
    }


# -- write_batch(): answers ----------------------------------------------------------------------
def test_full_success_creates_new_and_updates_existing(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    ada, grace = rec("ada", add={"VIP"}), rec("grace", new=False, add={"VIP"})
    lin = rec("lin", upsert=False, new=False, add={"VIP"})
    expect_import(
        rsps,
        [default_row(ada), default_row(grace), subscriber(lin.email, segments=["VIP"])],
        answer=import_result(new=1, existing=2),
    )

    result = writer.write_batch([ada, grace, lin])

    assert result.outcomes == [
        Outcome("p-ada", OutcomeStatus.CREATED),
        Outcome("p-grace", OutcomeStatus.UPDATED),
        Outcome("p-lin", OutcomeStatus.UPDATED),
    ]
    assert result.requests == 1


@pytest.mark.parametrize("status", [200, 201])
def test_any_2xx_is_success(rsps: responses.RequestsMock, prepared: Any, status: int) -> None:
    writer = prepared()
    ada = rec("ada", add={"VIP"})
    expect_import(rsps, [default_row(ada)], status=status)

    assert writer.write_batch([ada]).outcomes == [Outcome("p-ada", OutcomeStatus.CREATED)]


def test_partial_import_rejects_only_the_listed_rows(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    start = len(rsps.calls)
    ok, bad, held, gone, old = (
        rec("ada", add={"VIP"}),
        rec("bad", add={"VIP"}),
        rec("held", add={"VIP"}),
        rec("gone", new=False, add={"VIP"}),
        rec("old", new=False, add={"VIP"}),
    )
    batch = [ok, bad, held, gone, old]
    failures = [
        {"EmailAddress": "bad@example.com", "Code": 1, "Message": "Invalid Email Address"},
        {"EmailAddress": "Held@Example.com", "Code": 204, "Message": "In Suppression List"},
        {"EmailAddress": "gone@example.com", "Code": 206, "Message": "Is Unsubscribed"},
    ]
    expect_import(
        rsps,
        [default_row(r) for r in batch],
        status=400,
        answer=cm_error(
            210,
            "Subscriber Import had some failures",
            ResultData=import_result(new=1, existing=1, failures=failures),
        ),
    )

    result = writer.write_batch(batch)

    assert result.outcomes == [
        Outcome("p-ada", OutcomeStatus.CREATED),
        Outcome.rejected("p-bad", "code 1: Invalid Email Address"),
        Outcome.rejected("p-held", "code 204: In Suppression List"),
        Outcome.rejected("p-gone", "code 206: Is Unsubscribed"),
        Outcome("p-old", OutcomeStatus.UPDATED),
    ]
    assert result.requests == 1 == len(rsps.calls) - start


def test_failure_details_in_a_2xx_answer_reject_too(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    ada, bad = rec("ada", add={"VIP"}), rec("bad", add={"VIP"})
    failures = [{"EmailAddress": "bad@example.com", "Code": 1, "Message": "Invalid Email Address"}]
    expect_import(rsps, [default_row(ada), default_row(bad)], answer=import_result(new=1, failures=failures))

    result = writer.write_batch([ada, bad])

    assert result.outcomes == [
        Outcome("p-ada", OutcomeStatus.CREATED),
        Outcome.rejected("p-bad", "code 1: Invalid Email Address"),
    ]


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (209, "Too many subscribers in one request"),
        (212, "No subscribers provided"),
        (210, "Subscriber Import had some failures"),  # 210 without ResultData: the whole request failed
        (214, "ConsentToTrack is required"),
        (1, "Invalid Email Address"),
    ],
    ids=["209", "212", "210-no-result", "214", "1"],
)
def test_import_refused_for_its_content_is_a_bad_batch(
    rsps: responses.RequestsMock, prepared: Any, code: int, message: str
) -> None:
    writer = prepared()
    rsps.post(IMPORT_URL, status=400, json=cm_error(code, message))

    with pytest.raises(BadBatchError) as caught:
        writer.write_batch([rec("ada"), rec("grace")])

    assert f"code {code}" in str(caught.value)
    assert message in str(caught.value)


def test_an_answer_quoting_the_api_key_is_masked(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    rsps.post(IMPORT_URL, status=400, json=cm_error(1, f"Invalid key {API_KEY} for subscriber"))

    with pytest.raises(BadBatchError) as caught:
        writer.write_batch([rec("ada"), rec("grace")])

    assert API_KEY not in str(caught.value) and "Invalid key ******** for subscriber" in str(caught.value)


def test_import_code_101_means_the_list_is_gone(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    rsps.post(IMPORT_URL, status=400, json=cm_error(101, "Invalid ListID"))

    with pytest.raises(UnknownAudienceError) as caught:
        writer.write_batch([rec("ada")])

    assert LIST_ID in str(caught.value)
    assert "list_id" in str(caught.value)


def test_import_404_means_the_list_is_gone(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    rsps.post(IMPORT_URL, status=404, body="")

    with pytest.raises(UnknownAudienceError):
        writer.write_batch([rec("ada")])


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, cm_error(100, "Invalid API Key")),
        (401, cm_error(50, "Must supply a valid HTTP Basic Authorization header")),
        (401, None),
    ],
    ids=["100", "50", "bodiless"],
)
def test_import_401_is_an_auth_error(rsps: responses.RequestsMock, prepared: Any, status: int, body: Any) -> None:
    writer = prepared()
    rsps.post(IMPORT_URL, status=status, **({"json": body} if body else {"body": ""}))

    with pytest.raises(AuthError) as caught:
        writer.write_batch([rec("ada")])
    assert API_KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "response"),
    [
        (429, {"json": cm_error(429, "Subscriber was added too many times too quickly, try again later.")}),
        (429, {"json": cm_error(429, "Rate limit exceeded"), "headers": {"X-RateLimit-Reset": "3"}}),
        (500, {"json": cm_error(500, "Sorry, we've run into a problem")}),
        (503, {"body": "<html>unavailable</html>", "content_type": "text/html"}),
    ],
    ids=["429-subscriber", "429-rate", "500", "503-html"],
)
def test_import_throttled_or_failing_is_retryable(
    rsps: responses.RequestsMock, prepared: Any, status: int, response: dict[str, Any]
) -> None:
    writer = prepared()
    rsps.post(IMPORT_URL, status=status, **response)

    with pytest.raises(RetryableDestinationError) as caught:
        writer.write_batch([rec("ada")])
    assert API_KEY not in str(caught.value)


def test_transport_fault_on_the_import_reaches_the_dispatcher(rsps: responses.RequestsMock, prepared: Any) -> None:
    writer = prepared()
    rsps.post(IMPORT_URL, body=requests.ConnectionError("connection reset by peer"))

    with pytest.raises(requests.ConnectionError):  # the dispatcher retries the whole batch on it
        writer.write_batch([rec("ada")])


@ORDERED
def test_expired_oauth_token_during_an_import_is_refreshed_and_the_import_retried(
    rsps: responses.RequestsMock,
) -> None:
    config = {
        "auth_method": "oauth2",
        "client_id": "98765",
        "client_secret": "s3cr3t",
        "access_token": "old-token",
        "refresh_token": "old-refresh",
        "api_base_url": BASE,
    }
    with requests.Session() as http:
        auth = http.auth = CampaignMonitorAuth(config)
        writer = CampaignMonitorWriter(http, config, RunContext("vip-export", OPTIONS, list(EXPORTED), []))
        writer.membership_key = "segments"  # what prepare() found (prepare is covered above)
        ada = rec("ada", upsert=False, new=False, add={"VIP"})
        body = matchers.json_params_matcher(import_body([subscriber(ada.email, segments=["VIP"])]))
        rsps.post(
            IMPORT_URL,
            status=401,
            json=cm_error(121, "Expired OAuth Token"),
            match=[body, matchers.header_matcher({"Authorization": "Bearer old-token"})],
        )
        rsps.post(
            "https://api.createsend.com/oauth/token",
            json={"access_token": "new-token", "expires_in": 1209600, "refresh_token": "new-refresh"},
            match=[matchers.urlencoded_params_matcher({"grant_type": "refresh_token", "refresh_token": "old-refresh"})],
        )
        rsps.post(
            IMPORT_URL,
            json=import_result(existing=1),
            match=[body, matchers.header_matcher({"Authorization": "Bearer new-token"})],
        )

        result = writer.write_batch([ada])

    assert result.outcomes == [Outcome("p-ada", OutcomeStatus.UPDATED)]
    assert auth.updated_secrets() == {"access_token": "new-token", "refresh_token": "new-refresh"}


# -- requests_for() matches write_batch() --------------------------------------------------------
def _answer_import(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
    rows = sent_json(request)["Subscribers"]
    return 201, {}, json.dumps(import_result(new=len(rows)))


PLANS = [
    pytest.param([rec("a", add={"VIP"}), rec("b", add={"VIP"}), rec("c")], 1, id="new"),
    pytest.param(
        [rec("a", new=False, add={"VIP"}), rec("b", upsert=False, new=False, remove={"Churn risk"})], 1, id="mixed"
    ),
    pytest.param([rec(f"p{i}", add={"VIP"}) for i in range(1000)], 1, id="1000"),
    pytest.param([rec(f"p{i}", add={"VIP"}) for i in range(1001)], 2, id="1001"),
    pytest.param([rec(f"p{i}", add={"VIP"}) for i in range(2500)], 3, id="2500"),
    pytest.param([], 0, id="empty"),
]


@pytest.mark.parametrize(("records", "expected"), PLANS)
def test_requests_for_counts_the_calls_write_batch_makes(
    rsps: responses.RequestsMock, prepared: Any, records: list[Record], expected: int
) -> None:
    writer = prepared()
    start = len(rsps.calls)
    planned = writer.requests_for(records)
    assert planned == expected
    # an empty batch makes no call (it would be 212 "no subscribers", docs/providers/campaignmonitor.md#import-size)
    if records:
        rsps.add_callback(responses.POST, IMPORT_URL, callback=_answer_import)

    result = writer.write_batch(records)

    assert result.requests == expected == len(rsps.calls) - start
    sent = [sent_json(c.request)["Subscribers"] for c in list(rsps.calls)[start:]]
    assert all(len(rows) <= IMPORT_LIMIT for rows in sent)
    assert [row["EmailAddress"] for rows in sent for row in rows] == [r.email for r in records]
    assert [o.key for o in result.outcomes] == [r.key for r in records]
    assert all(o.status.delivered for o in result.outcomes)
