"""The run pipeline stays typed: no ``Any`` in segport.pipeline, and plan steps built by keyword only."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import segport.pipeline
from segport.pipeline import planner

PIPELINE = Path(segport.pipeline.__file__).parent


@pytest.mark.parametrize("module", sorted(p.name for p in PIPELINE.glob("*.py")))
def test_no_any_on_the_run_path(module: str) -> None:
    tree = ast.parse((PIPELINE / module).read_text(encoding="utf-8"))
    found = [
        node.lineno
        for node in ast.walk(tree)
        if (isinstance(node, ast.Name) and node.id == "Any") or (isinstance(node, ast.Attribute) and node.attr == "Any")
    ]
    assert found == [], f"{module} uses Any at lines {found}"


@pytest.mark.parametrize("step", [planner.Send, planner.Reject, planner.Remember, planner.Unchanged])
def test_plan_steps_are_frozen_and_keyword_only(step: type) -> None:
    params = step.__dataclass_params__  # type: ignore[attr-defined]
    assert params.frozen
    assert all(f.kw_only for f in dataclasses.fields(step))
    with pytest.raises(TypeError):
        step("positional")
