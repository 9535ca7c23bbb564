"""A workspace for the API's tests, made once per test module: users, a shared and a private connection
(memory destination), exports on each, profiles, segments, a finished run, and one API token per user.

Objects a role may change or remove come in one copy per role (``pe-carl``, ``de-ada``...), so each
role's request acts on its own and every allowed request can succeed whatever ran before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from segport import Registry, RetryPolicy, Workspace
from segport.plugins import make_manager
from segport.registry import set_default_registry
from segport.testing.fakes import MemoryPlatform, memory_destination
from segport.web import create_app

ROLES = {"vera": "viewer", "carl": "contributor", "ada": "admin"}
MEMORY_CONFIG = {"api_key": "memory-secret-key-0001"}
OPTIONS = {"audience_id": "aud1"}


@dataclass
class World:
    """The app over the module's workspace, its clients, and what the setup made."""

    home: Path
    app: Any
    client: TestClient
    tokens: dict[str, str]  # user -> API token
    platform: MemoryPlatform
    run_id: int = 0
    private_run_id: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def headers(self, user: str | None) -> dict[str, str]:
        """Return the Authorization header of ``user`` (none for the anonymous)."""
        return {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}

    def call(self, user: str | None, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request as ``user`` (None: anonymous)."""
        return self.client.request(method, path, headers={**self.headers(user), **kwargs.pop("headers", {})}, **kwargs)


@pytest.fixture(scope="module", name="world")
def world_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The module's workspace and app (SQLite; the route logic is the same over both stores)."""
    platform = MemoryPlatform()
    registry = Registry.from_plugins([memory_destination(platform, batch_size=4, max_concurrency=2)])
    set_default_registry(registry)  # the console's runs open their workspace with the default registry
    home = tmp_path_factory.mktemp("api") / "ws"
    retry = RetryPolicy(attempts=2, base=0.001, cap=0.01)
    ws = Workspace.create(home, "ada", registry=registry, pm=make_manager(autoload=False), retry=retry)
    try:
        tokens = _populate(ws, home)
        app = create_app(home)
        with TestClient(app, follow_redirects=False) as client:
            made = World(home, app, client, tokens, platform)
            made.run_id = ws.run_export("e-team").id
            made.private_run_id = ws.run_export("e-private").id
            yield made
    finally:
        ws.close()
        set_default_registry(None)


def _populate(ws: Workspace, home: Path) -> dict[str, str]:
    ws.add_user("carl", "contributor")
    ws.add_user("vera", "viewer")
    rows = ["id,email,first_name"] + [f"p{i},user{i}@example.com,First{i}" for i in range(6)]
    rows += [f"x-{user},x-{user}@example.com,X" for user in ROLES]
    csv = home.parent / "profiles.csv"
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    ws.load_profiles(csv)
    ws.define_segment("All", "email is not empty")
    ws.define_segment("Firsts", "first_name is not empty")
    ws.add_connection("team", "memory", MEMORY_CONFIG, share="contributors", agree_privacy=True)
    ws.add_connection("private", "memory", MEMORY_CONFIG, agree_privacy=True)
    exports = ["e-team"] + [f"{kind}-{user}" for kind in ("pe", "de", "run") for user in ROLES]
    for name in exports:
        ws.add_export(name, connection="team", segments=["All"], email_field="email", options=OPTIONS)
    ws.add_export(
        "e-private", connection="private", segments=["All"], email_field="email", options=OPTIONS, schedule="@daily"
    )
    for user in ROLES:
        ws.add_connection(f"dc-{user}", "memory", MEMORY_CONFIG, agree_privacy=True)
        ws.add_connection(f"pc-{user}", "memory", MEMORY_CONFIG, agree_privacy=True)
        ws.define_segment(f"ds-{user}", "email is not empty")
        ws.add_user(f"pu-{user}", "viewer")
        ws.add_user(f"du-{user}", "viewer")
    tokens: dict[str, str] = {}
    for user in ROLES:
        ws.context.user_name = user
        _, tokens[user] = ws.create_token("auth")
        ws.create_token(f"t-{user}")
    ws.context.user_name = "ada"
    return tokens
