"""The Campaign Monitor plugin's spec: valid JSON Schemas, secrets marked writeOnly, the configs they accept."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from segport import ConfigValidationError, DestinationSpec
from segport.config import secret_fields, validate
from segport.registry import instantiate
from segport_campaignmonitor import CampaignMonitorDestination

API_KEY = "cm-key-123"
LIST_ID = "a" * 32
SPEC = CampaignMonitorDestination().spec()
CONNECTION = SPEC.connection_schema
EXPORT = SPEC.export_schema
SECRETS = ("api_key", "client_secret", "access_token", "refresh_token")
OAUTH = {"auth_method": "oauth2", "client_id": "98765", "client_secret": "s3cr3t-client"}


def errors_of(document: dict[str, Any], schema: Any) -> list[str]:
    with pytest.raises(ConfigValidationError) as caught:
        validate(document, schema, "the Campaign Monitor config")
    return caught.value.errors


def paths(errors: list[str]) -> list[str]:
    return [e.split(":")[0] for e in errors]


# -- the schemas themselves -----------------------------------------------------------------------
@pytest.mark.parametrize("schema", [CONNECTION, EXPORT], ids=["connection", "export"])
def test_schemas_are_valid_draft_2020_12(schema: Any) -> None:
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_spec_json_beside_the_plugin_is_what_spec_returns() -> None:
    document = json.loads(files("segport_campaignmonitor").joinpath("spec.json").read_text(encoding="utf-8"))
    assert document == {"connection": CONNECTION, "export": EXPORT}


def test_registry_accepts_the_plugin() -> None:
    destination = instantiate("campaignmonitor", CampaignMonitorDestination)

    assert isinstance(destination, CampaignMonitorDestination)
    assert (destination.name, destination.title) == ("campaignmonitor", "Campaign Monitor")
    spec = destination.spec()
    assert isinstance(spec, DestinationSpec)
    assert spec.auth_methods == ("api_key", "oauth2")
    # at most 1,000 per import.json (docs/providers/campaignmonitor.md#import-size)
    assert spec.limits.batch_size == 1000
    assert spec.limits.max_concurrency >= 1


def test_secrets_are_write_only() -> None:
    assert secret_fields(CONNECTION) == set(SECRETS)
    for name in SECRETS:
        assert CONNECTION["properties"][name]["writeOnly"] is True
    for name in ("client_id", "api_base_url", "oauth_base_url", "auth_method"):
        assert "writeOnly" not in CONNECTION["properties"][name]


def test_base_url_defaults_to_the_public_api() -> None:
    destination = CampaignMonitorDestination()
    assert destination.base_url({"api_key": API_KEY}) == "https://api.createsend.com/api/v3.3"
    assert destination.base_url({"api_key": API_KEY, "api_base_url": "http://127.0.0.1:8123"}) == (
        "http://127.0.0.1:8123"
    )


# -- connection configs ---------------------------------------------------------------------------
def test_api_key_config_validates_with_defaults() -> None:
    config = validate({"api_key": API_KEY}, CONNECTION, "connection")

    assert config["api_key"] == API_KEY
    assert config["auth_method"] == "api_key"
    assert config["api_base_url"] == "https://api.createsend.com/api/v3.3"
    assert config["timeout_s"] == 120


@pytest.mark.parametrize("config", [{}, {"auth_method": "api_key"}], ids=["empty", "api_key-method"])
def test_api_key_is_required_without_oauth2(config: dict[str, Any]) -> None:
    errors = errors_of(config, CONNECTION)
    assert any('"api_key" is a required property' in e for e in errors)


def test_empty_api_key_fails_without_echoing_it() -> None:
    errors = errors_of({"api_key": ""}, CONNECTION)
    assert paths(errors) == ["$.api_key"]


def test_oauth2_config_needs_no_api_key() -> None:
    config = validate(OAUTH, CONNECTION, "connection")

    assert "api_key" not in config
    assert config["oauth_base_url"] == "https://api.createsend.com"


@pytest.mark.parametrize("missing", ["client_id", "client_secret"])
def test_oauth2_requires_client_id_and_secret(missing: str) -> None:
    config = {k: v for k, v in OAUTH.items() if k != missing}

    errors = errors_of(config, CONNECTION)

    assert paths(errors) == ["$"] and "required" in errors[0]
    assert "api_key" not in errors[0]  # oauth2 needs no API key
    if missing == "client_secret":  # with the secret present, core hides the whole object's message
        assert '"client_secret" is a required property' in errors[0]
    assert "s3cr3t-client" not in errors[0]


def test_oauth2_with_both_client_values_missing_fails() -> None:
    errors = errors_of({"auth_method": "oauth2"}, CONNECTION)
    assert '"client_id" is a required property' in "; ".join(errors)


def test_oauth2_with_tokens_validates() -> None:
    config = {**OAUTH, "access_token": "tok", "refresh_token": "ref"}
    assert validate(config, CONNECTION, "connection")["refresh_token"] == "ref"


def test_unknown_auth_method_fails() -> None:
    errors = errors_of({"auth_method": "basic", "api_key": API_KEY}, CONNECTION)
    assert paths(errors) == ["$.auth_method"]


def test_unknown_keys_are_refused_without_echoing_secrets() -> None:
    errors = errors_of({**OAUTH, "apikey": API_KEY}, CONNECTION)
    assert len(errors) == 1 and '("apikey" was unexpected)' in errors[0]  # names the property, not a value
    assert "s3cr3t-client" not in errors[0] and API_KEY not in errors[0]


GOOD_URLS = [
    "https://api.createsend.com/api/v3.3",
    "https://proxy.example:8443/cm",
    "http://127.0.0.1:8123",
    "http://127.0.0.1:8123/api/v3.3/",
    "http://localhost:9/",
    "http://[::1]:8080",
]
BAD_URLS = [
    "http://api.createsend.com/api/v3.3",
    "http://10.0.0.1:8080",
    "http://localhost.evil.example/",
    "http://127.0.0.1.evil.example",
    "ftp://x.example",
    "https://",
    "https://x.example/a b",
]


@pytest.mark.parametrize("option", ["api_base_url", "oauth_base_url"])
@pytest.mark.parametrize("url", GOOD_URLS)
def test_base_urls_accept_https_and_loopback_http(option: str, url: str) -> None:
    assert validate({"api_key": API_KEY, option: url}, CONNECTION, "connection")[option] == url


@pytest.mark.parametrize("option", ["api_base_url", "oauth_base_url"])
@pytest.mark.parametrize("url", BAD_URLS)
def test_base_urls_refuse_plain_http_elsewhere(option: str, url: str) -> None:
    assert paths(errors_of({"api_key": API_KEY, option: url}, CONNECTION)) == [f"$.{option}"]


@pytest.mark.parametrize("timeout", [0, -1, 301, "60"])
def test_timeout_bounds(timeout: Any) -> None:
    assert paths(errors_of({"api_key": API_KEY, "timeout_s": timeout}, CONNECTION)) == ["$.timeout_s"]


# -- export options -------------------------------------------------------------------------------
def test_export_options_defaults_are_applied() -> None:
    options = validate({"list_id": LIST_ID}, EXPORT, "export options")

    assert options == {
        "list_id": LIST_ID,
        "consent_to_track": "Unchanged",
        "resubscribe": False,
        "segment_field": "Segments",
        "create_rule_segments": True,
    }


def test_export_options_need_a_list_id() -> None:
    assert errors_of({"resubscribe": True}, EXPORT) == ['$: "list_id" is a required property']


def test_export_options_keep_given_values() -> None:
    given = {
        "list_id": LIST_ID,
        "consent_to_track": "gdpr_ok",
        "resubscribe": True,
        "segment_field": "Audiences",
        "create_rule_segments": False,
    }
    assert validate(given, EXPORT, "export options") == given


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("list_id", "a1b2-c3"),
        ("list_id", ""),
        ("list_id", "a" * 65),
        ("consent_to_track", ""),
        ("resubscribe", "yes"),
        ("segment_field", ""),
        ("segment_field", "x" * 101),
        ("create_rule_segments", 1),
        ("audience_id", "abc"),
    ],
)
def test_export_options_refuse_bad_values(option: str, value: Any) -> None:
    errors = errors_of({"list_id": LIST_ID, option: value}, EXPORT)
    expected = "$" if option == "audience_id" else f"$.{option}"  # unknown keys are reported at the root
    assert paths(errors) == [expected]


# -- extra_fields(): consent read from a profile attribute ----------------------------------------
def test_extra_fields_names_the_consent_attribute() -> None:
    assert CampaignMonitorDestination().extra_fields({"list_id": LIST_ID, "consent_to_track": "gdpr_ok"}) == {
        "ConsentToTrack": "gdpr_ok"
    }


@pytest.mark.parametrize("literal", ["Yes", "No", "Unchanged", "yes", "NO", "unchanged", "YES"])
def test_extra_fields_is_empty_for_literal_consent(literal: str) -> None:
    assert CampaignMonitorDestination().extra_fields({"list_id": LIST_ID, "consent_to_track": literal}) == {}


def test_extra_fields_is_empty_by_default() -> None:
    assert CampaignMonitorDestination().extra_fields({"list_id": LIST_ID}) == {}
