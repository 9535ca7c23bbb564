"""docs/plugins.md stays true to the code: its minimal plugin passes the kit, its reference matches the API.

**The minimal plugin.** In the section "## A minimal plugin in one page", every fenced code block that
follows a line holding only a bold code span with a relative path (``**`segport_tinylist/writer.py`**``)
is that file of the plugin's project. The test writes them into pytester's temporary folder and
"installs" the project without pip: it writes ``site/<name>-<version>.dist-info/`` with ``METADATA``
and ``entry_points.txt`` made from the ``pyproject.toml`` block's ``[project]`` table, then runs the
project's tests in a pytest subprocess with ``PYTHONPATH=site:<project>``. So ``importlib.metadata``
and stevedore find the ``segport.destinations`` entry point exactly as after ``pip install`` (the
kit's own ``destination`` fixture is not overridden), and every kit check must pass: none may fail,
error or be skipped. The folder is pytest's temporary folder and the environment is restored after.

**The reference.** The test computes, from the code, one line per public item and asserts each
appears verbatim in docs/plugins.md as a Markdown code span (between backticks). A failure prints
the missing lines ready to paste; add a one-line description after each. The formats:

- a class: ``class Name(Base, ...)`` with its direct bases, builtins and segport's own by bare name,
  others as ``module.Qualname`` (``abc.ABC``, ``requests.auth.AuthBase``); ``class Name`` without bases;
- a constructor: ``Name(params)``, ``inspect.signature(cls)`` without its return annotation, for
  classes that define ``__init__`` or ``__new__`` (dataclasses and named tuples too, not enums);
- a method or function: ``Name.method(self, params) -> ret`` or ``func(params) -> ret``, the
  ``inspect.signature`` of the attribute as reached from its class (class methods show no ``cls``;
  pytest fixtures show the decorated function);
- a class attribute or property: ``Name.attr: annotation`` (class-level annotations of classes that
  are not dataclasses, named tuples, enums or exceptions; a property's getter return annotation);
- a value: ``Enum.MEMBER = repr(value)``, ``SomeError.exit_status = 8``, ``CONSTANT = repr(value)``
  (a tuple of classes as ``(module.Class, ...)``, a pluggy marker as
  ``pluggy.HookimplMarker('segport')``); ``NAME`` alone when the value has no stable repr;
- a conformance check: ``test_name``.

Annotations read as written in the source (``from __future__ import annotations`` keeps them
strings, shown without quotes); defaults are ``repr``s with any `` at 0x...`` address dropped.
Covered: ``segport.__all__`` minus :data:`NOT_IN_REFERENCE`, every hookspec of
``segport.hookspecs``, the public names of ``segport.http``, ``segport.testing.__all__``,
``segport.sandboxing.__all__`` and the fakes, operator and pytest-plugin names in
:data:`MODULES`. Public members are those a class defines itself (not inherited), not starting with
``_`` (``__call__`` included). Every entry line of the Reference section (a line starting with
``- `` or ``#### `` followed by a code span) and every hook line (``- `segport_``) must also be one
of the expected lines, so a stale signature fails too.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import json
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any, Iterator

import pluggy
import pytest

import segport
from segport import hookspecs, http, sandboxing, testing
from segport.testing import DestinationConformance, fakes, operator, pytest_plugin
from segport.testing.metadata import install_metadata

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before 3.11
    import tomli as tomllib

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"
MINIMAL = "A minimal plugin in one page"
FILE_BLOCK = re.compile(r"^\*\*`([^`\n]+)`\*\*\n+```[\w-]*\n(.*?)^```[ \t]*$", re.M | re.S)
ANY_BLOCK = re.compile(r"^```([\w-]*)\n(.*?)^```[ \t]*$", re.M | re.S)

NOT_IN_REFERENCE = {  # names of segport.__all__ a plugin author does not need, and why
    "Segment": "a stored segment: no plugin method or hook receives one",
    "Workspace": "the embedding API, documented in README.md ('Embedding segport')",
    "Registry": "the engine's loader, driven by the kit and the CLI (the kit section names Registry.from_plugins)",
    "__version__": "a version string; 'Publishing' says how to pin segport",
}


def _hookspec_names() -> list[str]:
    return sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "segport_spec"))


def _own_public_names(module: Any) -> list[str]:
    """Functions and classes defined in ``module`` itself, and its UPPER_CASE constants."""
    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and (getattr(value, "__module__", None) == module.__name__ or name.isupper())
    ]


MODULES: list[tuple[Any, list[str]]] = [
    (segport, [n for n in segport.__all__ if n not in NOT_IN_REFERENCE]),
    (hookspecs, _hookspec_names()),
    (http, _own_public_names(http)),
    (testing, list(testing.__all__)),
    (sandboxing, list(sandboxing.__all__)),
    (fakes, ["memory_destination", "MemoryPlatform"]),  # the rest of fakes is the fake's own machinery
    (operator, ["Operator"]),
    (pytest_plugin, ["strict_responses", "ORDERED"]),
]


# -- the expected reference lines -------------------------------------------------------------------------


class _Source(str):
    """An annotation string that ``inspect`` prints without quotes."""

    def __repr__(self) -> str:
        return str(self)


def _annotation(annotation: Any) -> Any:
    if isinstance(annotation, typing.ForwardRef):
        return _Source(annotation.__forward_arg__)
    if isinstance(annotation, str):
        return _Source(annotation)
    return annotation


def signature(obj: Any, *, constructor: bool = False) -> str:
    """``inspect.signature(obj)`` as the doc shows it: source annotations unquoted, no memory addresses."""
    sig = inspect.signature(obj)
    params = [p.replace(annotation=_annotation(p.annotation)) for p in sig.parameters.values()]
    returns = inspect.Signature.empty if constructor else _annotation(sig.return_annotation)
    return re.sub(r" at 0x[0-9a-fA-F]+>", ">", str(sig.replace(parameters=params, return_annotation=returns)))


def _base(base: Any) -> str:
    base = typing.get_origin(base) or base
    module = getattr(base, "__module__", "")
    name = getattr(base, "__qualname__", getattr(base, "__name__", repr(base)))
    return name if module == "builtins" or module.startswith("segport") else f"{module}.{name}"


def _value(value: Any) -> str | None:
    if isinstance(value, pluggy.HookimplMarker):
        return f"pluggy.HookimplMarker({value.project_name!r})"
    if isinstance(value, tuple) and value and all(isinstance(v, type) for v in value):
        return "(" + ", ".join(f"{v.__module__}.{v.__qualname__}" for v in value) + ")"
    if isinstance(value, (str, int, float, tuple)) or typing.get_origin(value) is not None:
        return repr(value)
    return None


def _is_function(value: Any) -> bool:
    fixture = hasattr(value, "_get_wrapped_function") or hasattr(value, "_pytestfixturefunction")
    return inspect.isfunction(value) or fixture


def class_lines(cls: type) -> Iterator[str]:
    name = cls.__name__
    bases = [b for b in getattr(cls, "__orig_bases__", cls.__bases__) if b is not object]
    yield f"class {name}" + (f"({', '.join(map(_base, bases))})" if bases else "")
    own = vars(cls)
    is_enum = issubclass(cls, enum.Enum)
    if not is_enum and ("__init__" in own or "__new__" in own):
        yield name + signature(cls, constructor=True)
    if issubclass(cls, segport.SegportError):
        yield f"{name}.exit_status = {int(cls.exit_status)}"
    if is_enum:
        yield from (f"{name}.{member.name} = {member.value!r}" for member in cls)
    record_like = dataclasses.is_dataclass(cls) or issubclass(cls, (tuple, BaseException)) or is_enum
    if not record_like:
        for attr, annotation in inspect.get_annotations(cls).items():
            if not attr.startswith("_"):
                yield f"{name}.{attr}: {annotation}"
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for attr, value in own.items():
        if (attr.startswith("_") and attr != "__call__") or attr in fields or isinstance(value, type):
            continue
        if attr.startswith("test_"):
            yield attr
        elif isinstance(value, property):
            yield f"{name}.{attr}: {_annotation(inspect.signature(value.fget).return_annotation)}"
        elif isinstance(value, (classmethod, staticmethod)) or _is_function(value):
            yield f"{name}.{attr}" + signature(getattr(cls, attr))


def expected_lines() -> list[str]:
    """Every reference line the doc must hold, in module order."""
    lines: list[str] = []
    for module, names in MODULES:
        for name in names:
            obj = getattr(module, name)
            if isinstance(obj, type):
                lines.extend(class_lines(obj))
            elif _is_function(obj):
                lines.append(name + signature(obj))
            else:
                shown = _value(obj)
                lines.append(name if shown is None else f"{name} = {shown}")
    return list(dict.fromkeys(lines))


# -- the doc ----------------------------------------------------------------------------------------------


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The body of the ``## title`` section of docs/plugins.md (up to the next ``## ``)."""
    text = doc_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def minimal_plugin_files() -> dict[str, str]:
    return dict(FILE_BLOCK.findall(section(MINIMAL)))


