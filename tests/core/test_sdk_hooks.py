"""SDK extension points a destination may use: extra profile fields, refreshed secrets, joined names."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest

from segport import AuthHandler, Registry, Workspace
from segport.pipeline.mapper import Mapper
from segport.plugins import make_manager
from segport.testing.fakes import MemoryAuth, MemoryPlatform, memory_destination


def test_a_plus_b_joins_attributes_with_a_space() -> None:
    mapper = Mapper("email", {"Name": "first_name+last_name", "Solo": "first_name"})
    mapped = mapper.map({"email": "a@b.co", "first_name": " Ada ", "last_name": "Lovelace"})
    assert not isinstance(mapped, str)
    assert mapped.fields == {"Name": "Ada Lovelace", "Solo": "Ada"}
    lonely = mapper.map({"email": "a@b.co", "first_name": "Ada"})
    assert not isinstance(lonely, str) and lonely.fields["Name"] == "Ada"


class RotatingAuth(MemoryAuth):
    """Pretends the platform handed out a new key during the run."""

    def updated_secrets(self) -> Mapping[str, Any] | None:
        return {"api_key": "rotated-key-42"}


@pytest.fixture
def platform() -> MemoryPlatform:
    return MemoryPlatform()


@pytest.fixture
def ws(tmp_path: Path, platform: MemoryPlatform) -> Iterator[Workspace]:
    base = memory_destination(platform)

    class Destination(base):  # type: ignore[valid-type,misc]
        def auth(self, config: Mapping[str, Any]) -> AuthHandler:
            return RotatingAuth(config, platform)

        def extra_fields(self, options: Mapping[str, Any]) -> Mapping[str, str]:
            return {"CONSENT": "gdpr_ok"}

    workspace = Workspace.create(
        tmp_path / "ws", "ada", registry=Registry.from_plugins([Destination]), pm=make_manager(autoload=False)
    )
    profiles = tmp_path / "p.csv"
    profiles.write_text("id,email,gdpr_ok\n1,a@example.com,yes\n2,b@example.com,no\n", encoding="utf-8")
    workspace.load_profiles(profiles)
    workspace.define_segment("all", "email is not empty")
    workspace.add_connection("m", "memory", {"api_key": "original-key-1"}, agree_privacy=True)
    workspace.add_export("e", connection="m", segments=["all"], email_field="email", options={"audience_id": "aud1"})
    yield workspace
    workspace.close()


def test_extra_fields_reach_the_records_and_their_hash(ws: Workspace, platform: MemoryPlatform, tmp_path: Path) -> None:
    ws.run_export("e")
    assert {r.email: r.fields["CONSENT"] for r in platform.calls[0]} == {"a@example.com": "yes", "b@example.com": "no"}
    changed = tmp_path / "c.csv"
    changed.write_text("id,email,gdpr_ok\n2,b@example.com,yes\n", encoding="utf-8")
    ws.load_profiles(changed)
    platform.calls.clear()
    run = ws.run_export("e")
    assert [r.email for call in platform.calls for r in call] == ["b@example.com"]  # consent change is a change
    assert run.counts["updated"] == 1


def test_secrets_changed_during_a_run_are_stored_encrypted(ws: Workspace) -> None:
    ws.run_export("e")
    connection = ws.get_connection("m")
    assert ws.connections.full_config(connection)["api_key"] == "rotated-key-42"
    raw = (ws.home / "segport.db").read_bytes()
    assert b"rotated-key-42" not in raw
    assert any(entry.action == "connections.refresh" for entry in ws.audit_entries())
