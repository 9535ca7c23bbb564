"""Forms generated from a plugin's JSON Schema: fields, typed values back, errors placed by field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from segport.config import validate
from segport.errors import ConfigError, ConfigValidationError
from segport.web.forms import FORM_ERROR, errors_of, fields_of, typed_values
from segport_mailchimp.destination import MailchimpDestination

TEMPLATES = Path(__file__).parents[2] / "core" / "web" / "templates"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["token"],
    "additionalProperties": False,
    "properties": {
        "token": {"type": "string", "writeOnly": True, "minLength": 8, "title": "API token"},
        "mode": {"enum": ["fast", "safe"], "default": "safe", "description": "How to send"},
        "batch": {"type": "integer", "minimum": 1},
        "ratio": {"type": "number"},
        "dry": {"type": "boolean", "default": False},
        "label": {"type": "string"},
    },
}


def test_each_property_becomes_the_input_of_its_type() -> None:
    fields = {f.name: f for f in fields_of(SCHEMA, {"token": "s3cret-value", "label": "x", "dry": True})}
    assert [fields[n].kind for n in ["token", "mode", "batch", "ratio", "dry", "label"]] == [
        "password", "select", "integer", "number", "checkbox", "text"
    ]  # fmt: skip
    assert fields["token"].label == "API token" and fields["token"].required and fields["token"].value == ""
    assert fields["mode"].choices == ("fast", "safe") and fields["mode"].value == "safe"
    assert fields["mode"].hint == "How to send" and fields["dry"].value is True and fields["label"].value == "x"


def test_required_when_comes_from_if_then_else() -> None:
    schema = MailchimpDestination().spec().connection_schema
    fields = {f.name: f for f in fields_of(schema)}
    assert fields["api_key"].when == "required when auth_method is not oauth2"
    assert fields["client_id"].when == "required when auth_method is oauth2"
    assert fields["timeout_s"].when is None
    assert fields["client_id"].help == "OAuth2 client id of your registered app. Required when auth_method is oauth2."
    stored = fields_of(schema, stored_secrets=frozenset({"api_key"}))[1]
    assert stored.help.endswith("API keys). Required when auth_method is not oauth2. Stored: leave blank to keep it.")


def test_values_come_back_typed() -> None:
    form = {"cfg-token": "  spaced secret ", "cfg-batch": "25", "cfg-ratio": "0.5", "cfg-dry": "on", "cfg-label": ""}
    config, errors = typed_values(SCHEMA, form)
    assert not errors
    assert config == {"token": "  spaced secret ", "batch": 25, "ratio": 0.5, "dry": True}  # a blank: its default
    assert validate(config, SCHEMA, "x")["mode"] == "safe"


def test_an_edit_keeps_a_blank_secret_and_clears_a_blank_setting() -> None:
    config, _ = typed_values(SCHEMA, {"cfg-token": "", "cfg-label": "", "cfg-batch": "3"}, editing=True)
    assert "token" not in config and config["label"] is None and config["batch"] == 3
    assert config["dry"] is None  # unchecked, its default: the stored value goes


def test_a_value_left_at_its_default_is_not_pinned() -> None:
    assert typed_values(SCHEMA, {"cfg-mode": "safe", "cfg-dry": ""})[0] == {}
    assert typed_values(SCHEMA, {"cfg-mode": "fast"})[0]["mode"] == "fast"
    assert typed_values(SCHEMA, {"cfg-mode": "safe"}, editing=True)[0]["mode"] is None


def test_a_value_that_does_not_convert_is_an_error_of_its_field() -> None:
    _, errors = typed_values(SCHEMA, {"cfg-batch": "many", "cfg-ratio": "1/2"})
    assert errors.get("batch") == "'many' is not a whole number" and errors.get("ratio") == "'1/2' is not a number"


def test_validation_errors_go_next_to_their_fields_without_the_secret() -> None:
    with pytest.raises(ConfigValidationError) as caught:
        validate({"token": "short", "batch": 0, "zone": 1}, SCHEMA, "config")
    errors = errors_of(caught.value, {"token", "batch", "mode"})
    assert "minLength" in (errors.get("token") or "") and "short" not in (errors.get("token") or "")
    assert errors.get("batch") == "0 is less than the minimum of 1"
    assert "zone" in (errors.get(FORM_ERROR) or "")
    with pytest.raises(ConfigValidationError) as missing:
        validate({}, SCHEMA, "config")
    assert errors_of(missing.value, {"token"}).get("token") == 'required: "token" is a required property'


def test_other_errors_go_to_their_param() -> None:
    refused = ConfigError("agree first", param="agree_privacy")
    assert errors_of(refused, {"agree"}, param_field={"agree_privacy": "agree"}).get("agree") == "agree first"
    assert errors_of(ConfigError("something else"), {"agree"}).get(FORM_ERROR) == "something else"


@pytest.mark.parametrize("folder", ["connections", "exports"])
def test_the_templates_hold_no_inline_script_or_style(folder: str) -> None:
    for template in [*sorted((TEMPLATES / folder).glob("*.html")), TEMPLATES / "_fields.html"]:
        text = template.read_text()
        for banned in ["<script", "style=", "<style", "javascript:", "|safe", " onclick=", " onerror=", " onchange="]:
            assert banned not in text, f"{template.name} holds {banned}"
