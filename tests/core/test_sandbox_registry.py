"""Sandboxes stand outside the destination contract: registered under ``segport.sandboxes``, found by name,
never imported by a destination, by the engine or (through segport.testing) by the CLI."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path
from typing import Iterator

import pytest
import requests

import segport
from segport import ExitStatus, PluginContractError, PluginError, PluginLoadError, contract
from segport.sandboxing import (
    SANDBOXES_GROUP,
    PlatformDouble,
    Sandbox,
    SandboxServer,
    find_sandbox,
    open_sandbox,
    sandbox_names,
)
from segport.testing.double import NoDoubleError, registered_double
from segport.testing.metadata import install_metadata
from segport.testing.operator import Operator
from segport_campaignmonitor import CampaignMonitorDestination
from segport_campaignmonitor.sandbox import CampaignMonitorSandbox
from segport_mailchimp import MailchimpDestination
from segport_mailchimp.sandbox import MailchimpSandbox

CLI = Path(segport.__file__).parent / "cli"
BUILT_INS = {"mailchimp": MailchimpSandbox, "campaignmonitor": CampaignMonitorSandbox}
THIRD_PARTY = """
from segport.testing.fakes import memory_destination

MemoryDestination = memory_destination()  # a destination that ships no sandbox


def not_a_sandbox(*, latency_ms=0, fail_rate=0.0, seed=None):
    return object()
"""


def run_python(code: str, env: dict[str, str] | None = None) -> str:
    """Run ``code`` in a fresh interpreter; fail with its output unless it exits 0; return stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An installed third-party distribution (no pip): a destination without a sandbox (``memory``) and
    three ``segport.sandboxes`` entries that cannot make one. Yields the folder to put on PYTHONPATH."""
    (tmp_path / "thirdparty.py").write_text(THIRD_PARTY, encoding="utf-8")
    sandboxes = {"broken": "no_such_module:Sandbox", "notclass": "segport.contract:Limits"}
    sandboxes["notsandbox"] = "thirdparty:not_a_sandbox"
    groups = {"segport.destinations": {"memory": "thirdparty:MemoryDestination"}, SANDBOXES_GROUP: sandboxes}
    install_metadata(tmp_path / "site", {"name": "thirdparty", "version": "1.0", "entry-points": groups})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    yield tmp_path
    sys.modules.pop("thirdparty", None)


def test_destination_has_no_sandbox() -> None:
    for cls in (contract.Destination, MailchimpDestination, CampaignMonitorDestination):
        assert not hasattr(cls, "sandbox"), f"{cls.__name__} still has a sandbox attribute"
    assert not hasattr(contract, "Sandbox") and "Sandbox" not in segport.__all__
    assert not hasattr(segport, "Sandbox")


def test_segport_sandboxes_lists_both_built_ins() -> None:
    registered = {entry.name: entry.value for entry in entry_points(group=SANDBOXES_GROUP)}
    assert registered["mailchimp"] == "segport_mailchimp.sandbox:MailchimpSandbox"
    assert registered["campaignmonitor"] == "segport_campaignmonitor.sandbox:CampaignMonitorSandbox"
    assert {"mailchimp", "campaignmonitor"} <= set(sandbox_names())
    for name, cls in BUILT_INS.items():
        assert find_sandbox(name) is cls
        sandbox = open_sandbox(name, latency_ms=5, fail_rate=0.25, seed=3)
        assert type(sandbox) is cls and isinstance(sandbox, (Sandbox, PlatformDouble, SandboxServer))
        assert (sandbox.latency_ms, sandbox.fail_rate, sandbox.seed) == (5, 0.25, 3)


def test_the_kit_drives_the_registered_sandbox() -> None:
    with registered_double("campaignmonitor") as double:
        assert isinstance(double, CampaignMonitorSandbox)
        assert double.connection()["api_base_url"].startswith("http://127.0.0.1:")
        assert requests.get(f"{double.base_url}/_sandbox/state", timeout=10).ok
    with pytest.raises(requests.ConnectionError):  # stopped when the block ended
        requests.get(f"{double.base_url}/_sandbox/state", timeout=10)


def test_no_sandbox_is_none_or_one_line(third_party: Path) -> None:
    assert find_sandbox("memory") is None
    with pytest.raises(PluginError) as missing:
        open_sandbox("memory")
    assert str(missing.value) == "destination 'memory' ships no sandbox"
    with pytest.raises(NoDoubleError, match=r"^destination 'memory' ships no sandbox: register one under the "):
        with registered_double("memory"):
            pass
    with pytest.raises(PluginLoadError, match=r"^sandbox 'broken' \(no_such_module:Sandbox\) failed to load: "):
        find_sandbox("broken")
    with pytest.raises(PluginContractError, match=r"is not a concrete segport\.sandboxing\.Sandbox subclass"):
        find_sandbox("notclass")
    with pytest.raises(PluginContractError, match=r"its factory returned object, not a segport\.sandboxing\.Sandbox"):
        open_sandbox("notsandbox")


def test_demo_and_sandbox_of_a_destination_without_one(third_party: Path, tmp_path: Path) -> None:
    op = Operator(tmp_path / "ws", user=None)
    op.env["PYTHONPATH"] = f"{third_party / 'site'}:{third_party}"
    for command, message in (
        (("demo", "memory"), "error: destination 'memory' ships no sandbox: choose another destination"),
        (("sandbox", "memory"), "error: destination 'memory' ships no sandbox"),
        (("sandbox", "broken"), "error: unknown destination type 'broken'"),
    ):
        result = op(*command, check=False)
        assert result.returncode == ExitStatus.PLUGIN_ERROR, result.stderr
        assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_cli_never_imports_segport_testing(tmp_path: Path) -> None:
    imports = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                names = [module] + [f"{module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            if any(n.startswith(("segport.testing", "..testing")) for n in names):
                imports.append(f"{path.name}:{node.lineno}")
    assert not imports, f"the CLI imports segport.testing at {imports}"
    demo = ["demo", "mailchimp", "--profiles", "100", "--dir", str(tmp_path / "demo")]
    loaded = run_python(
        f"""
        import sys
        import segport.cli
        after_import = "segport.testing" in sys.modules
        try:
            segport.cli.cli.main({demo!r}, prog_name="segport", standalone_mode=False)
        finally:
            print(after_import, "segport.testing" in sys.modules, "segport.sandboxing" in sys.modules)
    """,
        env=Operator(tmp_path).env,
    )
    assert loaded.splitlines()[-1] == "False False True", loaded


def test_destinations_and_the_engine_never_import_a_sandbox() -> None:
    loaded = run_python("""
        import json, sys
        import segport, segport.cli, segport.registry
        import segport_campaignmonitor, segport_mailchimp
        from segport_campaignmonitor import api, auth, destination, writer
        from segport_mailchimp import api, auth, batches, destination, writer
        for name in ("mailchimp", "campaignmonitor"):
            segport.registry.default_registry().get(name).spec()
        fakes = ("segport.sandboxing", "segport.testing", "segport_mailchimp.sandbox")
        fakes += ("segport_campaignmonitor.sandbox",)
        print(json.dumps(sorted(m for m in sys.modules if m.startswith(fakes))))
    """)
    assert json.loads(loaded) == []
