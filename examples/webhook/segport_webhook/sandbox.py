"""A reference receiver of the segport webhook protocol v1, for tests and demos (standard library only).

``WebhookSandbox().start()`` serves one account with one audience, ``newsletter``, on a loopback port. It
checks every signature and its timestamp window, keys members by ``id``, keeps a set of segment names per
member and never deletes anyone. The HTTP plumbing, latency and fault injection and the ``/_sandbox/``
test API (state, summary, faults, revoke, reset) come from :mod:`segport.sandboxing`. Every rule here
is the protocol's own (README.md); there is no third-party platform to be faithful to.

Registered as ``webhook`` under the entry-point group ``segport.sandboxes`` (pyproject.toml), which is how
``segport sandbox``, ``segport demo`` and the conformance kit find it; the destination never imports it.
Serve it alone with ``python -m segport_webhook.sandbox --port 8080 --seed 1``.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

from segport.sandboxing import HttpError, PlatformMember, Request, Response, Router, SandboxServer, serve_main

from .protocol import MAX_ID_LENGTH, MAX_MEMBERS, TOLERANCE_S, member_id

__all__ = ["AUDIENCE", "WebhookSandbox", "main"]

AUDIENCE = "newsletter"  # the one audience a new sandbox holds
ACCOUNT = "segport webhook sandbox"
UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
ADDRESS = re.compile(r"[^@\s]+@[^@\s]+")  # the receiver's own (loose) address check
LISTS = ("segments", "add", "remove")

router: Router[WebhookSandbox] = Router()
route = router.route


def refused(message: str, status: int = 401) -> HttpError:
    """Return an error answer of the protocol: ``{"error": message}``."""
    return HttpError(status, {"error": message})


@dataclass
class StoredMember:
    """One member as the receiver holds it (keyed by id in its audience)."""

    email: str
    fields: dict[str, Any] = field(default_factory=dict)
    markers: set[str] = field(default_factory=set)

    def dump(self) -> dict[str, Any]:
        return {"email": self.email, "fields": dict(self.fields), "markers": sorted(self.markers)}


class WebhookSandbox(SandboxServer):
    """The receiver, served over HTTP on a background thread.

    :param latency_ms: delay added to every API call.
    :param fail_rate: share of API calls failed with a fault kind (seeded; default 429/500/503).
    :param seed: makes the secret and the fault sequence reproducible.
    :param secret: use this shared secret instead of a generated one.
    :param account: the name ``GET /ping`` answers.
    """

    router = router
    thread_name = "webhook-sandbox"
    fault_codes = (429, 500, 502, 503)

    def __init__(
        self,
        *,
        latency_ms: int = 0,
        fail_rate: float = 0.0,
        seed: int | None = None,
        secret: str | None = None,
        account: str | None = None,
    ) -> None:
        super().__init__(latency_ms=latency_ms, fail_rate=fail_rate, seed=seed)
        self.secret = secret or _generated_secret(seed)
        self.account = account or ACCOUNT
        self.audiences: dict[str, dict[str, StoredMember]] = {AUDIENCE: {}}
        self._data = threading.Lock()

    # -- what clients need, and the PlatformDouble the conformance kit reads --------------------------

    def demo_connection(self) -> dict[str, Any]:
        """Return a connection to this receiver: its URL and shared secret."""
        return {"url": self.base_url, "secret": self.secret}

    def demo_export_options(self) -> dict[str, Any]:
        """Return export options targeting the receiver's default audience."""
        return {"audience": AUDIENCE}

    def demo_mapping(self) -> dict[str, str]:
        """Return the data matching of the demo: first and last name."""
        return {"first_name": "first_name", "last_name": "last_name"}

    def unknown_export_options(self) -> dict[str, Any]:
        """Return export options naming an audience the receiver does not have."""
        return {"audience": "no-such-audience"}

    def members(self, audience: str = AUDIENCE) -> list[PlatformMember]:
        """Return everyone in ``audience``: the email as stored, fields, markers.

        The protocol has no unsubscribed state, so every member is ``subscribed``.
        """
        with self._data:
            stored = list(self.audiences[audience].values())
            return [PlatformMember(m.email, dict(m.fields), frozenset(m.markers), "subscribed") for m in stored]

    def seed_member(self, email: str, fields: Mapping[str, Any], audience: str = AUDIENCE) -> None:
        """Add a member who existed before any export, under the id of the normalised address.

        The address keeps the given case.
        """
        with self._data:
            self.audiences[audience][member_id(email)] = StoredMember(email, dict(fields))

    def add_audience(self, name: str) -> None:
        """Create another (empty) audience."""
        with self._data:
            self.audiences.setdefault(name, {})

    def summary(self) -> dict[str, Any]:
        """``{"audience", "members", "statuses": {"subscribed": n}, "segments": {name: members}}``."""
        with self._data:
            stored = list(self.audiences[AUDIENCE].values())
        segments: dict[str, int] = {}
        for member in stored:
            for name in member.markers:
                segments[name] = segments.get(name, 0) + 1
        statuses = {"subscribed": len(stored)} if stored else {}
        segments = dict(sorted(segments.items()))
        return {"audience": AUDIENCE, "members": len(stored), "statuses": statuses, "segments": segments}

    def state(self) -> dict[str, Any]:
        """Everything, JSON-able: the account and each audience's members by id."""
        with self._data:
            audiences = {name: {i: m.dump() for i, m in held.items()} for name, held in self.audiences.items()}
        return {**super().state(), "account": self.account, "audiences": audiences}

    def reset(self) -> None:
        """Back to a fresh receiver: same secret, one empty ``newsletter`` audience, faults as constructed."""
        with self._data:
            self.audiences = {AUDIENCE: {}}
        super().reset()

    # -- kit hooks: the protocol's signature check and error bodies ----------------------------------

    def authenticate(self, req: Request) -> None:
        """Refuse (401) a revoked secret, a missing or stale timestamp, or a signature that does not match."""
        if self.revoked:
            raise refused("the secret was revoked")
        timestamp = req.headers.get("x-segport-timestamp", "")
        signature = req.headers.get("x-segport-signature", "")
        if not timestamp or not signature:
            raise refused("missing X-Segport-Timestamp or X-Segport-Signature")
        if not UNIX_SECONDS.fullmatch(timestamp):
            raise refused("X-Segport-Timestamp is not unix seconds")
        if abs(time.time() - int(timestamp)) > TOLERANCE_S:
            raise refused(f"stale timestamp: more than {TOLERANCE_S} s from the receiver's clock")
        digest = hmac.new(self.secret.encode(), timestamp.encode() + b"." + req.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest("sha256=" + digest, signature):
            raise refused("bad signature")

    def fault_response(self, status: int, *, over_limit: bool = False) -> Response:
        """Return an injected fault in the protocol's form; a 429 always says when to come back."""
        headers = {"Retry-After": str(self.retry_after_s)} if status == 429 else {}
        return Response(status, {"error": f"injected fault {status}"}, headers)

    def no_route(self, req: Request, status: Literal[404, 405]) -> Response:
        """Answer a path without a route (404) or without this method (405) in the protocol's form."""
        return Response(status, {"error": f"no route for {req.method} {req.path}"})

    def bad_json(self, found: str | None) -> Exception:
        """Return the protocol's 400 for a body that is not a JSON object."""
        return refused("the body is not a JSON object", 400)

    def invalid_input(self, name: str, message: str) -> Exception:
        """Return the protocol's 400 for a bad test-API argument."""
        return refused(f"{name}: {message}", 400)

    # -- the batch rules ------------------------------------------------------------------------------

    def audience(self, name: str) -> dict[str, StoredMember]:
        """Return the members of audience ``name``; 404 when it does not exist."""
        held = self.audiences.get(name)
        if held is None:
            raise refused(f"unknown audience {name!r}", 404)
        return held

    def apply_batch(self, name: str, members: list[dict[str, Any]], refuse: Callable[[str], bool]) -> list[Any]:
        """Apply checked members to audience ``name``; one result per member, in order."""
        with self._data:
            held = self.audience(name)
            return [_apply(held, m, refuse) for m in members]


def _apply(held: dict[str, StoredMember], member: dict[str, Any], refuse: Callable[[str], bool]) -> dict[str, Any]:
    """One member's upsert and marker change: markers gain ``segments`` and ``add``, then lose ``remove``."""
    ident, email = member["id"], member["email"]
    if refuse(email):
        return {"id": ident, "status": "rejected", "reason": "refused by the receiver (sandbox member fault)"}
    if not ADDRESS.fullmatch(email):
        return {"id": ident, "status": "rejected", "reason": "not an email address"}
    marks = (set(member["segments"]) | set(member["add"])) - set(member["remove"])
    current = held.get(ident)
    if current is None:
        held[ident] = StoredMember(email, dict(member["fields"]), marks)
        return {"id": ident, "status": "created"}
    before = current.dump()
    if member["upsert"]:
        current.email = email
        current.fields.update(member["fields"])
    current.markers = (current.markers | set(member["segments"]) | set(member["add"])) - set(member["remove"])
    return {"id": ident, "status": "unchanged" if current.dump() == before else "updated"}


def _checked_members(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the ``members`` of a batch body; 400 naming the first malformed item, 413 past the limit."""
    members = body.get("members")
    if not isinstance(members, list) or not members:
        raise refused("members: must be a non-empty array", 400)
    if len(members) > MAX_MEMBERS:
        raise refused(f"members: more than {MAX_MEMBERS} in one call", 413)
    seen: set[str] = set()
    for i, member in enumerate(members):
        problem = _problem(member, seen)
        if problem:
            raise refused(f"members[{i}]{problem}", 400)
    return members


def _problem(member: Any, seen: set[str]) -> str | None:
    if not isinstance(member, dict):
        return ": must be an object"
    ident = member.get("id")
    if not isinstance(ident, str) or not 0 < len(ident) <= MAX_ID_LENGTH:
        return f".id: must be a string of 1 to {MAX_ID_LENGTH} characters"
    if ident in seen:
        return ".id: repeated in the batch"
    seen.add(ident)
    if not isinstance(member.get("email"), str):
        return ".email: must be a string"
    if not isinstance(member.get("fields"), dict):
        return ".fields: must be an object"
    for name in LISTS:
        value = member.get(name)
        if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
            return f".{name}: must be an array of strings"
    if not isinstance(member.get("upsert"), bool):
        return ".upsert: must be true or false"
    return None


def _generated_secret(seed: int | None) -> str:
    """32 hex characters: from ``seed`` when given (reproducible), else from the OS."""
    if seed is None:
        return secrets.token_hex(16)
    return f"{random.Random(f'webhook-secret|{seed}').getrandbits(128):032x}"


# -- the protocol's routes ----------------------------------------------------------------------------

AUDIENCE_PATH = r"/audiences/(?P<audience>[^/]+)"


@route("GET", r"/ping")
def _ping(sb: WebhookSandbox, req: Request) -> Response:
    return Response(200, {"account": sb.account})


@route("GET", AUDIENCE_PATH)
def _audience(sb: WebhookSandbox, req: Request) -> Response:
    name = req.params["audience"]
    with sb._data:
        count = len(sb.audience(name))
    return Response(200, {"audience": name, "members": count})


@route("POST", AUDIENCE_PATH + r"/members:batch")
def _batch(sb: WebhookSandbox, req: Request) -> Response:
    name = req.params["audience"]
    with sb._data:
        sb.audience(name)  # an unknown audience is 404 before the body is looked at
    members = _checked_members(req.json())
    return Response(200, {"results": sb.apply_batch(name, members, sb.member_faults(req))})


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a receiver until SIGINT/SIGTERM; print ``key: value`` lines describing it.

    The secret is printed too: this is a test receiver.
    """
    return serve_main(
        WebhookSandbox,
        lambda sb: [("url", sb.base_url), ("secret", sb.secret), ("audience", AUDIENCE)],
        argv,
        "python -m segport_webhook.sandbox",
        description="Serve a local receiver of the segport webhook protocol v1.",
        options=["--secret", "--account"],
    )


if __name__ == "__main__":
    raise SystemExit(main())
