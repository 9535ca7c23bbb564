"""A thin Mailchimp Marketing API v3 client: base URL, timeouts, and error mapping.

The platform facts it relies on are in docs/providers/mailchimp.md (comments point at its headings).
Messages never hold credentials: only Mailchimp's own ``title``/``detail`` texts and our hints.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Mapping

import requests

from segport import AuthError, ConfigError, RetryableDestinationError, SegportError
from segport.http import ApiClient, ApiError, json_object, one_line, retry_after

_DC = re.compile(r"-([a-z]+[0-9]+)$")
SECRETS = ("api_key", "access_token")  # masked if an answer quotes them
MEMBER = "/lists/{list_id}/members/{subscriber_hash}"


def subscriber_hash(email: str) -> str:
    """Lower-case hex MD5 of the trimmed, lower-cased email: a member's id.

    See docs/providers/mailchimp.md#subscriber-hash.
    """
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


def as_object(answer: Any) -> Mapping[str, Any]:
    """Return an answer that should be an object; anything else (a list, text, null) holds nothing."""
    return answer if isinstance(answer, Mapping) else {}


def objects_in(value: Any) -> list[Mapping[str, Any]]:
    """Return the objects in a list of an answer; anything else holds none."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def base_url(config: Mapping[str, Any]) -> str:
    """Return the API root ending in ``/3.0``: the override, the OAuth endpoint, or the key's data center.

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


class Problem(ApiError):
    """A 400/404/405 answer the caller interprets (``status``, ``title``, ``detail``, ``errors``)."""

    def __init__(self, status: int, body: Mapping[str, Any], call: str = "") -> None:
        self.title = one_line(body.get("title") or "")
        errors = body.get("errors")
        self.errors = [e for e in errors if isinstance(e, Mapping)] if isinstance(errors, list) else []
        detail = one_line(body.get("detail") or "")
        message = f"Mailchimp answered {status} {self.title}{_on(call)}: {detail}".strip()
        super().__init__(message, status=status, call=call, body=body, detail=detail)

    def field_errors(self) -> str:
        """``FIELD: message`` pairs of a validation problem."""
        return "; ".join(f"{one_line(e.get('field'))}: {one_line(e.get('message'))}" for e in self.errors)


class MailchimpAPI(ApiClient):
    """Calls one account's API through a session that already carries the auth handler."""

    platform = "Mailchimp"

    def __init__(self, session: requests.Session, config: Mapping[str, Any]) -> None:
        super().__init__(
            session,
            base_url(config),
            # Mailchimp's own limit is 120 s (docs/providers/mailchimp.md#timeouts).
            timeout=(10.0, float(config.get("timeout_s", 120))),
            secrets=[config.get(name) for name in SECRETS],
        )

    def describe(self, body: Mapping[str, Any]) -> str:
        """Return a problem document's ``title: detail`` (docs/providers/mailchimp.md#problem-documents)."""
        return ": ".join(one_line(body.get(key) or "") for key in ("title", "detail") if body.get(key))

    def error(self, response: requests.Response, call: str) -> SegportError:
        """Mailchimp's mapping of a failed call; texts it quotes lose any secret.

        See docs/providers/mailchimp.md#problem-documents.
        """
        problem = json_object(response)
        for key in ("title", "detail"):
            if problem.get(key):
                problem[key] = self.mask(one_line(problem[key]))
        return error_from(response.status_code, problem, retry_after(response), call)

    def download(self, url: str) -> bytes:
        """GET a URL outside the API (a batch's results, on another host) *without* the credentials.

        See docs/providers/mailchimp.md#batch-results.

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
    """Add nothing to a request: an auth that overrides the session's credentials for one request."""
    return request


def _on(call: str) -> str:
    return f" on {call}" if call else ""


def error_from(
    status: int, problem: Mapping[str, Any], retry_after: float | None = None, call: str = ""
) -> SegportError:
    """Map a failed status and its problem document (``{}`` when none) to segport's errors.

    ``call`` names the call in the message (``POST /batches``); a batch operation's result has none.
    See docs/providers/mailchimp.md#problem-documents and docs/providers/mailchimp.md#connection-limit.
    """
    title, detail = one_line(problem.get("title", "")), one_line(problem.get("detail", ""))
    if status == 401:
        return AuthError(
            f"Mailchimp refused the credentials{_on(call)} ({title or 'unauthorized'}): check the API key and its "
            "data-center suffix, or re-run 'segport connections auth NAME' for OAuth; then "
            "'segport connections test NAME'"
        )
    if status == 403:
        # A bodiless 403 is Mailchimp's throttle at high volume (docs/providers/mailchimp.md#connection-limit).
        if not problem:
            return RetryableDestinationError(f"Mailchimp throttled the request{_on(call)} (403 without a body)")
        return AuthError(
            f"Mailchimp forbids this{_on(call)} ({title}: {detail}); check the account's permissions and status"
        )
    if status == 429 or status >= 500:
        return RetryableDestinationError(
            f"Mailchimp answered {status} {title}".strip() + _on(call), retry_after=retry_after
        )
    if status in (400, 404, 405):
        return Problem(status, problem, call)
    return ApiError(
        f"Mailchimp answered {status} {title}{_on(call)}: {detail}".strip(),
        status=status,
        call=call,
        body=problem,
        detail=detail,
    )
