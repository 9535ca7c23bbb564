"""Forms generated from a plugin's JSON Schema: fields to render, typed values back, errors by field.

A property becomes one field: ``string`` a text input, ``integer``/``number`` a number input,
``boolean`` a checkbox, an ``enum`` a select, and a ``writeOnly`` property (a secret, see
:func:`segport.config.secret_fields`) a password input that is never filled in: on an edit, a blank
one keeps the stored secret. Its label is the schema's ``title`` or the key, its hint the
``description``; required marks come from ``required`` and from ``if``/``then``/``else`` branches
keyed on one property's ``const`` (shown as "required when ...").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ConfigValidationError, SegportError

FORM_ERROR = "_form"  # errors that name no field of the form: shown above it
PREFIX = "cfg-"  # a generated input's name and id: the prefix and the property (no clash with the form's own)
_PATH = re.compile(r"^\$\.([A-Za-z0-9_\-]+)")
_REQUIRED = re.compile(r'^\$: "([^"]+)" is a required property')


@dataclass(frozen=True)
class Field:
    """One input of a generated form.

    :param kind: ``text``, ``password``, ``integer``, ``number``, ``checkbox`` or ``select``.
    :param value: what the input shows (always "" for a secret); for a checkbox, whether it is checked.
    """

    name: str
    label: str
    kind: str
    required: bool = False
    when: str | None = None  # "required when auth_method is oauth2"
    hint: str | None = None
    choices: tuple[str, ...] = ()
    value: Any = ""
    secret: bool = False
    stored: bool = False  # a secret with a stored value: blank keeps it
    error: str | None = None

    @property
    def help(self) -> str:
        """Return the line under the label: the description, when it is required, whether blank keeps it."""
        parts = [self.hint or "", f"{self.when[0].upper()}{self.when[1:]}" if self.when else ""]
        parts.append("Stored: leave blank to keep it" if self.stored else "")
        return " ".join(p if p.endswith((".", "!", "?")) else f"{p}." for p in parts if p)

    @property
    def input_id(self) -> str:
        """Return the id of the field's input (and, with ``-error``, of its error line)."""
        return f"{PREFIX}{self.name}"


@dataclass
class FormErrors:
    """Error lines by field name (:data:`FORM_ERROR`: the form's own)."""

    by_field: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        """Add one error line to a field."""
        self.by_field.setdefault(name, []).append(message)

    def get(self, name: str) -> str | None:
        """Return a field's error lines as one line (None: no error)."""
        lines = self.by_field.get(name)
        return "; ".join(lines) if lines else None

    def __bool__(self) -> bool:
        return bool(self.by_field)


