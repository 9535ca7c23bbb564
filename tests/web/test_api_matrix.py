"""The API's permission matrix: every route x {anonymous, viewer, contributor, admin}.

Every route under /api/v1 needs an entry in :data:`CASES` (a new route without one fails
:func:`test_every_api_route_is_in_the_matrix`). Anonymous requests are 401 problem documents; a role
the services refuse gets a 403 problem document; an allowed role's request succeeds. A contributor
(or viewer) asking for the private connection, its export or that export's runs gets 403 or 404 and
none of their data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest

from segport.web.api import router

from .api_world import MEMORY_CONFIG, OPTIONS, ROLES, World, world_fixture  # noqa: F401 - the module's fixture

VIEWER, CONTRIBUTOR, ADMIN = "vera", "carl", "ada"
EVERYONE = frozenset(ROLES)
WRITERS = frozenset({CONTRIBUTOR, ADMIN})
ADMINS = frozenset({ADMIN})


@dataclass(frozen=True)
class Case:
    """One route's request (``{user}``, ``{run}`` are filled in) and the roles the services allow."""

    path: str
    allowed: frozenset[str]
    json: Any = None
    ok: int = 200  # the allowed roles' status
    content: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/api/v1/me"): Case("/api/v1/me", EVERYONE),
    ("GET", "/api/v1/plugins"): Case("/api/v1/plugins", EVERYONE),
    ("GET", "/api/v1/plugins/{type}"): Case("/api/v1/plugins/memory", EVERYONE),
    ("GET", "/api/v1/connections"): Case("/api/v1/connections", EVERYONE),
    ("POST", "/api/v1/connections"): Case(
        "/api/v1/connections",
        ADMINS,
        {"name": "c-{user}", "type": "memory", "config": MEMORY_CONFIG, "agree_privacy": True},
        ok=201,
    ),
    ("GET", "/api/v1/connections/{name}"): Case("/api/v1/connections/team", ADMINS),
    ("PATCH", "/api/v1/connections/{name}"): Case("/api/v1/connections/pc-{user}", ADMINS, {"share": "contributors"}),
    ("DELETE", "/api/v1/connections/{name}"): Case("/api/v1/connections/dc-{user}", ADMINS),
    ("POST", "/api/v1/connections/{name}/test"): Case("/api/v1/connections/team/test", ADMINS),
    # the memory destination lists no audiences: the allowed roles hear so (422), the others are refused first
    ("GET", "/api/v1/connections/{name}/audiences"): Case("/api/v1/connections/team/audiences", WRITERS, ok=422),
    ("GET", "/api/v1/exports"): Case("/api/v1/exports", EVERYONE),
    ("POST", "/api/v1/exports"): Case(
        "/api/v1/exports",
        WRITERS,
        {"name": "x-{user}", "connection": "team", "segments": ["All"], "email_field": "email", "options": OPTIONS},
        ok=201,
    ),
    ("GET", "/api/v1/exports/{name}"): Case("/api/v1/exports/e-team", EVERYONE),
    ("PATCH", "/api/v1/exports/{name}"): Case("/api/v1/exports/pe-{user}", WRITERS, {"enabled": False}),
    ("DELETE", "/api/v1/exports/{name}"): Case("/api/v1/exports/de-{user}", WRITERS),
    ("POST", "/api/v1/exports/{name}/runs"): Case("/api/v1/exports/run-{user}/runs", WRITERS, {}, ok=202),
    ("POST", "/api/v1/exports/{name}/dry-run"): Case("/api/v1/exports/e-team/dry-run?records=2", WRITERS),
    ("GET", "/api/v1/runs"): Case("/api/v1/runs", EVERYONE),
    ("GET", "/api/v1/runs/{run_id}"): Case("/api/v1/runs/{run}", EVERYONE),
    ("GET", "/api/v1/runs/{run_id}/rejects"): Case("/api/v1/runs/{run}/rejects", EVERYONE),
    ("GET", "/api/v1/segments"): Case("/api/v1/segments", EVERYONE),
    ("POST", "/api/v1/segments"): Case(
        "/api/v1/segments", WRITERS, {"name": "s-{user}", "where": "first_name = 'First1'"}, ok=201
    ),
    ("GET", "/api/v1/segments/count"): Case("/api/v1/segments/count?where=email%20is%20not%20empty", EVERYONE),
    ("PUT", "/api/v1/segments/{name}/members"): Case(
        "/api/v1/segments/m-{user}/members", WRITERS, {"keys": ["p1", "p2", "nobody"]}
    ),
    ("DELETE", "/api/v1/segments/{name}"): Case("/api/v1/segments/ds-{user}", WRITERS),
    ("GET", "/api/v1/profiles"): Case("/api/v1/profiles?where=first_name%20%3D%20%27First1%27", EVERYONE),
    ("GET", "/api/v1/profiles/count"): Case("/api/v1/profiles/count", EVERYONE),
    ("POST", "/api/v1/profiles"): Case(
        "/api/v1/profiles",
        WRITERS,
        content="id,email,first_name\nn-{user},n-{user}@example.com,New\n",
        headers={"Content-Type": "text/csv"},
    ),
    ("DELETE", "/api/v1/profiles"): Case("/api/v1/profiles", WRITERS, {"keys": ["x-{user}"]}),
    ("GET", "/api/v1/users"): Case("/api/v1/users", EVERYONE),
    ("POST", "/api/v1/users"): Case("/api/v1/users", ADMINS, {"name": "u-{user}", "role": "viewer"}, ok=201),
    ("PATCH", "/api/v1/users/{name}"): Case("/api/v1/users/pu-{user}", ADMINS, {"role": "contributor"}),
    ("DELETE", "/api/v1/users/{name}"): Case("/api/v1/users/du-{user}", ADMINS),
    ("POST", "/api/v1/users/{name}/invite"): Case("/api/v1/users/pu-{user}/invite", ADMINS),
    # every role manages its own API tokens
    ("GET", "/api/v1/tokens"): Case("/api/v1/tokens", EVERYONE),
    ("POST", "/api/v1/tokens"): Case("/api/v1/tokens", EVERYONE, {"name": "n-{user}"}, ok=201),
    ("DELETE", "/api/v1/tokens/{name}"): Case("/api/v1/tokens/t-{user}", EVERYONE),
    ("GET", "/api/v1/schedule"): Case("/api/v1/schedule", EVERYONE),
    ("PUT", "/api/v1/schedule"): Case("/api/v1/schedule", ADMINS, {"cron": "0 6 * * *"}),
    ("GET", "/api/v1/audit"): Case("/api/v1/audit", ADMINS),
}


