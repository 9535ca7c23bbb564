"""Schema validation of configs and options: every error at once, by JSON path, never a secret."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest

from segport import (
    ConfigError,
    ConfigValidationError,
    DestinationSpec,
    ExitStatus,
    FieldSpec,
    Limits,
    Registry,
    Workspace,
)
from segport.config import parse_json_object, parse_option_value, validate
from segport.registry import set_default_registry
from segport.testing.fakes import CONNECTION_SCHEMA, EXPORT_SCHEMA, MemoryPlatform, memory_destination

KEY = "SECRET-KEY-9f8e7d6c"

# A connection schema whose secret can fail at its own path and at the top level.
STRICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["api_key"],
    "properties": {
        "api_key": {"type": "string", "writeOnly": True, "minLength": 40, "description": "API key"},
        "region": {"type": "string", "enum": ["eu", "us"], "description": "Data centre"},
        "endpoint": {"type": "string", "description": "Custom endpoint"},
    },
    "oneOf": [{"required": ["region"]}, {"required": ["endpoint"]}],
}


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def errors_of(document: Mapping[str, Any], schema: Mapping[str, Any]) -> ConfigValidationError:
    with pytest.raises(ConfigValidationError) as info:
        validate(document, schema, "the config")
    return info.value


# -- every error at once, by path -----------------------------------------------------------------
def test_all_errors_reported_at_once_sorted_by_path() -> None:
    exc = errors_of({"tag_prefix": 5, "zzz": 1, "audience_id": ""}, EXPORT_SCHEMA)
    assert [e.split(": ", 1)[0] for e in exc.errors] == ["$", "$.audience_id", "$.tag_prefix"]
    assert '"zzz" was unexpected' in exc.errors[0] and "(allowed: audience_id, tag_prefix)" in exc.errors[0]
    assert exc.errors[2] == '$.tag_prefix: 5 is not of type "string"'
    assert all("\n" not in e for e in exc.errors)
    assert "\n" not in str(exc) and str(exc).startswith("the config is invalid: $: ")
    assert exc.exit_status is ExitStatus.CONFIG_ERROR


def test_messages_show_values_as_json_never_as_python_reprs() -> None:
    errors = errors_of({"audience_id": None, "tag_prefix": True}, EXPORT_SCHEMA).errors
    assert errors == ['$.audience_id: null is not of type "string"', '$.tag_prefix: true is not of type "string"']


def test_missing_required_property_is_reported_at_the_object() -> None:
    assert errors_of({}, EXPORT_SCHEMA).errors == ['$: "audience_id" is a required property']


def test_array_errors_follow_document_order() -> None:
    schema = {"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "integer"}}}}
    exc = errors_of({"xs": [0, 1, "a", 3, 4, 5, 6, 7, 8, 9, "b"]}, schema)
    assert [e.split(":")[0] for e in exc.errors] == ["$.xs[2]", "$.xs[10]"]


def test_cli_prints_every_option_error_on_one_line(cli_ws: Any) -> None:
    result = cli_ws("exports", "add", "e", "--connection", "mem", "--segment", "fr", "--email", "email",
                    "--option", "tag_prefix=5", "--option", "audience_id=")
    assert result.exit_code == ExitStatus.CONFIG_ERROR
    line = one_line(result.stderr)
    assert "$.audience_id: " in line and '$.tag_prefix: 5 is not of type "string"' in line
    assert line.index("$.audience_id: ") < line.index("$.tag_prefix: ")
    assert "Traceback" not in result.output


# -- secrets never echoed -------------------------------------------------------------------------
@pytest.mark.parametrize("document", [
    pytest.param({"api_key": KEY, "region": "eu"}, id="minLength"),
    pytest.param({"api_key": KEY}, id="top-level-oneOf-none"),
    pytest.param({"api_key": KEY, "region": "eu", "endpoint": "x"}, id="top-level-oneOf-both"),
    pytest.param({"api_key": 123456789012, "region": "eu"}, id="type"),
])
def test_secret_value_never_in_messages(document: dict[str, Any]) -> None:
    exc = errors_of(document, STRICT_SCHEMA)
    secret = str(document["api_key"])
    assert secret not in str(exc) and not any(secret in e for e in exc.errors)
    assert "$.api_key: secret value fails" in str(exc) or "$: " in str(exc)


def test_secret_failing_its_own_keyword_shows_path_keyword_and_what_is_expected_only() -> None:
    exc = errors_of({"api_key": KEY, "region": "eu"}, STRICT_SCHEMA)
    assert exc.errors == ["$.api_key: secret value fails 'minLength' (value hidden); expected: API key"]


@pytest.mark.parametrize("combinator", ["oneOf", "anyOf"])
def test_secret_hidden_when_top_level_combinator_fails(combinator: str) -> None:
    schema = {**CONNECTION_SCHEMA, combinator: [{"required": ["token"]}, {"required": ["password"]}]}
    exc = errors_of({"api_key": KEY}, schema)
    assert len(exc.errors) == 1 and exc.errors[0].startswith("$: ")
    assert KEY not in str(exc)


def test_secret_declared_inside_a_branch_is_hidden() -> None:
    schema = {"type": "object", "properties": {},
              "anyOf": [{"properties": {"api_key": {"type": "string", "writeOnly": True}}, "required": ["token"]},
                        {"required": ["password"]}]}
    assert KEY not in str(errors_of({"api_key": KEY}, schema))


@pytest.mark.parametrize("secret", [KEY + "\n", KEY.replace("-", "\\", 1)], ids=["trailing-newline", "backslash"])
def test_secret_with_escaped_characters_hidden_in_top_level_errors(secret: str) -> None:
    exc = errors_of({"api_key": secret}, STRICT_SCHEMA)
    assert "9f8e7d6c" not in str(exc)


def test_cli_hides_secret_failing_minlength(cli_ws: Any) -> None:
    short = "S3cr3t!"
    result = cli_ws("connections", "add", "c", "--type", "memory", "--config", json.dumps({"api_key": short}),
                    "--agree-privacy")
    assert result.exit_code == ExitStatus.CONFIG_ERROR
    line = one_line(result.stderr)
    assert "$.api_key: secret value fails 'minLength' (value hidden)" in line
    assert short not in result.output


@pytest.fixture
def strict_registry(registry: Registry, platform: MemoryPlatform) -> Iterator[Registry]:
    """The default registry with a second destination, ``strict``, whose connection schema is STRICT_SCHEMA."""

    class Strict(memory_destination(platform)):  # type: ignore[misc,valid-type]
        name = "strict"
        title = "Strict"

        def spec(self) -> DestinationSpec:
            return DestinationSpec(STRICT_SCHEMA, EXPORT_SCHEMA, FieldSpec(), Limits(10, 2))

    reg = Registry.from_plugins([memory_destination(platform), Strict])
    set_default_registry(reg)
    yield reg
    set_default_registry(registry)


def test_cli_hides_secret_in_top_level_oneof_error(cli_ws: Any, strict_registry: Registry) -> None:
    result = cli_ws("connections", "add", "c", "--type", "strict", "--config", json.dumps({"api_key": KEY}),
                    "--agree-privacy", "--json")
    assert result.exit_code == ExitStatus.CONFIG_ERROR
    line = one_line(result.stderr)
    assert "$: " in line and "$.api_key: secret value fails 'minLength'" in line
    assert KEY not in result.output  # stdout holds the same line as the --json error object (issue 16)
    assert json.loads(result.stdout)["error"] == {"code": 3, "status": "CONFIG_ERROR", "message": line[7:]}


def test_cli_hides_secret_with_trailing_newline_in_top_level_error(cli_ws: Any, strict_registry: Registry) -> None:
    result = cli_ws("connections", "add", "c", "--type", "strict", "--config", "-", "--agree-privacy",
                    input=json.dumps({"api_key": KEY + "\n"}))
    assert result.exit_code == ExitStatus.CONFIG_ERROR
    assert "9f8e7d6c" not in result.output


# -- defaults -------------------------------------------------------------------------------------
def test_defaults_applied_without_touching_the_input() -> None:
    document = {"audience_id": "aud1"}
    assert validate(document, EXPORT_SCHEMA, "options") == {"audience_id": "aud1", "tag_prefix": ""}
    assert document == {"audience_id": "aud1"}
    assert validate({"audience_id": "a", "tag_prefix": "t-"}, EXPORT_SCHEMA, "options")["tag_prefix"] == "t-"


def test_connection_default_stored(cli_ws: Any) -> None:
    assert cli_ws("connections", "add", "c", "--type", "memory", "--config", json.dumps({"api_key": KEY}),
                  "--agree-privacy").exit_code == 0
    shown = json.loads(cli_ws("connections", "show", "c", "--json").stdout)
    assert shown["config"] == {"account": "demo"} and shown["secrets"] == ["api_key"]


# -- --option values ------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "value"), [
    ("aud1", "aud1"), ("42", 42), ("4.5", 4.5), ("true", True), ("null", None), ('"42"', "42"),
    ("[1, 2]", [1, 2]), ('{"a": 1}', {"a": 1}), ("", ""), ("{bad", "{bad"),
])
def test_option_values_parse_as_json_where_they_can(text: str, value: Any) -> None:
    assert parse_option_value(text) == value


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_stay_strings(text: str) -> None:
    value = parse_option_value(text)
    assert not (isinstance(value, float) and (math.isnan(value) or math.isinf(value)))
    assert value == text


def test_cli_options_parsed_as_json(cli_ws: Any) -> None:
    quoted = cli_ws("exports", "add", "e", "--connection", "mem", "--segment", "fr", "--email", "email",
                    "--option", 'audience_id="123"', "--option", "tag_prefix=t-", "--json")
    assert quoted.exit_code == 0, quoted.output
    assert json.loads(quoted.stdout)["options"] == {"audience_id": "123", "tag_prefix": "t-"}
    number = cli_ws("exports", "add", "e2", "--connection", "mem", "--segment", "fr", "--email", "email",
                    "--option", "audience_id=123")
    assert number.exit_code == ExitStatus.CONFIG_ERROR
    assert '$.audience_id: 123 is not of type "string"' in one_line(number.stderr)


# -- --config -------------------------------------------------------------------------------------
def test_bad_json_config(cli_ws: Any) -> None:
    result = cli_ws("connections", "add", "c", "--type", "memory", "--config", "{bad", "--agree-privacy")
    assert result.exit_code == ExitStatus.CONFIG_ERROR
    assert "--config is not valid JSON" in one_line(result.stderr)
    assert "Traceback" not in result.output


def test_config_file_that_does_not_exist(cli_ws: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = cli_ws("connections", "add", "c", "--type", "memory", "--config", str(missing), "--agree-privacy")
    assert result.exit_code == ExitStatus.CONFIG_ERROR
    line = one_line(result.stderr)
    assert "cannot read the config file" in line and "nope.json" in line


def test_unreadable_config_path_error_is_one_line(cli_ws: Any) -> None:
    result = cli_ws("connections", "add", "c", "--type", "memory", "--config", "no\nsuch.json", "--agree-privacy")
    assert result.exit_code == ExitStatus.CONFIG_ERROR
    one_line(result.stderr)


def test_config_file(cli_ws: Any, tmp_path: Path) -> None:
    path = tmp_path / "conn.json"
    path.write_text(json.dumps({"api_key": KEY, "account": "acme"}), encoding="utf-8")
    added = cli_ws("connections", "add", "c", "--type", "memory", "--config", str(path), "--agree-privacy")
    assert added.exit_code == 0, added.output
    assert json.loads(cli_ws("connections", "show", "c", "--json").stdout)["config"] == {"account": "acme"}


def test_config_file_with_bad_json_names_the_file(cli_ws: Any, tmp_path: Path) -> None:
    path = tmp_path / "conn.json"
    path.write_text("[1, 2", encoding="utf-8")
    result = cli_ws("connections", "add", "c", "--type", "memory", "--config", str(path), "--agree-privacy")
    assert result.exit_code == ExitStatus.CONFIG_ERROR
    assert "the config file conn.json is not valid JSON" in one_line(result.stderr)


def test_config_from_stdin(cli_ws: Any, home: Path) -> None:
    result = cli_ws("connections", "add", "c", "--type", "memory", "--config", "-", "--agree-privacy", "--json",
                    input=json.dumps({"api_key": KEY}))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["has_secrets"] is True
    with Workspace.open(home, user="ada") as ws:
        assert ws.test_connection("c").status == "ok"


def test_bad_config_from_stdin(cli_ws: Any) -> None:
    result = cli_ws("connections", "add", "c", "--type", "memory", "--config", "-", "--agree-privacy", input="nope")
    assert result.exit_code == ExitStatus.CONFIG_ERROR
    assert "the config from stdin is not valid JSON" in one_line(result.stderr)


@pytest.mark.parametrize(("text", "problem"), [("[1]", "must be a JSON object, not list"),
                                                ('"x"', "must be a JSON object, not str"),
                                                ("{", "is not valid JSON")])
def test_parse_json_object(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_json_object(text, "--config")


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
def cli_ws(run_cli: Any, make_profiles: Any) -> Any:
    """A CLI workspace with admin ada, profiles, a segment 'fr' and a connection 'mem'; calls run as ada."""
    assert run_cli("init", "--admin", "ada").exit_code == 0
    steps = [
        ("profiles", "load", str(make_profiles(6))),
        ("segments", "define", "fr", "--where", "country = 'FR'"),
        ("connections", "add", "mem", "--type", "memory", "--config", json.dumps({"api_key": KEY}), "--agree-privacy"),
    ]
    for step in steps:
        result = run_cli("--as", "ada", *step)
        assert result.exit_code == 0, result.output

    def invoke(*args: str, input: str | None = None) -> Any:
        return run_cli("--as", "ada", *args, input=input)

    return invoke