def properties(schema: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Return the schema's top-level properties (name -> subschema), in the schema's order."""
    found = schema.get("properties", {})
    return {k: v for k, v in found.items() if isinstance(v, Mapping)} if isinstance(found, Mapping) else {}


def is_secret(prop: Mapping[str, Any]) -> bool:
    """Return whether a property holds a secret (``writeOnly: true``)."""
    return prop.get("writeOnly") is True


def _kind(prop: Mapping[str, Any]) -> str:
    if is_secret(prop):
        return "password"
    if isinstance(prop.get("enum"), list):
        return "select"
    kind = prop.get("type")
    if kind in ("integer", "number"):
        return str(kind)
    if kind == "boolean":
        return "checkbox"
    return "text"


def conditions(schema: Mapping[str, Any]) -> dict[str, list[str]]:
    """Return property -> the conditions under which ``if``/``then``/``else`` branches require it."""
    found: dict[str, list[str]] = {}
    branches = [schema, *[s for s in schema.get("allOf", []) if isinstance(s, Mapping)]]
    for branch in branches:
        test = branch.get("if")
        if not isinstance(test, Mapping):
            continue
        consts = [
            (key, sub["const"]) for key, sub in properties(test).items() if isinstance(sub, Mapping) and "const" in sub
        ]
        if len(consts) != 1:
            continue
        key, value = consts[0]
        for part, words in (("then", "is"), ("else", "is not")):
            sub = branch.get(part)
            if isinstance(sub, Mapping):
                for name in sub.get("required", []):
                    found.setdefault(str(name), []).append(f"{key} {words} {value}")
    return found


def fields_of(
    schema: Mapping[str, Any],
    values: Mapping[str, Any] | None = None,
    *,
    stored_secrets: frozenset[str] = frozenset(),
    errors: FormErrors | None = None,
    skip: frozenset[str] = frozenset(),
) -> list[Field]:
    """Return the fields of ``schema``'s properties, showing ``values`` (never a secret's).

    :param stored_secrets: secrets with a stored value (an edit): their inputs say blank keeps them.
    """
    values = values or {}
    required = set(schema.get("required", []))
    when = conditions(schema)
    result = []
    for name, prop in properties(schema).items():
        if name in skip:
            continue
        kind = _kind(prop)
        default = prop.get("default")
        raw = values.get(name, default)
        if kind == "password":
            shown: Any = ""
        elif kind == "checkbox":
            shown = raw is True or raw in ("on", "true")
        else:
            shown = "" if raw is None else str(raw)
        title = prop.get("title")
        description = prop.get("description")
        result.append(
            Field(
                name=name,
                label=str(title) if isinstance(title, str) and title else name,
                kind=kind,
                required=name in required,
                when=f"required when {' or '.join(when[name])}" if name in when else None,
                hint=str(description) if isinstance(description, str) else None,
                choices=tuple(str(c) for c in prop.get("enum", []) or []),
                value=shown,
                secret=kind == "password",
                stored=name in stored_secrets,
                error=errors.get(name) if errors else None,
            )
        )
    return result


def typed_values(
    schema: Mapping[str, Any],
    form: Mapping[str, str],
    *,
    editing: bool = False,
    skip: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], FormErrors]:
    """Return the form's values for ``schema``, typed (int, float, bool), and the fields that do not convert.

    A blank field, or one left at the schema's default, is left out (the default applies); on an
    edit it is None (the stored value goes, back to its default), except a blank secret, left out:
    the stored one is kept.
    """
    config: dict[str, Any] = {}
    errors = FormErrors()
    for name, prop in properties(schema).items():
        if name in skip:
            continue
        kind = _kind(prop)
        raw = form.get(PREFIX + name, "")
        text = raw if kind == "password" or not isinstance(raw, str) else raw.strip()
        if kind == "checkbox":
            value: Any = text in ("on", "true", "1")
        elif not isinstance(text, str) or text == "":
            if editing and kind != "password":
                config[name] = None  # blank: back to the default (a blank secret: the stored one is kept)
            continue
        else:
            try:
                value = _typed(kind, text)
            except ValueError as exc:
                errors.add(name, str(exc))
                continue
        if "default" in prop and _same(value, prop["default"]):
            if editing:
                config[name] = None
            continue
        config[name] = value
    return config, errors


def _typed(kind: str, text: str) -> Any:
    """Return ``text`` as the value of an input of ``kind``; raise ValueError with the line to show."""
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        return int(number) if number.is_integer() and not any(c in text for c in ".eE") else number
    return text


def _same(value: Any, default: Any) -> bool:
    """Return whether a typed form value is the schema's default (``True`` is not ``1``)."""
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default
    return bool(value == default)


def errors_of(exc: SegportError, fields: set[str], *, param_field: Mapping[str, str] | None = None) -> FormErrors:
    """Place a service error's lines next to their fields.

    A :class:`ConfigValidationError`'s lines by their JSON path (``$.api_key: ...``, ``$: "api_key" is
    a required property``); any other error by its ``param`` (renamed by ``param_field``); what names
    no field of the form goes to :data:`FORM_ERROR`.
    """
    errors = FormErrors()
    if isinstance(exc, ConfigValidationError):
        for line in exc.errors:
            errors.add(_field_of(line, fields), _strip_path(line))
        return errors
    name = (param_field or {}).get(exc.param or "", exc.param or "")
    errors.add(name if name in fields else FORM_ERROR, exc.message)
    return errors


def _field_of(line: str, fields: set[str]) -> str:
    for pattern in (_REQUIRED, _PATH):
        found = pattern.match(line)
        if found and found.group(1) in fields:
            return found.group(1)
    return FORM_ERROR


def _strip_path(line: str) -> str:
    """Return an error line without its leading JSON path when it names a property (the field says which)."""
    found = _PATH.match(line)
    if found and line[found.end() :].startswith(": "):
        return line[found.end() + 2 :]
    if _REQUIRED.match(line):
        return "required: " + line[3:]
    return line
