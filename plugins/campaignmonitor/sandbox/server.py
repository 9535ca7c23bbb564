"""A local fake of the Campaign Monitor API v3.3 (the parts an exporter uses), standard library only.

``CampaignMonitorSandbox().start()`` serves one account with one client and one list on a loopback port:
HTTP Basic (API key) or OAuth Bearer auth, clients, lists, custom fields, subscriber add/import/read,
unsubscribe/delete, rule segments, the OAuth2 web-server flow and injectable faults, plus an
unauthenticated ``/_sandbox/*`` test API. The HTTP plumbing is :mod:`segport.sandboxing`; the rules
live in :mod:`segport_campaignmonitor.sandbox.state`; comments point at the platform facts in
``docs/providers/campaignmonitor.md``.

Run it alone with ``python -m segport_campaignmonitor.sandbox --port 8080 --seed 1``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from typing import Any, Literal, Mapping, Sequence

from segport.sandboxing import (
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

from ..writer import DEFAULT_SEGMENT_FIELD
from .state import JSON, ApiError, SandboxState, bad_request, parse_paging

__all__ = ["CampaignMonitorSandbox", "main"]

API_PREFIX = "/api/v3.3"
TOKEN_LIFETIME = 1_209_600  # 14 days (docs/providers/campaignmonitor.md#token-refresh)
FAULTS: Mapping[int, str] = {
    429: "Rate limit exceeded",  # documented for /transactional (docs/providers/campaignmonitor.md#rate-limits)
    500: "Sorry, we've run into a problem",  # message UNCONFIRMED (docs/providers/campaignmonitor.md#error-envelope)
    503: "Service Unavailable",  # not documented for Campaign Monitor: the sandbox's transient outage
}
LIST_STATES = {
    "active": "Active",
    "unsubscribed": "Unsubscribed",
    "deleted": "Deleted",
    "bounced": "Bounced",
    "unconfirmed": "Unconfirmed",
}
DEFAULT_MAX_CONNECTIONS = 10  # calls in flight per credential (docs/providers/campaignmonitor.md#rate-limits)
BAD_CODE = "Specified code was invalid or expired"  # (docs/providers/campaignmonitor.md#oauth2-web-server-flow)

router: Router[CampaignMonitorSandbox] = Router()
route = router.route


def ok(body: Any = None, status: int = 200) -> Response:
    """``body`` None: empty; anything else is sent as JSON (a str becomes a JSON string)."""
    return Response(status, body)


def error(err: ApiError) -> Response:
    return Response(err.status, err.body())


def _email(req: Request) -> str:
    """Return the ``email`` query parameter of subscriber routes (absent: 203 after the list check).

    See docs/providers/campaignmonitor.md#update-unsubscribe-and-delete.
    """
    return req.query.get("email", "")


class CampaignMonitorSandbox(SandboxServer):
    """A faithful local Campaign Monitor (one client, one list) served over HTTP on a background thread.

    :param latency_ms: delay added to every API call.
    :param fail_rate: share of API calls failed with a fault kind (default 429/500/503, which leave the state
        alone; :meth:`set_faults` adds connection resets, timeouts, slow calls and per-row 204 failures in
        the 210 partial-import answer) (seeded).
    :param seed: makes the API key, client and list ids, segment ids and fault sequence reproducible.
    :param api_key: use this key instead of a generated 32-hex one.
    :param max_connections: simultaneous API requests per credential before 429 "Rate limit exceeded"
        (Campaign Monitor publishes no such number: a cap to test clients against,
        docs/providers/campaignmonitor.md#rate-limits).
    :param oauth_consent: ``/oauth`` shows a consent page (Allow, Deny) naming the app and the permissions
        asked, instead of approving at once (docs/providers/campaignmonitor.md#oauth2-web-server-flow).
    """

    router = router
    thread_name = "campaignmonitor-sandbox"
    fault_codes = tuple(FAULTS)

    def __init__(
        self,
        *,
        latency_ms: int = 0,
        fail_rate: float = 0.0,
        seed: int | None = None,
        api_key: str | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        oauth_consent: bool = False,
    ) -> None:
        super().__init__(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed)
        self.max_connections = max_connections
        self.oauth_consent = oauth_consent
        self._data = SandboxState(seed=seed, api_key=api_key)
        self._codes: dict[str, tuple[str, str]] = {}  # OAuth code -> (client_id, redirect_uri)
        self._tokens: dict[str, tuple[str, float]] = {}  # access token -> (active|expired|revoked, expiry)
        self._refresh: set[str] = set()

    # -- what clients need ------------------------------------------------------------------------------

    @property
    def api_base_url(self) -> str:
        """The sandbox's API root (``api_base_url`` of a connection)."""
        return self.base_url + API_PREFIX

    @property
    def api_key(self) -> str:
        """The API key the sandbox accepts."""
        return self._data.api_key

    @property
    def list_id(self) -> str:
        """The id of the sandbox's one list."""
        return self._data.list_id

    @property
    def client_id(self) -> str:
        """The id of the sandbox's one client."""
        return self._data.client_id

    def demo_connection(self) -> dict[str, Any]:
        """Return a connection to this sandbox: its API key and API root."""
        return {"api_key": self.api_key, "api_base_url": self.api_base_url}

    def demo_export_options(self) -> dict[str, Any]:
        """Return export options targeting the sandbox's list."""
        return {"list_id": self.list_id}

    def describe(self) -> dict[str, Any]:
        """Return the API root, the key, the list id and the client id (``segport sandbox --json``)."""
        return {**super().describe(), "client_id": self.client_id}

    def demo_mapping(self) -> dict[str, str]:
        """Return the data matching of the demo: ``Name`` from first and last name."""
        return {"Name": "first_name+last_name"}

    def summary(self) -> dict[str, Any]:
        """``{"list", "subscribers": {State: n}, "segments field options": {option: n}, "rule segments"}``."""
        return self._data.summary()

    # -- test hooks ---------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything, JSON-able: the client, lists (details, custom fields, subscribers, segments), suppressions."""
        return {**self._data.dump(), **super().state()}

    def add_subscriber(
        self,
        email: str,
        state: str = "Active",
        name: str = "",
        custom_fields: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Seed a pre-existing subscriber (any state, no rules applied); return the subscriber details.

        ``custom_fields`` maps field names (or keys) to a value, or a list of options for MultiSelectMany.
        """
        return self._data.seed_subscriber(email, state, name, custom_fields)

    def members(self) -> list[PlatformMember]:
        """Return the list's subscribers as the conformance kit reads them.

        Fields are ``Name`` and the custom fields, markers the segment field's options (the default field
        ``Segments``), the status the subscriber's state.
        """
        subscribers = self._data.dump()["lists"][self.list_id]["subscribers"].values()
        found = []
        for s in subscribers:
            custom = dict(s["CustomFields"])
            markers = custom.pop(DEFAULT_SEGMENT_FIELD, None) or []
            fields = {"Name": s["Name"], **custom} if s["Name"] else custom
            found.append(PlatformMember(s["EmailAddress"], fields, frozenset(markers), s["State"]))
        return found

    def seed_member(self, email: str, fields: Mapping[str, Any]) -> None:
        """Add an active subscriber who existed before any export (the conformance kit's seed)."""
        custom = {k: v for k, v in fields.items() if k != "Name"}
        self._data.seed_subscriber(email, "Active", str(fields.get("Name", "")), custom)

    def unknown_export_options(self) -> dict[str, Any]:
        """Return export options naming a list id this client does not have."""
        return {"list_id": "0" * 32}

    def suppress(self, email: str) -> None:
        """Add an address to the client's suppression list: imports fail 204 unless Resubscribe.

        See docs/providers/campaignmonitor.md#row-failure-codes.
        """
        self._data.suppress([email])

    def rotate_key(self) -> str:
        """Issue a new API key of the same account and refuse the old one (a key rotation); return the new key."""
        with self._lock:
            self._data.api_key = secrets.token_hex(16)
            return self._data.api_key

    def revoke_key(self) -> None:
        """Revoke the API key (401 Code 100) and every OAuth token (401 Code 122).

        See docs/providers/campaignmonitor.md#api-key-authentication and
        docs/providers/campaignmonitor.md#token-refresh.
        """
        with self._lock:
            super().revoke_key()
            self._tokens = {t: ("revoked", exp) for t, (_, exp) in self._tokens.items()}
            self._refresh.clear()

    def expire_tokens(self) -> None:
        """Expire every live OAuth access token: 401 Code 121 until the client refreshes.

        See docs/providers/campaignmonitor.md#token-refresh.
        """
        with self._lock:
            self._tokens = {t: ("expired" if s == "active" else s, e) for t, (s, e) in self._tokens.items()}

    def delete_list(self) -> None:
        """Delete the list: its routes answer 400 Code 101 afterwards.

        See docs/providers/campaignmonitor.md#invalid-list.
        """
        self._data.delete_list()

    def reset(self) -> None:
        """Back to the freshly constructed state (same key, client and list ids; nothing in the list)."""
        self._data.reset()
        with self._lock:
            super().reset()
            self._codes.clear()
            self._tokens.clear()
            self._refresh.clear()

    # -- kit hooks (the cap of calls in flight is the sandbox's, docs/providers/campaignmonitor.md#rate-limits) --

    def gates(self, path: str) -> Gate:
        """OAuth with latency only; the API through every gate."""
        if path == "/oauth" or path.startswith("/oauth/"):
            return "latency"
        return "api" if path.startswith(API_PREFIX + "/") else "plain"

    def fault_response(self, status: int, *, over_limit: bool = False) -> Response:
        """Return an injected fault or (``over_limit``) the 429 past ``max_connections``, as ``{"Code", "Message"}``."""
        # No X-RateLimit headers outside /transactional (docs/providers/campaignmonitor.md#rate-limits).
        return error(ApiError(status, status, FAULTS[status]))

    def authenticate(self, req: Request) -> None:
        """Accept Basic with the API key as username (password ignored), or Bearer <token issued here>.

        See docs/providers/campaignmonitor.md#api-key-authentication and
        docs/providers/campaignmonitor.md#oauth2-web-server-flow.
        """
        scheme, _, value = req.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            with self._lock:
                status, expiry = self._tokens.get(value.strip(), ("unknown", 0.0))
            if status == "active" and time.monotonic() >= expiry:
                status = "expired"
            if status == "active":
                return
            if status == "expired":
                raise ApiError(401, 121, "Expired OAuth Token")
            if status == "revoked":
                raise ApiError(401, 122, "Revoked OAuth Token")
            raise ApiError(401, 120, "Invalid OAuth Token")
        key = None
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = None
        if key is None:  # absent or garbled header (docs/providers/campaignmonitor.md#api-key-authentication)
            raise ApiError(401, 50, "Must supply a valid HTTP Basic Authorization header")
        with self._lock:
            if key == self._data.api_key and not self.revoked:
                return
        raise ApiError(401, 100, "Invalid API Key")  # (docs/providers/campaignmonitor.md#api-key-authentication)

    def no_route(self, req: Request, status: Literal[404, 405]) -> Response:
        """Answer a path without a route (404) or without this method (405) in the envelope."""
        if status == 404:
            return error(ApiError(404, 404, "Not found"))
        return Response(405, {"Code": 405, "Message": "Method not allowed"})  # the sandbox's answer

    def bad_json(self, found: str | None) -> Exception:
        """Not JSON, or not an object: 400 Code 400 (the sandbox's own message)."""
        return bad_request()

    def invalid_input(self, name: str, message: str) -> Exception:
        """Return a 400 Code 400 for a bad test-API argument."""
        return ApiError(400, 400, message)

    def render_error(self, exc: Exception) -> Response:
        """Answer an exception in the envelope; one that is not an :class:`ApiError` is a 500."""
        if not isinstance(exc, ApiError):  # a sandbox bug: answer 500 rather than drop the connection
            exc = ApiError(500, 500, f"sandbox error: {exc!r}")
        return error(exc)

    def encode_body(self, req: Request, body: Any) -> bytes:
        """Encode a JSON body, indented when the query asks ``pretty=true``."""
        # `pretty=true` indents (docs/providers/campaignmonitor.md#base-url-and-formats).
        if req.query.get("pretty", "").lower() == "true":
            return json.dumps(body, indent=2).encode()
        return super().encode_body(req, body)

    # -- OAuth bookkeeping ------------------------------------------------------------------------

    def _issue_code(self, client_id: str, redirect_uri: str) -> str:
        code = secrets.token_hex(16)
        with self._lock:
            self._codes[code] = (client_id, redirect_uri)
        return code

    def _new_pair(self) -> JSON:
        """Call with the lock held: a fresh access/refresh token pair.

        See docs/providers/campaignmonitor.md#token-refresh.
        """
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self._tokens[access] = ("active", time.monotonic() + TOKEN_LIFETIME)
        self._refresh.add(refresh)
        return {"access_token": access, "expires_in": TOKEN_LIFETIME, "refresh_token": refresh}

    def _redeem(self, code: str, client_id: str, redirect_uri: str) -> JSON | None:
        """Trade a code once for tokens; None when unknown, reused or issued to another client/redirect."""
        with self._lock:
            issued = self._codes.pop(code, None)
            return self._new_pair() if issued == (client_id, redirect_uri) else None

    def _refreshed(self, refresh_token: str) -> JSON | None:
        """Return a new pair for a live refresh token, which is spent; None for any other token.

        See docs/providers/campaignmonitor.md#token-refresh.
        """
        with self._lock:
            if refresh_token not in self._refresh:
                return None
            self._refresh.discard(refresh_token)
            return self._new_pair()


# -- API routes: every route ends in .json (docs/providers/campaignmonitor.md#base-url-and-formats) -----------------

API = re.escape(API_PREFIX)
CLIENT = API + r"/clients/(?P<client>[^/]+)"
LIST = API + r"/lists/(?P<list>[^/]+)"
SUBSCRIBERS = API + r"/subscribers/(?P<list>[^/]+)"
SEGMENT = API + r"/segments/(?P<seg>[^/]+)"


@route("GET", API + r"/clients\.json")
def _clients(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.clients())  # (docs/providers/campaignmonitor.md#clients-and-lists)


@route("GET", CLIENT + r"/lists\.json")
def _client_lists(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.client_lists(req.params["client"]))  # (docs/providers/campaignmonitor.md#clients-and-lists)


@route("POST", CLIENT + r"/suppress\.json")
def _suppress(sb: CampaignMonitorSandbox, req: Request) -> Response:
    # The client's suppression list (docs/providers/campaignmonitor.md#update-unsubscribe-and-delete).
    sb._data.suppress_for_client(req.params["client"], req.json())
    return ok()


@route("GET", LIST + r"\.json")
def _list(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.list_details(req.params["list"]))


@route("GET", LIST + r"/customfields\.json")
def _custom_fields(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.custom_fields(req.params["list"]))


@route("POST", LIST + r"/customfields\.json")
def _create_custom_field(sb: CampaignMonitorSandbox, req: Request) -> Response:
    # The new key as a JSON string (docs/providers/campaignmonitor.md#custom-fields).
    return ok(sb._data.create_custom_field(req.params["list"], req.json()), 201)


@route("PUT", LIST + r"/customfields/(?P<key>[^/]+)/options\.json")
def _field_options(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.update_field_options(req.params["list"], req.params["key"], req.json())
    return ok()


@route("DELETE", LIST + r"/customfields/(?P<key>[^/]+)\.json")
def _delete_field(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.delete_custom_field(req.params["list"], req.params["key"])
    return ok()


@route("GET", LIST + r"/(?P<state>active|unsubscribed|deleted|bounced|unconfirmed)\.json")
def _list_subscribers(sb: CampaignMonitorSandbox, req: Request) -> Response:
    state = LIST_STATES[req.params["state"]]
    return ok(sb._data.list_subscribers(req.params["list"], state, parse_paging(req.query)))


@route("GET", LIST + r"/segments\.json")
def _segments(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.list_segments(req.params["list"]))  # (docs/providers/campaignmonitor.md#list-details)


@route("POST", SUBSCRIBERS + r"/import\.json")
def _import(sb: CampaignMonitorSandbox, req: Request) -> Response:
    # Full success 201 (exact code UNCONFIRMED, docs/providers/campaignmonitor.md#import-answer);
    # partial failure raises 400/210 (docs/providers/campaignmonitor.md#partial-import).
    return ok(sb._data.import_subscribers(req.params["list"], req.json(), sb.member_faults(req)), 201)


@route("POST", SUBSCRIBERS + r"\.json")
def _add_subscriber(sb: CampaignMonitorSandbox, req: Request) -> Response:
    # The email as a JSON string (docs/providers/campaignmonitor.md#add-a-subscriber).
    return ok(sb._data.add_subscriber(req.params["list"], req.json()), 201)


@route("PUT", SUBSCRIBERS + r"\.json")
def _update_subscriber(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.update_subscriber(req.params["list"], _email(req), req.json())
    return ok()


@route("GET", SUBSCRIBERS + r"\.json")
def _get_subscriber(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.get_subscriber(req.params["list"], _email(req)))


@route("DELETE", SUBSCRIBERS + r"\.json")
def _delete_subscriber(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.delete_subscriber(req.params["list"], _email(req))
    return ok()


@route("POST", SUBSCRIBERS + r"/unsubscribe\.json")
def _unsubscribe(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.unsubscribe(req.params["list"], req.json())
    return ok()  # 200, empty body: UNCONFIRMED (docs/providers/campaignmonitor.md#update-unsubscribe-and-delete)


@route("POST", SEGMENT + r"\.json")
def _create_segment(sb: CampaignMonitorSandbox, req: Request) -> Response:
    # POST /segments/{listid}.json: the path id is the list here (docs/providers/campaignmonitor.md#rule-segments).
    return ok(sb._data.create_segment(req.params["seg"], req.json()), 201)


@route("GET", SEGMENT + r"\.json")
def _get_segment(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.get_segment(req.params["seg"]))


@route("PUT", SEGMENT + r"\.json")
def _update_segment(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.update_segment(req.params["seg"], req.json())
    return ok()


@route("DELETE", SEGMENT + r"\.json")
def _delete_segment(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.delete_segment(req.params["seg"])
    return ok()


@route("GET", SEGMENT + r"/active\.json")
def _segment_active(sb: CampaignMonitorSandbox, req: Request) -> Response:
    return ok(sb._data.segment_active(req.params["seg"], parse_paging(req.query)))


@route("POST", SEGMENT + r"/rules\.json")
def _add_rules(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.add_rule_group(req.params["seg"], req.json())
    return ok(status=201)


@route("DELETE", SEGMENT + r"/rules\.json")
def _clear_rules(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb._data.clear_rules(req.params["seg"])
    return ok()


# -- OAuth2 web-server flow (docs/providers/campaignmonitor.md#oauth2-web-server-flow) ------------------------
# At api.createsend.com in reality; errors there are {"error", "error_description"}.


def _oauth_error(status: int, err: str, description: str) -> Response:
    return Response(status, {"error": err, "error_description": description})


@route("GET", r"/oauth")
def _authorize(sb: CampaignMonitorSandbox, req: Request) -> Response:
    """Ask the user (with ``oauth_consent``) or approve at once: redirect to ``redirect_uri?code=…&state=…``.

    ``type=web_server`` is accepted, and so is its absence (the Python client omits it; UNCONFIRMED).
    See docs/providers/campaignmonitor.md#oauth2-web-server-flow.
    """
    q = req.query
    if q.get("type", "web_server") != "web_server" or not q.get("client_id") or not q.get("redirect_uri"):
        return _oauth_error(400, "invalid_request", "type=web_server, client_id and redirect_uri are required")
    if sb.oauth_consent:
        names = ("type", "client_id", "redirect_uri", "scope", "state")
        params = {name: q[name] for name in names if name in q}
        scope = q.get("scope", "")
        return consent_page(
            platform="Campaign Monitor", client_id=q["client_id"], action="/oauth", params=params, scope=scope
        )
    return _approved(sb, q)


@route("POST", r"/oauth")
def _decide(sb: CampaignMonitorSandbox, req: Request) -> Response:
    """Answer the consent page: Allow redirects with a code, Deny with ``error=access_denied`` (and the state).

    See docs/providers/campaignmonitor.md#oauth2-web-server-flow.
    """
    form = req.form()
    if form.get("type", "web_server") != "web_server" or not form.get("client_id") or not form.get("redirect_uri"):
        return _oauth_error(400, "invalid_request", "type=web_server, client_id and redirect_uri are required")
    decision = consent_decision(form)
    if decision is None:
        return _oauth_error(400, "invalid_request", "decision must be allow or deny")
    if decision == "deny":
        return redirect(form["redirect_uri"], {"error": "access_denied", **_state(form)})
    return _approved(sb, form)


def _approved(sb: CampaignMonitorSandbox, params: Mapping[str, str]) -> Response:
    code = sb._issue_code(params["client_id"], params["redirect_uri"])
    return redirect(params["redirect_uri"], {"code": code, **_state(params)})


def _state(params: Mapping[str, str]) -> dict[str, str]:
    return {"state": params["state"]} if "state" in params else {}


@route("POST", r"/oauth/token")
def _token(sb: CampaignMonitorSandbox, req: Request) -> Response:
    """Form-encoded code exchange or refresh -> ``{"access_token", "expires_in", "refresh_token"}``.

    See docs/providers/campaignmonitor.md#oauth2-web-server-flow and docs/providers/campaignmonitor.md#token-refresh.
    """
    form = req.form()
    grant = form.get("grant_type")
    if grant == "refresh_token":
        pair = sb._refreshed(form.get("refresh_token", ""))
        if pair is None:  # text for refresh tokens: the sandbox reuses the documented code message
            return _oauth_error(400, "invalid_grant", BAD_CODE)
        return ok(pair)
    if grant != "authorization_code":
        return _oauth_error(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
    if not form.get("client_id") or not form.get("client_secret"):
        return _oauth_error(400, "invalid_client", "client_id and client_secret are required")
    pair = sb._redeem(form.get("code", ""), form["client_id"], form.get("redirect_uri", ""))
    if pair is None:
        return _oauth_error(400, "invalid_grant", BAD_CODE)
    return ok(pair)


# -- test/state API (no auth, faults or latency; state, summary, faults, revoke and reset come with the kit) --


@route("POST", r"/_sandbox/subscribers")
def _seed_subscriber(sb: CampaignMonitorSandbox, req: Request) -> Response:
    body = req.json()
    if not isinstance(body.get("email"), str):
        raise ApiError(400, 400, "email is required")
    try:
        sub = sb.add_subscriber(
            body["email"], str(body.get("state", "Active")), str(body.get("name") or ""), body.get("custom_fields")
        )
    except (ValueError, TypeError, AttributeError) as err:
        raise ApiError(400, 400, str(err)) from None
    return ok(sub)


@route("POST", r"/_sandbox/suppress")
def _seed_suppression(sb: CampaignMonitorSandbox, req: Request) -> Response:
    email = req.json().get("email")
    if not isinstance(email, str) or not email.strip():
        raise ApiError(400, 400, "email is required")
    sb.suppress(email)
    return Response(204)


@route("POST", r"/_sandbox/expire-tokens")
def _expire(sb: CampaignMonitorSandbox, req: Request) -> Response:
    sb.expire_tokens()
    return Response(204)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a sandbox until SIGINT/SIGTERM; print ``key: value`` lines describing it."""
    return serve_main(
        CampaignMonitorSandbox,
        lambda sb: [("api_base_url", sb.api_base_url), ("api_key", sb.api_key), ("list_id", sb.list_id)],
        argv,
        "python -m segport_campaignmonitor.sandbox",
        description="Serve a local Campaign Monitor sandbox.",
        options=["--api-key"],
        flags={"--oauth-consent": "show a consent page (Allow, Deny) on /oauth"},
    )
