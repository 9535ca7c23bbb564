"""JSON-Schema validation of configs and options: every problem at once, by path, no secrets."""

from __future__ import annotations

import copy
import json
import math
from typing import Any, Iterator, Mapping

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import SchemaError

from .errors import ConfigError, ConfigValidationError, PluginContractError

MAX_DEPTH = 32  # how deep a config or option document may nest (theirs nest two or three levels)


def check_schema(schema: Mapping[str, Any], owner: str) -> None:
    """Raise :class:`PluginContractError` when ``schema`` is not a valid JSON Schema."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = exc.json_path if hasattr(exc, "json_path") else "$"
        raise PluginContractError(
            f"{owner} ships an invalid JSON Schema at {path}: {exc.message} (fix the plugin's spec)"
        ) from None


def validate(
    document: Mapping[str, Any], schema: Mapping[str, Any], what: str, *, hint: str | None = None
) -> dict[str, Any]:
    """Validate ``document`` against ``schema``; return a copy with schema defaults applied.

    Every error is reported at once, one per line, sorted by JSON path. Values of ``writeOnly``
    (secret) properties are never echoed: such errors show the path and the failed keyword only.
    ``hint`` (e.g. "see 'segport plugins show mailchimp'") ends the message. A document nested deeper
    than :data:`MAX_DEPTH` levels, or holding a number that is not finite (NaN, Infinity), is refused
    before the schema sees it.
    """
    not_finite = check_shape(document, what)
    if not_finite:
        raise ConfigValidationError(what, not_finite, schema=schema, hint=hint)
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: (_path_key(e), e.message))
    if errors:
        hidden = [v for v in split_secrets(document, schema)[1].values() if v not in (None, "")]
        raise ConfigValidationError(what, [_render(e, hidden) for e in errors], schema=schema, hint=hint)
    return apply_defaults(document, schema)


def check_shape(document: Any, what: str) -> list[str]:
    """Return one line per number of ``document`` that is not finite; raise when it nests too deep.

    Walks without recursion, so a document of any depth is refused in one line.
    """
    problems: list[str] = []
    todo: list[tuple[Any, str, int]] = [(document, "$", 0)]
    while todo:
        value, path, depth = todo.pop()
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{path}: {value} is not a finite number")
        elif isinstance(value, (Mapping, list, tuple)):
            if depth >= MAX_DEPTH:
                raise ConfigError(f"{what} nests deeper than {MAX_DEPTH} levels (at {path}): flatten it")
            items = value.items() if isinstance(value, Mapping) else enumerate(value)
            todo.extend((v, _child(path, k, depth), depth + 1) for k, v in items)
    return sorted(problems)


def _child(path: str, key: Any, depth: int) -> str:
    """Return the JSON path of ``path``'s item ``key``; past three levels, ``…`` stands for the rest."""
    if depth >= 3:
        return path if path.endswith("…") else f"{path}…"
    return f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"


def _path_key(error: ValidationError) -> tuple[tuple[int, int | str], ...]:
    """Sort key of an error's path: array indexes numerically ($.xs[2] before $.xs[10])."""
    return tuple((0, p) if isinstance(p, int) else (1, str(p)) for p in error.absolute_path)


def _render(error: ValidationError, hidden: list[Any]) -> str:
    if _is_secret(error):
        return f"{error.json_path}: secret value fails '{error.validator}' (value hidden){_expected(error)}"
    if hidden and _echoes_secret(error, hidden):
        # e.g. a oneOf error echoes the whole object, secrets included: echo nothing of it
        return f"{error.json_path}: fails '{error.validator}' (value hidden: it holds a secret)"
    message = _json_message(error)
    if error.validator == "additionalProperties" and isinstance(error.schema, Mapping):
        allowed = sorted(error.schema.get("properties", {}))
        if allowed:
            message += f" (allowed: {', '.join(allowed)})"
    if error.validator in ("pattern", "format"):
        message += _expected(error)
    return f"{error.json_path}: {message}"


