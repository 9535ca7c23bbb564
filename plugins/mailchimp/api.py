"""A thin Mailchimp Marketing API v3 client: base URL, timeouts, and error mapping.

The platform facts it relies on are in docs/providers/mailchimp.md (comments point at its headings).
Messages never hold credentials: only Mailchimp's own ``title``/``detail`` texts and our hints.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Mapping

import requests

from segport import AuthError, ConfigError, DestinationError, FatalDestinationError, RetryableDestinationError
from segport.http import json_body, json_object, retry_after

_DC = re.compile(r"-([a-z]+[0-9]+)$")


def subscriber_hash(email: str) -> str:
    """Lower-case hex MD5 of the trimmed, lower-cased email: a member's id.

    See docs/providers/mailchimp.md#subscriber-hash.
    """
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


def base_url(config: Mapping[str, Any]) -> str:
    """The API root ending in ``/3.0``: the override, the OAuth endpoint, or the key's data center.

    See docs/providers/mailchimp.md#base-url-and-data-center.
    """
    override = config.get("api_base_url") or (
        config.get("api_endpoint") if config.get("auth_method") == "oauth2" else None
    )
    if override:
        root = str(override).rstrip("/")
        return root if root.endswith("/3.0") else root + "/3.0"
    if config.get("auth_method") == "oauth2":
        raise AuthError("this Mailchimp connection has no OAuth token yet: run 'segport connections auth NAME'")
    match = _DC.search(str(config.get("api_key", "")))
    if not match:
        raise ConfigError("the Mailchimp API key has no data-center suffix ('-us19'): copy the whole key")
    return f"https://{match.group(1)}.api.mailchimp.com/3.0"


def one_line(value: Any) -> str:
    """A value from an answer as one line of text: segport's messages are one line."""
    return " ".join(str(value).split())


class Problem(DestinationError):
    """A 400/404/405 answer the caller interprets (``status``, ``title``, ``detail``, ``errors``)."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        self.status = status
        self.title = one_line(body.get("title") or "")
        self.detail = one_line(body.get("detail") or "")
        errors = body.get("errors")
        self.errors = [e for e in errors if isinstance(e, Mapping)] if isinstance(errors, list) else []
        super().__init__(f"Mailchimp answered {status} {self.title}: {self.detail}".strip())

    def field_errors(self) -> str:
        """``FIELD: message`` pairs of a validation problem."""
        return "; ".join(f"{one_line(e.get('field'))}: {one_line(e.get('message'))}" for e in self.errors)


class MailchimpAPI:
    """Calls one account's API through a session that already carries the auth handler."""

    def __init__(self, session: requests.Session, config: Mapping[str, Any]) -> None:
        self.session = session
        self.root = base_url(config)
        # Mailchimp's own limit (docs/providers/mailchimp.md#timeouts)
        self.timeout = (10.0, float(config.get("timeout_s", 120)))

    def call(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """One request; the JSON body on 2xx, None on 204; raises segport errors otherwise."""
        response = self.session.request(method, self.root + path, json=json, params=params, timeout=self.timeout)
        if response.status_code == 204:
            return None
        if response.ok:
            return json_body(response)
        raise error_for(response)

    def download(self, url: str) -> bytes:
        """GET a URL outside the API (a batch's results, on another host) *without* the credentials
        (docs/providers/mailchimp.md#batch-results).

        Errors are retryable and never name the URL: a pre-signed URL is itself a secret.
        """
        try:
            response = self.session.get(url, auth=_no_auth, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RetryableDestinationError(
                f"could not download Mailchimp's batch results ({type(exc).__name__})"
            ) from None
        if not response.ok:
            raise RetryableDestinationError(
                f"could not download Mailchimp's batch results (HTTP {response.status_code})"
            )
        return response.content


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An auth that adds nothing: overrides the session's credentials for one request."""
    return request


def error_for(response: requests.Response) -> DestinationError | AuthError:
    """Map a failed response to segport's errors (docs/providers/mailchimp.md#problem-documents)."""
    return error_from(response.status_code, json_object(response), retry_after(response))


def error_from(
    status: int, problem: Mapping[str, Any], retry_after: float | None = None
) -> DestinationError | AuthError:
    """Map a failed status and its problem document (``{}`` when none) to segport's errors.

    See docs/providers/mailchimp.md#problem-documents and docs/providers/mailchimp.md#connection-limit.
    """
    title, detail = one_line(problem.get("title", "")), one_line(problem.get("detail", ""))
    if status == 401:
        return AuthError(
            f"Mailchimp refused the credentials ({title or 'unauthorized'}): check the API key and its data-center "
            "suffix, or re-run 'segport connections auth NAME' for OAuth; then 'segport connections test NAME'"
        )
    if status == 403:
        if not problem:  # a bodiless 403 is Mailchimp's throttle (docs/providers/mailchimp.md#connection-limit)
            return RetryableDestinationError("Mailchimp throttled the request (403 without a body)")
        return AuthError(f"Mailchimp forbids this ({title}: {detail}); check the account's permissions and status")
    if status == 429 or status >= 500:
        return RetryableDestinationError(f"Mailchimp answered {status} {title}".strip(), retry_after=retry_after)
    if status in (400, 404, 405):
        return Problem(status, problem)
    return FatalDestinationError(f"Mailchimp answered {status} {title}: {detail}".strip())

