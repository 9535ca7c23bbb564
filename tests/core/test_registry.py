"""Destination plugin discovery: contract checks, SEGPORT_LOAD_PLUGINS, broken entry points."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from typing import Any, ClassVar, Mapping

import pytest
from stevedore import ExtensionManager

from segport import (
    Destination,
    DestinationSpec,
    ExitStatus,
    FieldSpec,
    Limits,
    PluginContractError,
    PluginLoadError,
    Registry,
)
from segport.registry import DESTINATIONS_GROUP, default_registry, set_default_registry
from segport.testing.fakes import CONNECTION_SCHEMA, EXPORT_SCHEMA, MemoryPlatform, memory_destination

Memory = memory_destination(MemoryPlatform())


class Half(Destination):
    """Implements spec() only: auth() and writer() are missing."""

    name = "half"
    title = "Half a destination"

    def spec(self) -> DestinationSpec:
        return DestinationSpec(CONNECTION_SCHEMA, EXPORT_SCHEMA, FieldSpec(), Limits(10, 1))


def _with_spec(name: str, connection_schema: Mapping[str, Any], limits: Limits | None = None) -> type[Destination]:
    base = memory_destination()

    class Custom(base):  # type: ignore[misc,valid-type]
        def spec(self) -> DestinationSpec:
            return DestinationSpec(connection_schema, EXPORT_SCHEMA, FieldSpec(), limits or Limits(10, 1))

    Custom.name = name
    Custom.title = name.title()
    return Custom


BadSchema = _with_spec("badschema", {"type": "object", "properties": {"api_key": {"type": "strin"}}})


class Crashing(Memory):  # type: ignore[misc,valid-type]
    name = "crashing"

    def spec(self) -> DestinationSpec:
        raise RuntimeError("boom in spec")


# -- from_plugins and the contract ----------------------------------------------------------------
def test_good_plugin() -> None:
    registry = Registry.from_plugins([Memory])
    destination = registry.get("memory")
    assert isinstance(destination, Memory)
    assert registry.get("memory") is destination  # cached
    [info] = registry.infos()
    assert (info.name, info.status, info.title, info.reason) == ("memory", "ok", "In-memory test destination", None)
    assert info.to_dict()["status"] == "ok"


def test_missing_abstract_methods_are_listed() -> None:
    registry = Registry.from_plugins([Half])
    with pytest.raises(PluginContractError, match="'half' does not implement: auth, writer") as info:
        registry.get("half")
    assert info.value.exit_status is ExitStatus.PLUGIN_ERROR
    [row] = registry.infos()
    assert row.status == "broken" and "auth, writer" in (row.reason or "")


def test_invalid_json_schema_names_the_plugin() -> None:
    registry = Registry.from_plugins([BadSchema])
    with pytest.raises(PluginContractError) as info:
        registry.get("badschema")
    message = str(info.value)
    assert "destination plugin 'badschema'" in message and "connection schema" in message
    assert "invalid JSON Schema" in message and "\n" not in message


def test_schema_breaking_the_spec_contract() -> None:
    registry = Registry.from_plugins([_with_spec("arrayish", {"type": "array"})])
    with pytest.raises(PluginContractError, match="'arrayish': the connection schema breaks the spec contract"):
        registry.get("arrayish")


def test_bad_limits() -> None:
    registry = Registry.from_plugins([_with_spec("nolimit", CONNECTION_SCHEMA, Limits(0, 1))])
    with pytest.raises(PluginContractError, match=r"'nolimit'.*batch_size"):
        registry.get("nolimit")


def test_not_a_destination_class() -> None:
    class Plain:
        name = "plain"
        title = "Plain"

    with pytest.raises(PluginContractError, match=r"'plain'.*not a segport\.Destination subclass"):
        Registry.from_plugins([Plain]).get("plain")  # type: ignore[list-item]


def test_plugin_crashing_while_starting() -> None:
    registry = Registry.from_plugins([Crashing, Memory])
    with pytest.raises(PluginContractError, match="'crashing' failed while starting: RuntimeError: boom in spec"):
        registry.get("crashing")
    statuses = {i.name: i.status for i in registry.infos()}
    assert statuses == {"crashing": "broken", "memory": "ok"}


class CrashingLoudly(Memory):  # type: ignore[misc,valid-type]
    name = "loud"

    def spec(self) -> DestinationSpec:
        raise RuntimeError("boom in spec\n  File \"plugin.py\", line 3")


def test_plugin_crash_message_is_one_line(run_cli: Any, registry: Registry) -> None:
    set_default_registry(Registry.from_plugins([CrashingLoudly]))
    result = run_cli("plugins", "show", "loud")
    assert result.exit_code == ExitStatus.PLUGIN_ERROR
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_unknown_name_lists_available() -> None:
    registry = Registry.from_plugins([Memory, Half])
    with pytest.raises(PluginLoadError, match=r"unknown destination type 'nosuch' \(available: half, memory\)"):
        registry.get("nosuch")


def test_unknown_name_with_nothing_installed() -> None:
    with pytest.raises(PluginLoadError, match="none installed"):
        Registry.from_plugins([]).get("memory")


# -- SEGPORT_LOAD_PLUGINS -------------------------------------------------------------------------
def test_load_plugins_env_narrows(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry.from_plugins([Memory, Half])
    monkeypatch.setenv("SEGPORT_LOAD_PLUGINS", " memory , ")
    assert [i.name for i in registry.infos()] == ["memory"]
    assert registry.get("memory").name == "memory"
    with pytest.raises(PluginLoadError, match="'half' is not loaded because SEGPORT_LOAD_PLUGINS is set"):
        registry.get("half")
    with pytest.raises(PluginLoadError, match=r"unknown destination type 'nosuch' \(available: memory\)"):
        registry.get("nosuch")
    monkeypatch.setenv("SEGPORT_LOAD_PLUGINS", "")
    assert registry.infos() == []
    monkeypatch.delenv("SEGPORT_LOAD_PLUGINS")
    assert [i.name for i in registry.infos()] == ["half", "memory"]


# -- broken entry points --------------------------------------------------------------------------
class FakeManager:
    """What Registry needs of an ExtensionManager: ``extensions``."""

    def __init__(self, extensions: list[Any]) -> None:
        self.extensions = extensions


def _broken_registry() -> Registry:
    good = Registry.from_plugins([Memory]).manager.extensions
    registry = Registry(FakeManager(good))  # type: ignore[arg-type]
    entry_point = EntryPoint("acme", "segport_acme.destination:Acme", DESTINATIONS_GROUP)
    registry._on_failure(registry.manager, entry_point,
                         ModuleNotFoundError("No module named 'segport_acme'\nsecond line of detail"))
    return registry


def test_on_failure_shows_broken_plugin_with_reason() -> None:
    infos = {i.name: i for i in _broken_registry().infos()}
    assert infos["memory"].status == "ok"
    broken = infos["acme"]
    assert broken.status == "broken" and broken.target == "segport_acme.destination:Acme"
    assert broken.reason == "ModuleNotFoundError: No module named 'segport_acme'"


def test_get_broken_plugin_raises_with_reason() -> None:
    with pytest.raises(PluginLoadError) as info:
        _broken_registry().get("acme")
    message = str(info.value)
    assert "destination plugin 'acme' (segport_acme.destination:Acme) failed to load" in message
    assert "ModuleNotFoundError: No module named 'segport_acme'" in message and "\n" not in message


def test_broken_plugin_hidden_by_load_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGPORT_LOAD_PLUGINS", "memory")
    assert [i.name for i in _broken_registry().infos()] == ["memory"]


class RecordingEntryPoint:
    """An entry point stevedore can load; records that it was loaded."""

    loaded: ClassVar[list[str]] = []

    def __init__(self, name: str, value: str, plugin: Any = None, error: Exception | None = None) -> None:
        self.name, self.value, self.group = name, value, DESTINATIONS_GROUP
        self._plugin, self._error = plugin, error

    def load(self) -> Any:
        RecordingEntryPoint.loaded.append(self.name)
        if self._error is not None:
            raise self._error
        return self._plugin


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch) -> list[RecordingEntryPoint]:
    """What real stevedore discovers for any namespace (instead of the installed distributions)."""
    points = [
        RecordingEntryPoint("memory", "tests:Memory", Memory),
        RecordingEntryPoint("acme", "segport_acme:Acme", error=ImportError("cannot import name 'Acme'")),
    ]
    RecordingEntryPoint.loaded = []
    monkeypatch.setattr(ExtensionManager, "list_entry_points", lambda self: points)
    return points


def test_real_stevedore_load_failure(entry_points: list[RecordingEntryPoint]) -> None:
    registry = Registry()
    infos = {i.name: (i.status, i.reason) for i in registry.infos()}
    assert infos == {"memory": ("ok", None), "acme": ("broken", "ImportError: cannot import name 'Acme'")}
    with pytest.raises(PluginLoadError, match="'acme' \\(segport_acme:Acme\\) failed to load: ImportError"):
        registry.get("acme")


def test_load_plugins_env_narrows_what_is_imported(entry_points: list[RecordingEntryPoint],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGPORT_LOAD_PLUGINS", "memory")
    Registry().get("memory")
    assert RecordingEntryPoint.loaded == ["memory"]


# -- the CLI --------------------------------------------------------------------------------------
def test_cli_plugins_list_and_show(run_cli: Any) -> None:
    listed = run_cli("plugins", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["status"]) for r in rows] == [("memory", "ok")]
    shown = run_cli("plugins", "show", "memory", "--json")
    assert shown.exit_code == 0, shown.output
    spec = json.loads(shown.stdout)
    assert spec["name"] == "memory" and spec["title"] == "In-memory test destination"
    assert spec["auth_methods"] == ["api_key"]
    assert spec["limits"] == {"batch_size": 10, "max_concurrency": 3, "profile_cap": 1_000_000}
    assert spec["connection_schema"]["required"] == ["api_key"]


def test_cli_plugins_list_shows_broken(run_cli: Any, registry: Registry) -> None:
    broken = _broken_registry()
    set_default_registry(broken)
    assert default_registry() is broken
    rows = {r["name"]: r for r in json.loads(run_cli("plugins", "list", "--json").stdout)}
    assert rows["acme"]["status"] == "broken" and rows["acme"]["reason"].startswith("ModuleNotFoundError")
    human = run_cli("plugins", "list")
    assert human.exit_code == 0 and "broken" in human.stdout
    result = run_cli("plugins", "show", "acme")
    assert result.exit_code == ExitStatus.PLUGIN_ERROR
    assert result.stderr.startswith("error: destination plugin 'acme'") and len(result.stderr.splitlines()) == 1
