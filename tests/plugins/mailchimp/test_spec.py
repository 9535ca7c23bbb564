"""The Mailchimp plugin's spec: valid JSON Schemas, secrets marked writeOnly, and what configs they accept."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from segport import ConfigValidationError, DestinationSpec
from segport.config import secret_fields, validate
from segport.registry import instantiate
from segport_mailchimp import MailchimpDestination

API_KEY = "0123456789abcdef0123456789abcdef-us7"
SPEC = MailchimpDestination().spec()
CONNECTION = SPEC.connection_schema
EXPORT = SPEC.export_schema


def errors_of(document: dict[str, Any], schema: Any) -> list[str]:
    with pytest.raises(ConfigValidationError) as caught:
        validate(document, schema, "the Mailchimp config")
    return caught.value.errors


# -- the schemas themselves -----------------------------------------------------------------------
@pytest.mark.parametrize("schema", [CONNECTION, EXPORT], ids=["connection", "export"])
def test_schemas_are_valid_draft_2020_12(schema: Any) -> None:
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_spec_json_beside_the_plugin_is_what_spec_returns() -> None:
    document = json.loads(files("segport_mailchimp").joinpath("spec.json").read_text(encoding="utf-8"))
    assert document == {"connection": CONNECTION, "export": EXPORT}


def test_registry_accepts_the_plugin() -> None:
    destination = instantiate("mailchimp", MailchimpDestination)

    assert isinstance(destination, MailchimpDestination)
    assert (destination.name, destination.title) == ("mailchimp", "Mailchimp")
    spec = destination.spec()
    assert isinstance(spec, DestinationSpec)
    assert spec.auth_methods == ("api_key", "oauth2")
    # (docs/providers/mailchimp.md#batch-size) and (docs/providers/mailchimp.md#connection-limit)
    assert (spec.limits.batch_size, spec.limits.max_concurrency) == (500, 10)


def test_secrets_are_write_only() -> None:
    assert secret_fields(CONNECTION) == {"api_key", "client_secret", "access_token"}
    for name in ("api_key", "client_secret", "access_token"):
        assert CONNECTION["properties"][name]["writeOnly"] is True


# -- connection configs ---------------------------------------------------------------------------
def test_api_key_config_validates_with_defaults() -> None:
    config = validate({"api_key": API_KEY}, CONNECTION, "connection")

    assert config["api_key"] == API_KEY
    assert config["auth_method"] == "api_key"
    assert config["timeout_s"] == 120


@pytest.mark.parametrize(
    "bad_key",
    ["0123456789abcdef0123456789abcdef", "0123456789ABCDEF0123456789abcdef-us7", "0123456789abcdef-us7", "short"],
    ids=["no-dc", "upper-hex", "short-hex", "short"],
)
def test_bad_api_key_fails_at_its_path_without_echoing_it(bad_key: str) -> None:
    with pytest.raises(ConfigValidationError) as caught:
        validate({"api_key": bad_key}, CONNECTION, "connection")

    assert [e.split(":")[0] for e in caught.value.errors] == ["$.api_key"]
    assert bad_key not in str(caught.value)
    assert all(bad_key not in line for line in caught.value.errors)


def test_missing_api_key_fails() -> None:
    assert any('"api_key" is a required property' in e for e in errors_of({}, CONNECTION))


@pytest.mark.parametrize(
    "url",
    [
        "https://x.example",
        "http://127.0.0.1:8080/3.0",
        "http://localhost:9/",
        "https://proxy.example:8443/mc/3.0",
        "http://[::1]:8080",
    ],
)
def test_api_base_url_accepts_https_and_loopback(url: str) -> None:
    assert validate({"api_key": API_KEY, "api_base_url": url}, CONNECTION, "connection")["api_base_url"] == url


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "http://10.0.0.1:8080/3.0",
        "http://localhost.evil.example/",
        "ftp://x.example",
        "https://",
        "https://x.example/a b",
    ],
)
def test_api_base_url_refuses_plain_http_elsewhere(url: str) -> None:
    errors = errors_of({"api_key": API_KEY, "api_base_url": url}, CONNECTION)
    assert [e.split(":")[0] for e in errors] == ["$.api_base_url"]


def test_oauth2_config_validates() -> None:
    config = {"auth_method": "oauth2", "client_id": "123456789012", "client_secret": "s3cr3t"}
    assert validate(config, CONNECTION, "connection")["oauth_base_url"] == "https://login.mailchimp.com"


def test_oauth2_without_client_secret_fails() -> None:
    errors = errors_of({"auth_method": "oauth2", "client_id": "123456789012"}, CONNECTION)
    assert any('"client_secret" is a required property' in e for e in errors)


def test_unknown_keys_are_refused_without_echoing_secrets() -> None:
    errors = errors_of(
        {"auth_method": "oauth2", "client_id": "1", "client_secret": "s3cr3t", "apikey": API_KEY}, CONNECTION
    )
    assert len(errors) == 1 and '("apikey" was unexpected)' in errors[0]  # names the property, not a value
    assert "s3cr3t" not in errors[0] and API_KEY not in errors[0]


# -- export options -------------------------------------------------------------------------------
def test_export_options_defaults_are_applied() -> None:
    options = validate({"audience_id": "a1b2c3d4e5"}, EXPORT, "export options")

    assert options == {
        "audience_id": "a1b2c3d4e5",
        "status_if_new": "subscribed",
        "tag_prefix": "",
        "create_missing_fields": False,
        "on_exit": "remove_tag",
        "readd_archived": False,
    }


def test_export_options_need_an_audience() -> None:
    errors = errors_of({"status_if_new": "pending"}, EXPORT)
    assert errors == ['$: "audience_id" is a required property']


@pytest.mark.parametrize("status", ["subscribed", "pending", "transactional"])
def test_status_if_new_accepts_consent_statuses(status: str) -> None:
    assert validate({"audience_id": "a1b2c3d4e5", "status_if_new": status}, EXPORT, "x")["status_if_new"] == status


@pytest.mark.parametrize("status", ["unsubscribed", "cleaned", "archived", "SUBSCRIBED"])
def test_status_if_new_refuses_other_statuses(status: str) -> None:
    errors = errors_of({"audience_id": "a1b2c3d4e5", "status_if_new": status}, EXPORT)
    assert [e.split(":")[0] for e in errors] == ["$.status_if_new"]


@pytest.mark.parametrize(
    ("option", "value"),
    [("on_exit", "delete"), ("audience_id", "a1b2-c3"), ("tag_prefix", "x" * 51), ("create_missing_fields", "yes")],
)
def test_export_options_refuse_bad_values(option: str, value: Any) -> None:
    errors = errors_of({"audience_id": "a1b2c3d4e5", option: value}, EXPORT)
    assert [e.split(":")[0] for e in errors] == [f"$.{option}"]