def _json_message(error: ValidationError) -> str:
    """Return the validator's message with values as JSON (``null``, ``true``, ``"text"``), not Python reprs."""
    validator, value, instance = error.validator, error.validator_value, error.instance
    if validator == "type":
        types = value if isinstance(value, list) else [value]
        return f"{_json(instance)} is not of type {', '.join(_json(t) for t in types)}"
    if validator == "enum":
        return f"{_json(instance)} is not one of {_json(value)}"
    if validator == "const":
        return f"{_json(value)} was expected"
    if validator == "pattern":
        return f"{_json(instance)} does not match {_json(value)}"
    message = error.message
    if validator == "required" and isinstance(value, list):
        names = [n for n in value if isinstance(n, str)]
    elif validator in ("additionalProperties", "unevaluatedProperties") and isinstance(instance, Mapping):
        names = [n for n in instance if isinstance(n, str)]
    else:
        names = []
        if instance is None or isinstance(instance, (bool, int, float, str)):
            if message.startswith(repr(instance)):
                return _json(instance) + message[len(repr(instance)) :]
    for name in names:
        message = message.replace(repr(name), _json(name))
    return message


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _expected(error: ValidationError) -> str:
    """Return the property's description, which says what a valid value looks like."""
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    description = schema.get("description")
    return f"; expected: {description}" if isinstance(description, str) and description else ""


# Keywords whose messages name properties, never values: safe to show beside a secret.
_NAMES_ONLY = frozenset({"required", "additionalProperties", "dependentRequired", "unevaluatedProperties"})


def _echoes_secret(error: ValidationError, hidden: list[Any]) -> bool:
    """Whether ``error``'s message could show a secret value of the document."""
    if error.validator in _NAMES_ONLY:  # e.g. "'zone' was unexpected": only a property name as a secret shows
        return any(text in error.message for v in hidden for text in (str(v), repr(v)[1:-1]) if text)
    return _holds_secret(error.instance, hidden)


def _holds_secret(instance: Any, hidden: list[Any]) -> bool:
    if isinstance(instance, Mapping):
        return any(_holds_secret(v, hidden) for v in instance.values())
    if isinstance(instance, list):
        return any(_holds_secret(v, hidden) for v in instance)
    return any(instance == value for value in hidden)


def _is_secret(error: ValidationError) -> bool:
    return isinstance(error.schema, Mapping) and error.schema.get("writeOnly") is True


def apply_defaults(document: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``document`` with top-level property ``default`` values filled in."""
    result = copy.deepcopy(dict(document))
    for name, prop in schema.get("properties", {}).items():
        if name not in result and isinstance(prop, Mapping) and "default" in prop:
            result[name] = copy.deepcopy(prop["default"])
    return result


def secret_fields(schema: Mapping[str, Any]) -> frozenset[str]:
    """Top-level property names marked ``writeOnly: true`` (secrets) in a connection schema."""
    return frozenset(
        name for name, prop in schema_properties(schema) if isinstance(prop, Mapping) and prop.get("writeOnly") is True
    )


def schema_properties(schema: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every (name, subschema) of the top-level properties, those of oneOf/anyOf/allOf branches included."""
    yield from schema.get("properties", {}).items()
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in schema.get(key, []):
            if isinstance(sub, Mapping):
                yield from schema_properties(sub)


def redact(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``config`` fit for display: every secret value replaced by ``'********'``."""
    secrets = secret_fields(schema)
    return {k: ("********" if k in secrets else v) for k, v in config.items()}


def split_secrets(config: Mapping[str, Any], schema: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a config into (plain, secret) parts by the schema's ``writeOnly`` marks."""
    secrets = secret_fields(schema)
    plain = {k: v for k, v in config.items() if k not in secrets}
    hidden = {k: v for k, v in config.items() if k in secrets}
    return plain, hidden


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """Parse ``text`` as a JSON object or raise a one-line :class:`ConfigError`."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            'give a JSON object such as \'{"api_key": "..."}\''
        ) from None
    except RecursionError:
        raise ConfigError(f"{what} nests deeper than {MAX_DEPTH} levels: give a flat JSON object") from None
    except ValueError:  # an integer of more digits than Python converts
        raise ConfigError(f"{what} holds a number with too many digits: write it as a string") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def parse_option_value(text: str) -> Any:
    """Parse an ``--option KEY=VALUE`` value: as JSON where it can, else as a plain string.

    Raises :class:`ConfigError` for a value nested deeper than Python's parser follows.
    """
    try:
        value = json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise ConfigError(f"the value nests deeper than {MAX_DEPTH} levels: give a flatter JSON value") from None
    except ValueError:  # JSONDecodeError, NaN/Infinity (not JSON), too many digits: keep the text
        return text
    return text if isinstance(value, float) and not math.isfinite(value) else value  # 1e999: as written


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
