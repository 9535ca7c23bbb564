"""The contract checks of the kit: discovery, specs, config validation and auth (:class:`ContractChecks`)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from ..config import schema_properties, secret_fields, validate
from ..contract import Destination
from ..errors import AuthError, ConfigValidationError
from ..registry import Registry
from .double import PlatformDouble
from .kit import DestinationKit, assert_no_secret, every_call_answers, wrong_value

__all__ = ["ContractChecks"]

SECRET_NAME = re.compile(r"(?i)(key|token|secret|password|passwd|credential)")


class ContractChecks(DestinationKit):
    """Check the entry point, the specs, config validation and the auth handler.

    Part of :class:`~segport.testing.DestinationConformance`.
    """

    # -- discovery and specs ---------------------------------------------------------------------------

    def test_entry_point_loads(self) -> None:
        """The name is registered under ``segport.destinations`` and the engine's registry loads it."""
        plugin = self._entry_point().load()
        assert isinstance(plugin, type) and issubclass(plugin, Destination), (
            f"entry point {self._name()!r} points at {plugin!r}: point it at your Destination subclass"
        )
        assert plugin.name == self._name(), (
            f"{plugin.__name__}.name is {plugin.name!r} but the entry point is {self._name()!r}: make them equal"
        )
        assert Registry().get(self._name()).name == self._name()

    def test_specs_are_valid_json_schema(self, destination: Destination) -> None:
        """Both schemas pass JSON Schema 2020-12 and the spec meta-schema; limits are positive (checked at load)."""
        spec = destination.spec()
        assert spec.connection_schema.get("type") == "object" and spec.export_schema.get("type") == "object"
        assert spec.auth_methods, "DestinationSpec.auth_methods names at least one way to authenticate"

    def test_secrets_are_write_only(self, destination: Destination) -> None:
        """Every property that looks like a credential is ``writeOnly: true``, so it is encrypted and hidden."""
        schema = destination.spec().connection_schema
        secret = secret_fields(schema)
        looks_secret = sorted(name for name, _ in schema_properties(schema) if SECRET_NAME.search(name))
        missing = [name for name in looks_secret if name not in secret]
        assert not missing, (
            f"connection properties {missing} look like credentials but are not writeOnly: add "
            '"writeOnly": true to each in your spec, or the engine stores and shows them in clear'
        )

    def test_sample_config_and_options_validate(self, destination: Destination, platform: PlatformDouble) -> None:
        """The double's connection and export options validate against the specs."""
        spec = destination.spec()
        validate(platform.connection(), spec.connection_schema, "the double's connection")
        validate(platform.export_options(), spec.export_schema, "the double's export options")

    def test_broken_config_fails_by_path(self, destination: Destination, config: dict[str, Any]) -> None:
        """A wrong-typed value fails with its JSON path; a missing required one is named; no secret echoed."""
        schema = destination.spec().connection_schema
        secrets = self._secrets(destination, config)
        for name, value in config.items():
            broken = {**config, name: wrong_value(value)}
            with pytest.raises(ConfigValidationError) as caught:
                validate(broken, schema, "connection")
            assert any(line.startswith(f"$.{name}") for line in caught.value.errors), (
                f"a wrong value of {name!r} was reported as {caught.value.errors}: errors must name '$.{name}'"
            )
            assert_no_secret(str(caught.value), secrets, "a config validation error")
        for name in schema.get("required", []):
            with pytest.raises(ConfigValidationError) as caught:
                validate({k: v for k, v in config.items() if k != name}, schema, "connection")
            assert name in str(caught.value), f"a missing required {name!r} was reported as {caught.value}"

    # -- auth ------------------------------------------------------------------------------------------

    def test_auth_sets_credentials(self, destination: Destination, config: dict[str, Any]) -> None:
        """The auth handler changes an outgoing request (a header, the URL or the body)."""
        request = requests.Request("GET", destination.base_url(config) or "http://127.0.0.1/").prepare()
        before = (request.url, dict(request.headers), request.body)
        destination.auth(config)(request)
        assert (request.url, dict(request.headers), request.body) != before, (
            "the auth handler left the request unchanged: set the credentials in __call__ (e.g. an "
            "Authorization header) and return the request"
        )

    def test_auth_check_accepts_valid_credentials(self, destination: Destination, config: dict[str, Any]) -> None:
        """``check`` makes a call with good credentials and describes the account in one line."""
        with requests.Session() as session:
            session.auth = auth = destination.auth(config)
            account = auth.check(session)
        assert isinstance(account, str) and account.strip() and "\n" not in account, (
            f"check() returned {account!r}: return a short one-line description of the account"
        )
        assert_no_secret(account, self._secrets(destination, config), "check()'s account description")

    def test_auth_check_turns_401_into_auth_error(self, destination: Destination, config: dict[str, Any]) -> None:
        """A 401 from the platform is :class:`segport.AuthError`, one line, without the secret."""
        with every_call_answers(401, {}), requests.Session() as session:
            session.auth = auth = destination.auth(config)
            with pytest.raises(AuthError) as caught:
                auth.check(session)
        self._assert_operator_message(caught.value, destination, config)
