"""The SDK's HTTP layer for destination plugins: one API client class and a few helpers.

:class:`ApiClient` calls one platform's API through the session the engine gives a writer. That
session already carries the auth handler, holds a slot of the credential's call governor for each
call and counts the calls of the pre-flight; the client adds what every plugin otherwise writes
again: base-URL joining, timeouts, JSON in and out, status-to-error mapping with hooks a plugin
overrides for its platform's error bodies, one-line messages that name the call and never a
secret, and parallel pre-flight reads (:meth:`ApiClient.gather`) without a thread pool of the
plugin's own.
"""

from __future__ import annotations

import json
import math
import socket
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence, cast
from urllib.parse import quote, urlsplit

import requests

from .errors import AuthError, FatalDestinationError, PlatformUnreachable, RetryableDestinationError, SegportError

# Failures of the transport, not of the request: the call may be tried again (a reset, a timeout,
# an answer cut in the middle of its body).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
MASK = "********"  # what a secret quoted by a platform's answer becomes in a message
_UNREACHABLE_HINT = "check the network (and any proxy) and the connection's base URL, then try again"


def json_body(response: requests.Response) -> Any:
    """Return the response's JSON document, or None when it has no body or the body is not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except (ValueError, RecursionError):  # not JSON, or nested beyond what the parser follows
        return None


def json_object(response: requests.Response) -> dict[str, Any]:
    """Return the response's JSON object, or ``{}`` for anything else (error bodies vary by platform)."""
    body = json_body(response)
    return body if isinstance(body, dict) else {}


def retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds; None when absent, an HTTP date, or not a finite, non-negative number."""
    value = response.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def one_line(value: Any, limit: int | None = None) -> str:
    """Return a value from an answer as one line of text (segport's messages are one line), cut to ``limit``."""
    text = " ".join(str(value).split())
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def unreachable(exc: Exception, platform: str = "the platform", call: str = "", url: str = "") -> PlatformUnreachable:
    """Return a transport failure as one line naming the host, the call and what failed, and the fix.

    The error is a :class:`PlatformUnreachable` (retried by the engine, exit status 15 in the CLI) and
    still an instance of ``exc``'s own ``requests`` class, so ``except requests.ConnectionError`` or
    ``except TRANSPORT_ERRORS`` keep catching it. ``url`` names the host when the exception has no
    request; the host is named without the path, query or any user info.
    """
    if isinstance(exc, PlatformUnreachable):
        return exc
    request = getattr(exc, "request", None)
    host = _host_of(getattr(request, "url", None) or url)
    where = f" at {host}" if host else ""
    on = f" on {call}" if call else ""
    message = f"cannot reach {platform}{where}{on} ({_transport_reason(exc)}): {_UNREACHABLE_HINT}"
    error = _unreachable_type(type(exc))(message)
    cast(Any, error).request, cast(Any, error).response = request, getattr(exc, "response", None)
    return error


_UNREACHABLE_TYPES: dict[type[Exception], type[PlatformUnreachable]] = {}


def _unreachable_type(kind: type[Exception]) -> type[PlatformUnreachable]:
    """Return the subclass of both :class:`PlatformUnreachable` and ``kind`` (one per ``requests`` class).

    It keeps ``kind``'s name: code that names the failure by ``type(exc).__name__`` says the same as before.
    """
    made = _UNREACHABLE_TYPES.get(kind)
    if made is None:
        namespace = {"__module__": __name__}
        made = cast(type[PlatformUnreachable], type(kind.__name__, (PlatformUnreachable, kind), namespace))
        made = _UNREACHABLE_TYPES.setdefault(kind, made)
    return made


def _host_of(url: str | None) -> str:
    """Return ``host[:port]`` of a URL (never its user info, path or query); ``""`` when it has none."""
    try:
        parts = urlsplit(url or "")
        host, port = parts.hostname, parts.port
    except ValueError:  # a port that is not a number
        return ""
    return f"{host}:{port}" if host and port else host or ""


def _transport_reason(exc: BaseException) -> str:
    """Say in a few words what failed in the transport: DNS, refused, reset, TLS, timeout or a cut answer."""
    if isinstance(exc, requests.exceptions.SSLError):
        return "the TLS handshake failed" + (
            ": its certificate is not trusted" if "CERTIFICATE_VERIFY_FAILED" in str(exc) else ""
        )
    if isinstance(exc, requests.exceptions.ProxyError):
        return "the proxy failed or refused the connection"
    if isinstance(exc, requests.ConnectTimeout):
        return "no connection within the timeout"
    if isinstance(exc, requests.Timeout):
        return "no answer within the timeout"
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return "its answer was cut off"
    causes = list(_causes(exc))
    text = " ".join(str(cause) for cause in causes)
    if any(isinstance(c, socket.gaierror) for c in causes) or any(
        mark in text for mark in ("NameResolutionError", "Name or service not known", "getaddrinfo", "nodename nor")
    ):
        return "its name does not resolve (DNS)"
    if any(isinstance(c, ConnectionRefusedError) for c in causes) or "Connection refused" in text:
        return "the connection was refused"
    if any(isinstance(c, ConnectionResetError) for c in causes) or "reset" in text.lower() or "aborted" in text:
        return "the connection was reset"
    return f"network error: {type(exc).__name__}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (arguments, urllib3's ``reason``, causes), a few levels deep."""
    todo, seen = [exc], 0
    while todo and seen < 20:
        current = todo.pop()
        seen += 1
        yield current
        linked = [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
        todo.extend(item for item in linked if isinstance(item, BaseException))


def authorization_code_form(config: Mapping[str, Any], code: str, redirect_uri: str) -> dict[str, str]:
    """Return the token request body of the authorization-code grant (RFC 6749, 4.1.3), client secret included."""
    return {
        "grant_type": "authorization_code",
        "client_id": str(config["client_id"]),
        "client_secret": str(config["client_secret"]),
        "redirect_uri": redirect_uri,
        "code": code,
    }


class ApiError(FatalDestinationError):
    """A call the platform refused with an answer the caller may interpret (a 404 of a lookup, a 400).

    Fatal when nobody interprets it. ``status`` is the HTTP status, ``call`` the call as
    ``METHOD /path/{template}``, ``body`` the answer's JSON object (``{}`` when none) and ``detail``
    the platform's own words about it, one line, secrets masked (``""`` when none).
    """

    def __init__(self, message: str, *, status: int, call: str, body: Mapping[str, Any], detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.call = call
        self.body = body
        self.detail = detail


class ApiClient:
    """Calls one platform's API through the engine's session; subclass it once per platform.

    :param session: the writer's (or auth check's) session: it carries the auth handler.
    :param base_url: the API root every path is joined to (a trailing ``/`` is dropped).
    :param timeout: (connect, read) seconds of every call.
    :param secrets: values masked wherever an answer quotes them in a message (keys, tokens).

    Hooks a subclass overrides: :attr:`platform` (its name in messages), :attr:`auth_hint` (what to
    do after a 401), :attr:`path_suffix`, :attr:`follow_redirects`, :meth:`describe` (the platform's
    error body in a few words), :meth:`error` (status to error), :meth:`send` (one HTTP exchange,
    e.g. to refresh a token).
    """

    platform: ClassVar[str] = "the platform"
    path_suffix: ClassVar[str] = ""  # appended to every path (".json" for an API whose routes all end so)
    follow_redirects: ClassVar[bool] = True  # False: a redirect is an error (it would carry the credentials on)
    auth_hint: ClassVar[str] = "check the connection's credentials, then run 'segport connections test NAME'"

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        *,
        timeout: tuple[float, float] = (10.0, 60.0),
        secrets: Iterable[Any] = (),
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._secrets = tuple(str(value) for value in secrets if value)

    # -- calls ------------------------------------------------------------------------------------
    def call(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None, **values: Any
    ) -> Any:
        """One request; the JSON answer of a success (None for a 204, an empty or a non-JSON body).

        ``path`` is a template whose ``{names}`` take ``values``, each quoted as one path segment:
        ``call("GET", "/lists/{list_id}", list_id=x)``. Messages name the template, never the values.
        ``json`` is sent as compact UTF-8 JSON. An answer that is not a success raises :meth:`error`;
        transport errors (:data:`TRANSPORT_ERRORS`) propagate as :func:`unreachable` made them (one line
        naming the host and the call, still of their ``requests`` class): the engine retries them.
        """
        response = self.request(method, path, json=json, params=params, **values)
        return None if response.status_code == 204 else json_body(response)

    def request(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None, **values: Any
    ) -> requests.Response:
        """Like :meth:`call`, but the successful answer itself (when its status or headers matter)."""
        target = path.format_map({k: quote(str(v), safe="") for k, v in values.items()}) if values else path
        body = None if json is None else encode_json(json)
        url = f"{self.base_url}{target}{self.path_suffix}"
        try:
            response = self.send(method, url, body=body, params=params)
        except TRANSPORT_ERRORS as exc:
            if isinstance(exc, PlatformUnreachable):  # a nested call named it already
                raise
            raise unreachable(exc, self.platform, self.name(method, path), url) from exc
        if response.status_code < (400 if self.follow_redirects else 300):  # a redirect without a Location: as is
            return response
        raise self.error(response, self.name(method, path))

    def send(
        self, method: str, url: str, *, body: bytes | None = None, params: Mapping[str, Any] | None = None
    ) -> requests.Response:
        """One HTTP exchange through the session (the hook for a platform that refreshes tokens)."""
        headers = {"Content-Type": "application/json"} if body is not None else None
        return self.session.request(
            method,
            url,
            data=body,
            params=params,
            headers=headers,
            timeout=self.timeout,
            allow_redirects=self.follow_redirects,
        )

    def name(self, method: str, path: str) -> str:
        """Return the call as messages name it: ``GET /lists/{list_id}.json``."""
        return f"{method} {path}{self.path_suffix}"

    def gather(self, calls: Sequence[Callable[[], Any]], *, parallel: int = 4) -> list[Future[Any]]:
        """Run ``calls`` at once, at most ``parallel`` at a time; return their futures once all answered.

        ``calls`` are e.g. ``functools.partial(client.call, "GET", ...)``; the futures come in order.

        For a pre-flight of independent reads: the plugin then needs no thread pool of its own. Each
        call still holds a slot of the credential's call governor, like any call.
        """
        if not calls:
            return []
        with ThreadPoolExecutor(min(len(calls), parallel), thread_name_prefix="segport-gather") as pool:
            return [pool.submit(call) for call in calls]

    # -- errors -----------------------------------------------------------------------------------
    def error(self, response: requests.Response, call: str) -> SegportError:
        """Return the error for an answer that is not 2xx; override for a platform's own rules.

        401 → :class:`AuthError`; 429 and 5xx → :class:`RetryableDestinationError` carrying
        Retry-After; anything else (403, 404, other 4xx, a redirect) → :class:`ApiError` (fatal
        unless the caller interprets it).
        """
        status, body = response.status_code, json_object(response)
        detail = self.detail(body)
        if status == 401:
            return AuthError(f"{self.platform} refused the credentials on {call}{_wrapped(detail)}: {self.auth_hint}")
        if status == 429 or status >= 500:
            return RetryableDestinationError(self.answered(status, call, detail), retry_after=retry_after(response))
        return ApiError(self.answered(status, call, detail), status=status, call=call, body=body, detail=detail)

    def answered(self, status: int, call: str, detail: str = "") -> str:
        """``<platform> answered <status> on <call> (<detail>)``: the one-line message of a refused call."""
        return f"{self.platform} answered {status} on {call}{_wrapped(detail)}"

    def detail(self, body: Mapping[str, Any]) -> str:
        """:meth:`describe` of an error body as one line, secrets masked."""
        return self.mask(one_line(self.describe(body)))

    def describe(self, body: Mapping[str, Any]) -> str:
        """Return the platform's own words about a failed call, from its JSON error body (``""`` for none).

        Override for a platform's error shape (e.g. ``code 101: Invalid ListID``); the default takes
        the first text of ``message``, ``error``, ``detail`` or ``title``.
        """
        for key in ("message", "error", "detail", "title"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value
        return ""

    def mask(self, text: str) -> str:
        """``text`` with every secret given to the client replaced by ``********``."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


def encode_json(document: Any) -> bytes:
    """Encode a JSON request body: compact UTF-8, values JSON cannot hold as their text (dates, decimals)."""
    return json.dumps(document, separators=(",", ":"), allow_nan=False, default=str).encode("utf-8")


def _wrapped(detail: str) -> str:
    return f" ({detail})" if detail else ""
