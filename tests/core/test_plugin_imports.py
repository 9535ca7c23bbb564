"""The built-in plugins and examples/webhook import only what docs/plugins.md lets a plugin import.

docs/plugins.md, "What a plugin imports", lists the segport modules a plugin's code may import, then
("Sandboxes ... may also import") those its sandbox modules may import too, then ("Tests may also
import") those its tests may import too. This test reads the three lists from the page and every
``import segport...`` / ``from segport... import`` of the plugin packages, their sandbox subpackages
and the example's tests, so the page and the code cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"
PACKAGES = [
    ROOT / "plugins" / "mailchimp",
    ROOT / "plugins" / "campaignmonitor",
    ROOT / "plugins" / "runlog",
    ROOT / "plugins" / "notify",
    ROOT / "examples" / "webhook" / "segport_webhook",
]
TESTS = [ROOT / "examples" / "webhook" / "tests"]


def documented() -> tuple[set[str], set[str], set[str]]:
    """(modules plugin code may import, those sandboxes may import as well, those tests may import as well)."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### What a plugin imports", 1)[1].split("\n### ", 1)[0]
    code, _, rest = section.partition("\nSandboxes (")
    sandboxes, _, tests = rest.partition("\nTests may also import")
    assert tests, "docs/plugins.md, 'What a plugin imports', lost its 'Sandboxes' or 'Tests' part"

    def modules(part: str) -> set[str]:  # the code spans naming modules, before each bullet's " — "
        heads = re.findall(r"^- (.*?) — ", part, re.M | re.S)
        return {name for head in heads for name in re.findall(r"`(segport[\w.]*)`", head)}

    return modules(code), modules(sandboxes), modules(tests)


def segport_imports(path: Path) -> list[tuple[int, str]]:
    """Every segport module ``path`` imports (``from segport import X`` is ``segport``), by line."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "segport"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "segport":
            found.append((node.lineno, str(node.module)))
    return found


def plugin_modules() -> list[Path]:
    return [path for package in PACKAGES for path in sorted(package.glob("*.py")) if path.stem != "sandbox"]


def sandbox_modules() -> list[Path]:
    """The sandboxes: a package's ``sandbox/`` subpackage or ``sandbox.py`` module."""
    return [path for package in PACKAGES for path in sorted(package.glob("sandbox*.py"))] + [
        path for package in PACKAGES for path in sorted(package.glob("sandbox/*.py"))
    ]


def test_the_page_lists_what_plugins_their_sandboxes_and_their_tests_import() -> None:
    code, sandboxes, tests = documented()
    assert code == {"segport", "segport.http"}, code
    assert sandboxes == {"segport.sandboxing"}, sandboxes
    assert {"segport.testing", "segport.testing.sandbox"} <= tests and not tests & (code | sandboxes), tests


@pytest.mark.parametrize("path", plugin_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugin_code_imports_only_documented_modules(path: Path) -> None:
    allowed, _, _ = documented()
    wrong = [f"line {line}: {module}" for line, module in segport_imports(path) if module not in allowed]
    assert not wrong, f"{path.relative_to(ROOT)} imports what docs/plugins.md does not let a plugin import: {wrong}"


@pytest.mark.parametrize("path", sandbox_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_sandboxes_import_only_documented_modules(path: Path) -> None:
    code, sandboxes, _ = documented()
    wrong = [f"line {line}: {module}" for line, module in segport_imports(path) if module not in code | sandboxes]
    assert not wrong, f"{path.relative_to(ROOT)} imports what docs/plugins.md does not let a sandbox import: {wrong}"


@pytest.mark.parametrize(
    "path", [p for folder in TESTS for p in sorted(folder.glob("*.py"))], ids=lambda p: str(p.relative_to(ROOT))
)
def test_plugin_tests_import_only_documented_modules(path: Path) -> None:
    code, sandboxes, tests = documented()
    allowed = code | sandboxes | tests
    wrong = [f"line {line}: {module}" for line, module in segport_imports(path) if module not in allowed]
    assert not wrong, f"{path.relative_to(ROOT)} imports what docs/plugins.md does not let plugin tests import: {wrong}"


def test_every_plugin_package_is_scanned() -> None:
    assert all(package.is_dir() for package in PACKAGES)
    assert len(plugin_modules()) >= 20 and len(sandbox_modules()) >= 6


@pytest.mark.parametrize("module", ["segport_mailchimp", "segport_campaignmonitor", "segport_mailchimp.sandbox"])
def test_importing_a_plugin_does_not_load_the_store(module: str) -> None:
    """``from segport import Destination`` costs the contract, not SQLAlchemy and the workspace."""
    import subprocess
    import sys

    probe = f"import sys, {module}; print(sorted(m for m in ('sqlalchemy', 'segport.workspace') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
