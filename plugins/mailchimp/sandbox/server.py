"""A local fake of the Mailchimp Marketing API v3 (the parts an exporter uses), standard library only.

``MailchimpSandbox().start()`` serves one account (dc ``us1``) with one audience on a loopback port:
HTTP Basic or OAuth Bearer auth, audiences, merge fields, batch subscribe, members, tags, static
segments, batch operations (``/batches``, results served under ``/batch-results/``), the OAuth2 code
flow, a 10-connection limit and injectable faults, plus an unauthenticated ``/_sandbox/*`` test API.
The HTTP plumbing is :mod:`segport.sandboxing`; the rules live in
:mod:`segport_mailchimp.sandbox.state` and :mod:`segport_mailchimp.sandbox.batches`; comments point
at the platform facts in ``docs/providers/mailchimp.md``.

Run it alone with ``python -m segport_mailchimp.sandbox --port 8080 --seed 1``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import secrets
import uuid
from typing import Any, Callable, Iterable, Literal, Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit

from segport.sandboxing import (
    RETRY_AFTER,
    Gate,
    PlatformMember,
    Request,
    Response,
    Router,
    SandboxServer,
    consent_decision,
    consent_page,
    redirect,
    serve_main,
)

from .batches import BatchQueue, check_operations
from .fields import trim_response
from .state import ALL_STATUSES, JSON, MAX_COUNT, ApiError, SandboxState, invalid

__all__ = ["MailchimpSandbox", "main"]

PROBLEM_TYPE = "application/problem+json; charset=utf-8"  # (docs/providers/mailchimp.md#problem-documents)
# (docs/providers/mailchimp.md#error-texts)
KEY_INVALID = "Your API key may be invalid, or you've attempted to access the wrong datacenter."
FAULTS: Mapping[int, tuple[str, str]] = {
    429: ("Too Many Requests", "You have exceeded the limit of 10 simultaneous connections."),
    500: (
        "Internal Server Error",
        "An unexpected internal error has occurred. Please contact Support for more information.",
    ),
    # Mailchimp's glossary maps 503 to ComplianceRelated (docs/providers/mailchimp.md#problem-documents); the sandbox
    # uses it as a transient outage.
    503: ("Service Unavailable", "The service is temporarily unavailable. Please try again later."),
}

router: Router[MailchimpSandbox] = Router()
route = router.route


_Handler = Callable[["MailchimpSandbox", Request], Response]  # a route of this sandbox


def read(pattern: str) -> Callable[[_Handler], _Handler]:
    """Register a GET route of the API whose answer honours ``fields`` and ``exclude_fields``."""

    def register(handler: _Handler) -> _Handler:
        @functools.wraps(handler)
        def trimmed(sb: MailchimpSandbox, req: Request) -> Response:
            return trim_response(handler(sb, req), req.query)

        route("GET", pattern)(trimmed)
        return trimmed

    return register


def ok(body: Any, status: int = 200) -> Response:
    return Response(status, body)


# Every problem document names its schema in a Link header (docs/providers/mailchimp.md#problem-documents).
DESCRIBED_BY = '<https://us1.api.mailchimp.com/schema/3.0/ProblemDetailDocument.json>; rel="describedBy"'


def problem(err: ApiError) -> Response:
    headers = {"X-Request-Id": str(uuid.uuid4()), "Link": DESCRIBED_BY, **err.headers}
    return Response(err.status, err.problem(), headers, PROBLEM_TYPE)


def _count_offset(req: Request) -> tuple[int, int]:
    """``count`` (default 10, clamped to 1000 — over-limit behaviour UNCONFIRMED) and ``offset``.

    See docs/providers/mailchimp.md#pagination.
    """
    try:
        count, offset = int(req.query.get("count", 10)), int(req.query.get("offset", 0))
    except ValueError:
        raise invalid([("count", "count and offset must be integers")]) from None
    return max(0, min(count, MAX_COUNT)), max(0, offset)


def _seg_id(req: Request) -> int:
    try:
        return int(req.params["seg"])  # segment ids are ints (docs/providers/mailchimp.md#tags-are-static-segments)
    except ValueError:
        raise ApiError(404, "Resource Not Found", "The requested resource could not be found.") from None


class MailchimpSandbox(SandboxServer):
    """A faithful local Mailchimp (one account, one audience) served over HTTP on a background thread.

    :param latency_ms: delay added to every API call.
    :param fail_rate: share of API calls failed with a fault kind (default 429/500/503, which leave the state
        alone; :meth:`set_faults` adds ``403`` (bodiless), connection resets, timeouts, slow calls and
        per-member errors in batch subscribe answers) (seeded).
    :param seed: makes the API key, audience id and fault sequence reproducible.
    :param api_key: use this key instead of a generated ``<32 hex>-us1``.
    :param max_connections: simultaneous API requests per credential before 429
        (docs/providers/mailchimp.md#connection-limit).
    :param oauth_consent: ``/oauth2/authorize`` shows a consent page (Allow, Deny) as Mailchimp does,
        instead of approving at once (docs/providers/mailchimp.md#oauth2-authorization-code).
    """

    router = router
    thread_name = "mailchimp-sandbox"
    fault_codes = (*FAULTS, 403)  # 403 has no body (docs/providers/mailchimp.md#connection-limit)

    def __init__(
        self,
        *,
        latency_ms: int = 0,
        fail_rate: float = 0.0,
        seed: int | None = None,
        api_key: str | None = None,
        max_connections: int = 10,
        oauth_consent: bool = False,
    ) -> None:
        super().__init__(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed)
        self.max_connections = max_connections
        self.oauth_consent = oauth_consent
        self._data = SandboxState(seed=seed, api_key=api_key)
        self._codes: dict[str, tuple[str, str]] = {}  # OAuth code -> (client_id, redirect_uri)
        self._tokens: set[str] = set()
        self._batches = BatchQueue(self._run_operation, self._sleep, self._results_url)

    # -- what clients need ------------------------------------------------------------------------------

    @property
    def api_base_url(self) -> str:
        """The sandbox's API root (``api_base_url`` of a connection)."""
        return self.base_url + "/3.0"

    @property
    def api_key(self) -> str:
        """The API key the sandbox accepts."""
        return self._data.api_key

    @property
    def audience_id(self) -> str:
        """The id of the sandbox's one audience."""
        return self._data.list_id

    def demo_connection(self) -> dict[str, Any]:
        """Return a connection to this sandbox: its API key and API root."""
        return {"api_key": self.api_key, "api_base_url": self.api_base_url}

    def demo_export_options(self) -> dict[str, Any]:
        """Return export options targeting the sandbox's audience."""
        return {"audience_id": self.audience_id}

    def demo_mapping(self) -> dict[str, str]:
        """Return the data matching of the demo: ``FNAME`` and ``LNAME``."""
        return {"FNAME": "first_name", "LNAME": "last_name"}

    def summary(self) -> dict[str, Any]:
        """``{"audience", "members": {status: n}, "tags": {name: n}, "merge_fields": [tags]}``."""
        return self._data.summary()

    # -- test hooks ---------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything, JSON-able: lists, merge fields, members keyed by email, segments, batches."""
        return {**self._data.dump(), "batches": self._batches.dump(), **super().state()}

    def add_member(
        self,
        email: str,
        status: str = "subscribed",
        merge_fields: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        unsubscribed_by: str = "self",
    ) -> dict[str, Any]:
        """Seed a pre-existing member (any status, no rules applied); return the member object.

        An ``unsubscribed`` or ``archived`` member unsubscribed themselves, unless ``unsubscribed_by="api"``.
        """
        return self._data.seed_member(email, status, merge_fields, tags, unsubscribed_by)

    def members(self) -> list[PlatformMember]:
        """Return the audience's members as the conformance kit reads them: merge fields, tags, status."""
        members = self._data.dump()["lists"][self.audience_id]["members"].values()
        return [
            PlatformMember(
                m["email_address"],
                {k: v for k, v in m["merge_fields"].items() if v != ""},
                frozenset(m["tags"]),
                m["status"],
            )
            for m in members
        ]

    def seed_member(self, email: str, fields: Mapping[str, Any]) -> None:
        """Add a subscribed member who existed before any export (the conformance kit's seed)."""
        self._data.seed_member(email, "subscribed", fields)

    def unknown_export_options(self) -> dict[str, Any]:
        """Return export options naming an audience id this account does not have."""
        return {"audience_id": "0000000000"}

    def mark_compliance(self, email: str) -> None:
        """Put an address in compliance state: subscribing it fails "Member In Compliance State".

        See docs/providers/mailchimp.md#compliance-state.
        """
        self._data.mark_compliance(email)

    def mark_forgotten(self, email: str) -> None:
        """Permanently delete an address: re-imports fail "Forgotten Email Not Subscribed".

        See docs/providers/mailchimp.md#compliance-state.
        """
        self._data.mark_forgotten(email)

    def rotate_key(self) -> str:
        """Issue a new API key of the same account and refuse the old one (a key rotation); return the new key."""
        with self._lock:
            self._data.api_key = f"{secrets.token_hex(16)}-{self._data.dc}"
            return self._data.api_key

    def revoke_key(self) -> None:
        """Revoke the API key and every OAuth token: later API calls get 401.

        See docs/providers/mailchimp.md#token-lifetime.
        """
        with self._lock:
            super().revoke_key()
            self._tokens.clear()

    def delete_list(self) -> None:
        """Delete the audience: its routes answer 404 afterwards (docs/providers/mailchimp.md#audience)."""
        self._data.delete_list()

    def busy(self) -> bool:
        """Whether batch jobs are pending or running."""
        return self._batches.busy()

    def stop(self) -> None:
        """Stop serving and the batch worker."""
        self._batches.close()
        super().stop()

    def reset(self) -> None:
        """Back to the freshly constructed state (same key and audience id, no members, no batches)."""
        self._batches.reset()
        self._data.reset()
        with self._lock:
            super().reset()
            self._codes.clear()
            self._tokens.clear()

    # -- kit hooks --------------------------------------------------------------------------------------

    def gates(self, path: str) -> Gate:
        """OAuth and batch results (another host in reality) with latency only; the API through every gate.

        See docs/providers/mailchimp.md#batch-results.
        """
        if path.startswith(("/oauth2/", "/batch-results/")):
            return "latency"
        return "api" if path == "/3.0" or path.startswith("/3.0/") else "plain"

    def fault_response(self, status: int, *, over_limit: bool = False) -> Response:
        """Return an injected fault as problem+json, or (``over_limit``) the 429 past the connection limit."""
        if over_limit:  # 10 connections per user -> 429 (docs/providers/mailchimp.md#connection-limit)
            detail = f"You have exceeded the limit of {self.max_connections} simultaneous connections. "
            return problem(
                ApiError(429, FAULTS[429][0], detail + "Please try again after some connections have closed.")
            )
        if status == 403:
            return Response(403)  # a bodiless 403 throttle (docs/providers/mailchimp.md#connection-limit)
        return problem(ApiError(status, *FAULTS[status]))

    def authenticate(self, req: Request) -> None:
        """Accept Basic (any user, key as password) or Bearer <token issued here>.

        See docs/providers/mailchimp.md#api-key-authentication.
        """
        header = req.headers.get("authorization", "")
        if not header:
            # Title per the glossary's APIKeyMissing; exact title/detail UNCONFIRMED
            # (docs/providers/mailchimp.md#error-texts).
            raise ApiError(401, "API Key Missing", "Your request did not include an API key.")
        scheme, _, value = header.partition(" ")
        with self._lock:
            if scheme.lower() == "basic":
                try:
                    _, _, key = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    key = ""
                # One key; checking the key's data center against the host is moot on a loopback host
                # (docs/providers/mailchimp.md#base-url-and-data-center).
                if key == self._data.api_key and not self.revoked:
                    return
            elif scheme.lower() == "bearer" and value.strip() in self._tokens:
                return
        raise ApiError(401, "API Key Invalid", KEY_INVALID)

    def no_route(self, req: Request, status: Literal[404, 405]) -> Response:
        """Answer a path without a route (404) or without this method (405) as problem+json."""
        if status == 404:
            return problem(ApiError(404, "Resource Not Found", "The requested resource could not be found."))
        detail = "The requested method and resource are not compatible. See the Allow header for this resource's "
        return problem(ApiError(405, "Method Not Allowed", detail + "available methods."))

    def bad_json(self, found: str | None) -> Exception:
        """400 JSON Parse Error; a body that is not an object answers the schema error of a batch request.

        See docs/providers/mailchimp.md#problem-documents and docs/providers/mailchimp.md#batch-operations-request.
        """
        if found is None:
            return ApiError(400, "JSON Parse Error", "We encountered an unspecified JSON parsing error.")
        return invalid([("", f"Schema describes object, {found} found instead")])

    def invalid_input(self, name: str, message: str) -> Exception:
        """Return a 400 Invalid Resource naming the bad test-API argument."""
        return invalid([(name, message)])

    def render_error(self, exc: Exception) -> Response:
        """Answer an exception as problem+json; one that is not an :class:`ApiError` is a 500."""
        if not isinstance(exc, ApiError):  # a sandbox bug: answer 500 rather than drop the connection
            exc = ApiError(500, "Internal Server Error", f"sandbox error: {exc!r}")
        return problem(exc)

    # -- batch operations (docs/providers/mailchimp.md#batch-operations-request) ----------------------

    def _run_operation(self, op: JSON) -> tuple[int, str]:
        """Run one batch operation through the same handlers as a direct call; return its status and body.

        Faults are rolled per operation (status kinds only: an operation has no connection to reset or
        hold; ``fault_filter`` sees ``op METHOD /path``).
        """
        url = urlsplit(str(op["path"]))
        query = {**dict(parse_qsl(url.query)), **{k: str(v) for k, v in (op.get("params") or {}).items()}}
        req = Request(str(op["method"]), "/3.0" + url.path, query, str(op.get("body") or "").encode(), {})
        req.bad_json = self.bad_json
        fault = self.roll_fault(req, operation=True)
        if fault is not None:
            self.log_fault(fault, req, operation=True)
            resp = self.fault_response(429 if fault == RETRY_AFTER else int(fault))
        else:
            handler, req.params, allowed = self.router.resolve(req.method, req.path)
            try:
                resp = handler(self, req) if handler is not None else self.no_route(req, 405 if allowed else 404)
            except Exception as exc:
                resp = self.render_error(exc)
        return resp.status, "" if resp.body is None else json.dumps(resp.body)

    def _results_url(self, batch_id: str, token: str) -> str:
        """Return a pre-signed-style URL: whoever holds it may download, without the API key.

        See docs/providers/mailchimp.md#batch-results.
        """
        return f"{self.base_url}/batch-results/{batch_id}-response.tar.gz?Signature={token}"

    # -- OAuth bookkeeping ------------------------------------------------------------------------

    def _issue_code(self, client_id: str, redirect_uri: str) -> str:
        code = secrets.token_hex(16)
        with self._lock:
            self._codes[code] = (client_id, redirect_uri)
        return code

    def _redeem(self, code: str, client_id: str, redirect_uri: str) -> str | None:
        """Trade a code once for a token; None when unknown, reused or issued to another client."""
        with self._lock:
            issued = self._codes.pop(code, None)
            if issued != (client_id, redirect_uri):
                return None
            token = secrets.token_hex(16)
            self._tokens.add(token)
            return token

    def _token_ok(self, token: str) -> bool:
        with self._lock:
            return token in self._tokens


# -- API routes (docs/providers/mailchimp.md) ------------------------------------------------------

LIST = r"/3\.0/lists/(?P<list>[^/]+)"
MEMBER = LIST + r"/members/(?P<member>[^/]+)"
SEGMENT = LIST + r"/segments/(?P<seg>[^/]+)"


@read(r"/3\.0/?")
def _root(sb: MailchimpSandbox, req: Request) -> Response:
    """Answer the API root: account details (docs/providers/mailchimp.md#ping-and-api-root)."""
    data = sb._data
    subscribed = data.summary()["members"].get("subscribed", 0)
    return ok(
        {
            "account_id": data.account_id,
            "login_id": "1",
            "account_name": "Sandbox",
            "email": "owner@sandbox.example.com",
            "first_name": "Sandbox",
            "last_name": "Owner",
            "username": "sandbox",
            "role": "owner",
            "member_since": data.created,
            "pricing_plan_type": "monthly",
            "account_timezone": "UTC",
            "pro_enabled": False,
            "total_subscribers": subscribed,
            "contact": {"company": "Sandbox", "country": "US"},
            "_links": [],
        }
    )


@read(r"/3\.0/ping")
def _ping(sb: MailchimpSandbox, req: Request) -> Response:
    return ok({"health_status": "Everything's Chimpy!"})  # (docs/providers/mailchimp.md#ping-and-api-root)


@read(r"/3\.0/lists")
def _lists(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.lists(*_count_offset(req)))


@read(LIST)
def _get_list(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.get_list(req.params["list"]))


@route("POST", LIST)
def _batch(sb: MailchimpSandbox, req: Request) -> Response:
    """Batch subscribe/update (docs/providers/mailchimp.md#batch-subscribe-request)."""
    return ok(
        sb._data.batch_subscribe(
            req.params["list"],
            req.json(),
            skip_merge_validation=req.flag("skip_merge_validation"),
            skip_duplicate_check=req.flag("skip_duplicate_check"),
            refuse=sb.member_faults(req),
        )
    )


@read(LIST + "/merge-fields")
def _merge_fields(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.list_merge_fields(req.params["list"], *_count_offset(req)))


@route("POST", LIST + "/merge-fields")
def _create_merge_field(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.create_merge_field(req.params["list"], req.json()))


@read(LIST + "/members")
def _members(sb: MailchimpSandbox, req: Request) -> Response:
    status = req.query.get("status") or None
    if status is not None and status not in ALL_STATUSES:
        raise invalid([("status", "Value is not one of the enum values: " + ", ".join(ALL_STATUSES))])
    return ok(sb._data.list_members(req.params["list"], *_count_offset(req), status))


@route("POST", LIST + "/members")
def _create_member(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(
        sb._data.create_member(req.params["list"], req.json(), skip_merge_validation=req.flag("skip_merge_validation"))
    )


@read(MEMBER)
def _get_member(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.get_member(req.params["list"], req.params["member"]))


@route("PUT", MEMBER)
def _put_member(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(
        sb._data.put_member(
            req.params["list"],
            req.params["member"],
            req.json(),
            skip_merge_validation=req.flag("skip_merge_validation"),
        )
    )


@route("PATCH", MEMBER)
def _patch_member(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(
        sb._data.patch_member(
            req.params["list"],
            req.params["member"],
            req.json(),
            skip_merge_validation=req.flag("skip_merge_validation"),
        )
    )


@route("DELETE", MEMBER)
def _archive_member(sb: MailchimpSandbox, req: Request) -> Response:
    sb._data.archive_member(req.params["list"], req.params["member"])
    return Response(204)


@route("POST", MEMBER + "/actions/delete-permanent")
def _delete_permanent(sb: MailchimpSandbox, req: Request) -> Response:
    sb._data.delete_permanent(req.params["list"], req.params["member"])
    return Response(204)


@read(MEMBER + "/tags")
def _member_tags(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.member_tags(req.params["list"], req.params["member"]))


@route("POST", MEMBER + "/tags")
def _update_member_tags(sb: MailchimpSandbox, req: Request) -> Response:
    sb._data.update_member_tags(req.params["list"], req.params["member"], req.json())
    return Response(204)  # (docs/providers/mailchimp.md#member-tags)


@read(LIST + "/segments")
def _segments(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.segments(req.params["list"], req.query.get("type"), *_count_offset(req)))


@route("POST", LIST + "/segments")
def _create_segment(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.create_segment(req.params["list"], req.json()))


@read(SEGMENT)
def _get_segment(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.get_segment(req.params["list"], _seg_id(req)))


@route("POST", SEGMENT)
def _segment_members(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.segment_members(req.params["list"], _seg_id(req), req.json()))


@route("DELETE", SEGMENT)
def _delete_segment(sb: MailchimpSandbox, req: Request) -> Response:
    sb._data.delete_segment(req.params["list"], _seg_id(req))
    return Response(204)


@read(LIST + "/tag-search")
def _tag_search(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._data.tag_search(req.params["list"], req.query.get("name", "")))


# -- batch operations (docs/providers/mailchimp.md#batch-operations-request) --------------------------

BATCH = r"/3\.0/batches/(?P<batch>[^/]+)"


@route("POST", r"/3\.0/batches")
def _submit_batch(sb: MailchimpSandbox, req: Request) -> Response:
    """Queue operations; 200 with the batch resource, ``status: pending`` (docs/providers/mailchimp.md#batch-status)."""
    return ok(sb._batches.submit(check_operations(req.json())))


@read(r"/3\.0/batches")
def _list_batches(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._batches.page(*_count_offset(req)))


@read(BATCH)
def _get_batch(sb: MailchimpSandbox, req: Request) -> Response:
    return ok(sb._batches.get(req.params["batch"]))


@route("DELETE", BATCH)
def _delete_batch(sb: MailchimpSandbox, req: Request) -> Response:
    sb._batches.delete(req.params["batch"])
    return Response(204)


@route("GET", r"/batch-results/(?P<batch>[0-9a-f]+)-response\.tar\.gz")
def _batch_results(sb: MailchimpSandbox, req: Request) -> Response:
    """Serve a batch's results archive, on what is another (storage) host in reality.

    It takes no API credentials, so the sandbox refuses requests that carry any (the key must not
    leave Mailchimp's API).

    See docs/providers/mailchimp.md#batch-results.
    """
    if "authorization" in req.headers:
        return _text(400, "credentials sent to the batch results host: fetch response_body_url without them")
    archive = sb._batches.archive(req.params["batch"], req.query.get("Signature", ""))
    if archive is None:
        return _text(403, "access denied: unknown batch, unfinished batch or wrong signature")
    return Response(200, headers={}, content_type="application/gzip", raw=archive)


def _text(status: int, message: str) -> Response:
    return Response(status, content_type="text/plain; charset=utf-8", raw=message.encode())


# -- OAuth2 (docs/providers/mailchimp.md#oauth2-authorization-code) ----------------------------------
# At login.mailchimp.com in reality; errors there are plain JSON, not problem+json.


def _oauth_error(status: int, error: str, description: str) -> Response:
    return Response(status, {"error": error, "error_description": description})


@route("GET", r"/oauth2/authorize")
def _authorize(sb: MailchimpSandbox, req: Request) -> Response:
    """Ask the user (with ``oauth_consent``) or approve at once: redirect to ``redirect_uri?code=…&state=…``.

    See docs/providers/mailchimp.md#oauth2-authorization-code.
    """
    q = req.query
    if q.get("response_type") != "code" or not q.get("client_id") or not q.get("redirect_uri"):
        return _oauth_error(400, "invalid_request", "response_type=code, client_id and redirect_uri are required")
    if sb.oauth_consent:
        names = ("response_type", "client_id", "redirect_uri", "state")
        params = {name: q[name] for name in names if name in q}
        return consent_page(platform="Mailchimp", client_id=q["client_id"], action="/oauth2/authorize", params=params)
    return _approved(sb, q)


@route("POST", r"/oauth2/authorize")
def _decide(sb: MailchimpSandbox, req: Request) -> Response:
    """Answer the consent page: Allow redirects with a code, Deny with ``error=access_denied`` (and the state).

    See docs/providers/mailchimp.md#oauth2-authorization-code.
    """
    form = req.form()
    if form.get("response_type") != "code" or not form.get("client_id") or not form.get("redirect_uri"):
        return _oauth_error(400, "invalid_request", "response_type=code, client_id and redirect_uri are required")
    decision = consent_decision(form)
    if decision is None:
        return _oauth_error(400, "invalid_request", "decision must be allow or deny")
    if decision == "deny":
        return redirect(form["redirect_uri"], {"error": "access_denied", **_state(form)})
    return _approved(sb, form)


def _approved(sb: MailchimpSandbox, params: Mapping[str, str]) -> Response:
    code = sb._issue_code(params["client_id"], params["redirect_uri"])
    # `state`: UNCONFIRMED (docs/providers/mailchimp.md#oauth2-authorization-code)
    return redirect(params["redirect_uri"], {"code": code, **_state(params)})


def _state(params: Mapping[str, str]) -> dict[str, str]:
    return {"state": params["state"]} if "state" in params else {}


@route("POST", r"/oauth2/token")
def _token(sb: MailchimpSandbox, req: Request) -> Response:
    """Code -> ``{"access_token", "expires_in": 0, "scope": null}``; tokens never expire.

    See docs/providers/mailchimp.md#token-lifetime.
    """
    form = req.form()
    if form.get("grant_type") != "authorization_code":
        return _oauth_error(400, "unsupported_grant_type", "grant_type must be authorization_code")
    if not form.get("client_id") or not form.get("client_secret"):
        return _oauth_error(401, "invalid_client", "client_id and client_secret are required")
    token = sb._redeem(form.get("code", ""), form["client_id"], form.get("redirect_uri", ""))
    if token is None:
        return _oauth_error(400, "invalid_grant", "Invalid authorization code")
    return ok({"access_token": token, "expires_in": 0, "scope": None})


@route("GET", r"/oauth2/metadata")
def _metadata(sb: MailchimpSandbox, req: Request) -> Response:
    """Answer ``Authorization: OAuth <token>`` with dc and api_endpoint (docs/providers/mailchimp.md#oauth-metadata)."""
    scheme, _, token = req.headers.get("authorization", "").partition(" ")
    if scheme != "OAuth" or not sb._token_ok(token.strip()):
        return _oauth_error(401, "invalid_token", "The access token is invalid or has been revoked")
    return ok(
        {
            "dc": sb._data.dc,
            "role": "owner",
            "accountname": "Sandbox",
            "user_id": 1,
            "login": {
                "email": "owner@sandbox.example.com",
                "avatar": None,
                "login_id": 1,
                "login_name": "sandbox",
                "login_email": "owner@sandbox.example.com",
            },
            "login_url": sb.base_url,
            "api_endpoint": sb.base_url,
        }
    )


# -- test/state API (no auth, faults, latency or connection counting; state, summary, faults, revoke and
# reset come with the kit) ---------------------------------------------------------------------------


@route("POST", r"/_sandbox/members")
def _seed_member(sb: MailchimpSandbox, req: Request) -> Response:
    body = req.json()
    if not isinstance(body.get("email"), str):
        raise invalid([("email", "This value should not be blank.")])
    try:
        member = sb.add_member(
            body["email"],
            str(body.get("status", "subscribed")),
            body.get("merge_fields"),
            tuple(body.get("tags") or ()),
            str(body.get("unsubscribed_by", "self")),
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise invalid([("", str(err))]) from None
    return ok(member)


@route("POST", r"/_sandbox/compliance")
def _seed_compliance(sb: MailchimpSandbox, req: Request) -> Response:
    """``{"email"}``: put the address in compliance state (as ``segport sandbox --compliance`` does)."""
    email = req.json().get("email")
    if not isinstance(email, str) or "@" not in email:
        raise invalid([("email", "This value should not be blank.")])
    sb.mark_compliance(email)
    return Response(204)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a sandbox until SIGINT/SIGTERM; print ``key: value`` lines describing it."""
    return serve_main(
        MailchimpSandbox,
        lambda sb: [("api_base_url", sb.api_base_url), ("api_key", sb.api_key), ("audience_id", sb.audience_id)],
        argv,
        "python -m segport_mailchimp.sandbox",
        description="Serve a local Mailchimp sandbox.",
        options=["--api-key"],
        flags={"--oauth-consent": "show a consent page (Allow, Deny) on /oauth2/authorize"},
    )
