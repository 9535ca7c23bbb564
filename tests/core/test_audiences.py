"""Listing a connection's audiences (``Connections.audiences``, ``segport connections audiences``).

A destination that lists them, bound to the memory platform, stands beside the memory destination
(which cannot): who may list, what the plugin is given, what the service does with its answer.
Every test runs on both stores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping

import pytest
import requests

from segport import (
    MAX_AUDIENCES,
    Audience,
    ConfigError,
    NotFound,
    PermissionDenied,
    PluginContractError,
    Registry,
    Workspace,
)
from segport.errors import ExitStatus
from segport.governor import GovernedAdapter
from segport.registry import set_default_registry
from segport.testing import dump_database
from segport.testing.fakes import MemoryPlatform, memory_destination

KEY = "k-0123456789abcdef"
LISTED: list[Any] = [Audience("aud1", "Newsletter", 12), Audience("aud2", "Customers", None)]


class Seen:
    """What the listing destination was given, and what it answers next."""

    answer: Any = LISTED
    calls: ClassVar[list[tuple[requests.Session, dict[str, Any]]]] = []


@pytest.fixture
def registry(platform: MemoryPlatform) -> Iterator[Registry]:
    """The memory destination (cannot list audiences) and ``listing`` (can), as the CLI sees them."""
    memory = memory_destination(platform, batch_size=10, max_concurrency=3)

    class Listing(memory):  # type: ignore[misc, valid-type]
        name = "listing"
        title = "A destination that lists its audiences"

        def list_audiences(self, session: requests.Session, config: Mapping[str, Any]) -> list[Audience]:
            Seen.calls.append((session, dict(config)))
            return Seen.answer  # type: ignore[no-any-return]

    Seen.answer, Seen.calls = LISTED, []
    reg = Registry.from_plugins([memory, Listing])
    set_default_registry(reg)
    yield reg
    set_default_registry(None)


@pytest.fixture
def world(ws: Workspace) -> Workspace:
    """A private and a shared connection of the listing destination, and one of the memory destination."""
    ws.add_connection("private", "listing", {"api_key": KEY}, agree_privacy=True)
    ws.add_connection("shared", "listing", {"api_key": KEY}, share="contributors", agree_privacy=True)
    ws.add_connection("plain", "memory", {"api_key": KEY}, share="contributors", agree_privacy=True)
    return ws


def test_admins_list_any_connections_audiences(world: Workspace, home: Path) -> None:
    before = dump_database(home)
    assert world.list_audiences("private") == LISTED
    assert world.list_audiences("shared") == LISTED
    assert dump_database(home) == before, "listing is a read: nothing stored, nothing audited"


def test_the_plugin_gets_the_config_with_secrets_and_a_governed_session(world: Workspace) -> None:
    world.list_audiences("private")
    session, config = Seen.calls[0]
    assert config["api_key"] == KEY  # decrypted, as a run's writer gets it
    assert isinstance(session.get_adapter("https://platform.example/"), GovernedAdapter)
    assert isinstance(session.get_adapter("http://127.0.0.1/"), GovernedAdapter)
    assert session.auth is not None


def test_contributors_list_only_shared_connections_audiences(world: Workspace, act_as: Any, home: Path) -> None:
    carl = act_as("carl")
    assert carl.list_audiences("shared") == LISTED
    with pytest.raises(PermissionDenied, match=r"'carl' .*connections use 'private'"):
        carl.list_audiences("private")
    assert Seen.calls and all(config["api_key"] == KEY for _, config in Seen.calls)
    assert len(Seen.calls) == 1, "the private connection's plugin was never called"


def test_viewers_list_no_audiences(world: Workspace, act_as: Any) -> None:
    for name in ("shared", "private"):
        with pytest.raises(PermissionDenied, match="'vera' \\(viewer\\)"):
            act_as("vera").list_audiences(name)
    assert Seen.calls == []


def test_an_unknown_connection_is_not_found_for_admins_and_refused_for_contributors(
    world: Workspace, act_as: Any
) -> None:
    with pytest.raises(NotFound, match="did you mean 'shared'"):
        world.list_audiences("sharde")
    with pytest.raises(PermissionDenied):  # a contributor learns nothing of what exists
        act_as("carl").list_audiences("sharde")


def test_a_plugin_that_cannot_list_says_to_type_the_id(world: Workspace) -> None:
    with pytest.raises(ConfigError, match=r"^this platform's plugin \(memory\) cannot list audiences: type the id"):
        world.list_audiences("plain")


def test_duplicates_are_dropped_and_the_answer_is_cut_at_the_cap(world: Workspace) -> None:
    many = [Audience(f"a{i}", f"A{i}") for i in range(MAX_AUDIENCES + 5)]
    Seen.answer = [Audience("a0", "first"), *many]
    found = world.list_audiences("private")
    assert len(found) == MAX_AUDIENCES
    assert found[0] == Audience("a0", "first") and found[1] == Audience("a1", "A1")


@pytest.mark.parametrize("answer", [None, ("aud1",), [{"id": "aud1", "name": "x"}]])
def test_an_answer_that_is_not_a_list_of_audiences_is_the_plugins_fault(world: Workspace, answer: Any) -> None:
    Seen.answer = answer
    with pytest.raises(PluginContractError, match="listing plugin's list_audiences returned"):
        world.list_audiences("private")


def test_cli_prints_a_table_or_json(world: Workspace, run_cli: Any) -> None:
    human = run_cli("--as", "carl", "connections", "audiences", "shared")
    assert human.exit_code == 0, human.output
    assert human.stdout.splitlines() == [
        "ID    NAME        MEMBER_COUNT",
        "aud1  Newsletter  12",
        "aud2  Customers   -",
    ]
    as_json = run_cli("--as", "carl", "connections", "audiences", "shared", "--json")
    assert as_json.exit_code == 0 and as_json.stderr == ""
    assert json.loads(as_json.stdout) == [
        {"id": "aud1", "name": "Newsletter", "member_count": 12},
        {"id": "aud2", "name": "Customers", "member_count": None},
    ]


def test_cli_says_when_only_the_first_audiences_are_shown(world: Workspace, run_cli: Any) -> None:
    Seen.answer = [Audience(f"a{i}", f"A{i}") for i in range(MAX_AUDIENCES + 1)]
    result = run_cli("--as", "ada", "connections", "audiences", "private", "--json")
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)) == MAX_AUDIENCES
    assert result.stderr.strip() == (
        f"note: only the first {MAX_AUDIENCES} audiences the platform lists are shown; type the id of another"
    )


def test_cli_refusals_and_the_cannot_list_line(world: Workspace, run_cli: Any) -> None:
    refused = run_cli("--as", "carl", "connections", "audiences", "private")
    assert refused.exit_code == ExitStatus.PERMISSION_DENIED and refused.stdout == ""
    plain = run_cli("--as", "ada", "connections", "audiences", "plain")
    assert plain.exit_code == ExitStatus.CONFIG_ERROR
    assert plain.stderr.startswith("error: this platform's plugin (memory) cannot list audiences: type the id")
    assert len(plain.stderr.splitlines()) == 1