def kit_checks() -> int:
    """How many tests a ``DestinationConformance`` subclass collects (parametrized checks expanded)."""
    total = 0
    for name in dir(DestinationConformance):
        if name.startswith("test_"):
            cases = 1
            for mark in getattr(getattr(DestinationConformance, name), "pytestmark", []):
                if mark.name == "parametrize":
                    cases *= len(mark.args[1])
            total += cases
    return total


# -- tests ------------------------------------------------------------------------------------------------


def test_minimal_plugin_passes_every_kit_check(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    files = minimal_plugin_files()
    for needed in ("pyproject.toml", "tests/test_conformance.py"):
        assert needed in files, f"docs/plugins.md ({MINIMAL}) has no block marked **`{needed}`**"
    for path, text in files.items():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    project = tomllib.loads(files["pyproject.toml"])["project"]
    assert "segport.destinations" in project.get("entry-points", {}), "pyproject.toml declares no destination"
    site = pytester.path / "site"
    install_metadata(site, project)
    paths = [str(site), str(pytester.path), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.delenv("SEGPORT_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "tests", timeout=600)

    expected = kit_checks()
    assert expected >= 20, f"the kit has only {expected} checks: did DestinationConformance lose its tests?"
    result.assert_outcomes(passed=expected)
    assert result.ret == 0


def test_the_doc_states_the_number_of_kit_checks() -> None:
    stated, actual = re.findall(r"\((\d+) checks\)", section(MINIMAL)), kit_checks()
    assert stated == [str(actual)], f"'{MINIMAL}' says {stated} checks; the kit has {actual}: write ({actual} checks)"


def test_the_reference_holds_every_public_signature() -> None:
    text = doc_text()
    missing = [line for line in expected_lines() if f"`{line}`" not in text]
    assert not missing, (
        f"docs/plugins.md lacks {len(missing)} reference line(s) (or has an outdated one). Paste each line below "
        "where it belongs (Reference, or The hooks for segport_* hooks), replace the old one, and finish it "
        "with ' — <what it does>':\n" + "\n".join(f"- `{line}` — " for line in missing)
    )


def test_every_reference_entry_is_current() -> None:
    expected = set(expected_lines())
    entries = re.findall(r"^\s*(?:-|####) `([^`]+)`", section("Reference"), re.M)
    entries += re.findall(r"^- `(segport_[^`]+)`", section("The hooks"), re.M)
    stale = [entry for entry in entries if entry not in expected]
    assert not stale, (
        "docs/plugins.md has entries that match no public signature (renamed, changed or removed); fix or "
        "delete them:\n" + "\n".join(f"`{entry}`" for entry in stale)
    )


def test_every_hookspec_and_public_name_is_covered() -> None:
    """A new public name lands in the expected lines (or is excluded here on purpose, with a reason)."""
    stale_exclusions = sorted(set(NOT_IN_REFERENCE) - set(segport.__all__))
    assert not stale_exclusions, f"NOT_IN_REFERENCE names {stale_exclusions}, which segport.__all__ no longer has"
    hooks = _hookspec_names()
    assert len(hooks) >= 5 and all(h.startswith("segport_") for h in hooks)
    text = section("The hooks")
    for hook in hooks:
        assert f"- `{hook}{signature(getattr(hookspecs, hook))}`" in text, f"'The hooks' does not list {hook}"
    for name in testing.__all__:
        assert f"`{name}" in doc_text(), f"segport.testing.{name} is not in docs/plugins.md"


def test_every_code_block_parses() -> None:
    for language, body in ANY_BLOCK.findall(doc_text()):
        if language == "python":
            compile(body, "docs/plugins.md", "exec")
        elif language == "toml":
            tomllib.loads(body)
        elif language == "json":
            json.loads(body)


def test_readme_links_the_plugin_guide() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/plugins.md)" in readme, "README.md does not link docs/plugins.md"
