"""The docs stay true: README's quick start is what CI runs; every hook is documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from segport import hookspecs

ROOT = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line for block in re.findall(r"```sh\n(.*?)```", section, re.S)
            for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_opens_with_two_quick_start_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    assert commands[0].endswith("segport demo")
    assert "pytest" in commands[1]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert quick_start_commands()[1] in ci


def test_every_hookspec_is_documented_with_its_parameters() -> None:
    docs = "".join((ROOT / name).read_text(encoding="utf-8") for name in ("README.md", "docs/architecture.md"))
    specs = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("segport_")]
    assert len(specs) == 7  # segport_actor_from_request: who makes a request to segport serve
    for spec in specs:
        assert spec.__name__ in docs, f"{spec.__name__} is not mentioned in README.md or docs/architecture.md"
        doc = inspect.getdoc(spec) or ""
        for param in inspect.signature(spec).parameters:
            assert f":param {param}:" in doc, f"{spec.__name__} does not document {param}"