def api_routes(routes: Any = None) -> Iterator[tuple[str, str]]:
    """Yield (method, path) of every route of the API router, through the included routers."""
    for route in router.routes if routes is None else routes:
        if hasattr(route, "effective_candidates"):
            yield from api_routes(route.effective_candidates())
            continue
        path = re.sub(r":path}", "}", getattr(route, "path", None) or route.path_format)  # as OpenAPI writes it
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            yield method, path


def test_every_api_route_is_in_the_matrix() -> None:
    routes = set(api_routes())
    assert len(routes) >= 40
    assert routes - set(CASES) == set(), "add the new routes to CASES"
    assert set(CASES) - routes == set(), "CASES names routes that do not exist"


def _fill(value: Any, user: str, world: World) -> Any:
    if isinstance(value, str):
        return value.format(user=user, run=world.run_id)
    if isinstance(value, list):
        return [_fill(v, user, world) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, user, world) for k, v in value.items()}
    return value


def _send(world: World, user: str | None, case: Case) -> Any:
    who = user or "anonymous"
    kwargs: dict[str, Any] = {"headers": case.headers}
    if case.json is not None:
        kwargs["json"] = _fill(case.json, who, world)
    if case.content is not None:
        kwargs["content"] = _fill(case.content, who, world).encode()
    return world.call(user, _method(case), _fill(case.path, who, world), **kwargs)


def _method(case: Case) -> str:
    return next(method for (method, _), c in CASES.items() if c is case)


@pytest.mark.parametrize("route", sorted(CASES), ids=lambda r: f"{r[0]} {r[1]}")
def test_matrix(world: World, route: tuple[str, str]) -> None:
    case = CASES[route]
    anonymous = _send(world, None, case)
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.json()["code"] == "PERMISSION_DENIED"
    for user in (VIEWER, CONTRIBUTOR, ADMIN):  # admins last: what they may remove, the others never could
        answer = _send(world, user, case)
        if user in case.allowed:
            assert answer.status_code == case.ok, f"{user}: {answer.text}"
        else:
            assert answer.status_code == 403, f"{user}: {answer.text}"
            problem = answer.json()
            assert problem["code"] == "PERMISSION_DENIED" and problem["status"] == 403
            assert answer.headers["content-type"] == "application/problem+json"


# Routes naming the private connection, its export, or that export's run: never its data for non-admins.
PRIVATE = [
    ("GET", "/api/v1/connections/private", None),
    ("PATCH", "/api/v1/connections/private", {"share": "contributors"}),
    ("DELETE", "/api/v1/connections/private", None),
    ("POST", "/api/v1/connections/private/test", None),
    ("GET", "/api/v1/connections/private/audiences", None),
    ("GET", "/api/v1/exports/e-private", None),
    ("PATCH", "/api/v1/exports/e-private", {"enabled": False}),
    ("DELETE", "/api/v1/exports/e-private", None),
    ("POST", "/api/v1/exports/e-private/runs", {}),
    ("POST", "/api/v1/exports/e-private/dry-run", None),
    (
        "POST",
        "/api/v1/exports",
        {"name": "sneaky", "connection": "private", "segments": ["All"], "email_field": "email", "options": OPTIONS},
    ),
    ("GET", "/api/v1/runs/{private_run}", None),
    ("GET", "/api/v1/runs/{private_run}/rejects", None),
]


@pytest.mark.parametrize("user", [CONTRIBUTOR, VIEWER])
def test_the_private_connection_and_its_export_are_never_shown(world: World, user: str) -> None:
    for method, path, body in PRIVATE:
        answer = world.call(user, method, path.format(private_run=world.private_run_id), json=body)
        assert answer.status_code in (403, 404), f"{method} {path}: {answer.text}"
        assert answer.headers["content-type"] == "application/problem+json"
        assert "memory-secret" not in answer.text
        assert "aud1" not in answer.text and "e-private" not in answer.json().get("suggestions", [])
    for path in ("/api/v1/connections", "/api/v1/exports", "/api/v1/runs", "/api/v1/runs?export=e-private"):
        listed = world.call(user, "GET", path + ("&" if "?" in path else "?") + "limit=500").json()
        names = {item.get("name") or item.get("export") for item in listed["items"]}
        assert "private" not in names and "e-private" not in names, path
    assert "e-private" not in world.call(user, "GET", "/api/v1/schedule").text
    assert world.call(ADMIN, "GET", "/api/v1/exports/e-private").status_code == 200  # it exists
    assert "export:e-private" in world.call(ADMIN, "GET", "/api/v1/schedule").text
