"""The per-credential governor: at most ``limit`` platform calls in flight per credential.

Two implementations behind one function, :func:`governor`, whose result is a context manager
holding one slot for the duration of a ``with`` block:

- by default a ``threading.BoundedSemaphore`` per credential, shared by every run of this process;
- with ``SEGPORT_REDIS_URL`` set (or ``SEGPORT_BROKER_URL`` when it is a ``redis://`` URL), a
  semaphore in Redis shared by every process and machine using that Redis, so workers together
  never exceed a platform's connection limit.

The Redis semaphore is a sorted set of leases per credential, scored by their expiry (Redis server
time, so clocks of the workers do not matter). A Lua script drops the expired leases and adds one if
fewer than ``limit`` remain, atomically. A background thread renews the leases this process holds
every ``ttl / 3`` seconds, so a lease outlives a long call, but the lease of a killed process expires
after ``ttl`` seconds and its slot comes back. Keys carry a hash of the credential, never a secret.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
import uuid
from contextlib import AbstractContextManager
from typing import Any

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from .errors import ConfigError, ExecutorError
from .extras import install_hint
from .urls import without_password

REDIS_ENV = "SEGPORT_REDIS_URL"
BROKER_ENV = "SEGPORT_BROKER_URL"
TTL_ENV = "SEGPORT_GOVERNOR_TTL"
DEFAULT_TTL = 10.0
# A call's slot is kept this long after its answer was read: a server may count the call in flight
# until its handler returns, a moment after the last byte, and the next call must not overlap it.
RELEASE_GRACE_S = 0.01
KEY_PREFIX = "segport:governor:"

Gate = AbstractContextManager[object]
"""One slot of a credential's governor, held for the duration of a ``with`` block (thread-safe)."""

log = logging.getLogger(__name__)

_local: dict[str, threading.BoundedSemaphore] = {}
_local_lock = threading.Lock()
_shared: dict[tuple[int, str], RedisGovernor] = {}

# KEYS[1]: the lease set. ARGV: token, limit, ttl (ms). Returns 1 when a lease was taken.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[3]))
  return 1
end
return 0
"""
# KEYS: lease sets; ARGV: ttl (ms), then one token per key. Returns how many leases were still held.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local kept = 0
for i, key in ipairs(KEYS) do
  if redis.call('ZSCORE', key, ARGV[i + 1]) then
    redis.call('ZADD', key, 'XX', now + ttl, ARGV[i + 1])
    redis.call('PEXPIRE', key, 2 * ttl)
    kept = kept + 1
  end
end
return kept
"""


def redis_url() -> str | None:
    """Return the Redis the governor shares: ``SEGPORT_REDIS_URL``, else a ``redis://`` broker URL, else None."""
    url = os.environ.get(REDIS_ENV) or ""
    if not url:
        broker = os.environ.get(BROKER_ENV) or ""
        url = broker if broker.startswith(("redis://", "rediss://")) else ""
    return url or None


def governor(credential: str, limit: int) -> Gate:
    """Return the governor of one credential (``type:hash``).

    It is shared through Redis when configured, else process-wide (where the first caller's limit holds).
    """
    url = redis_url()
    if url is None:
        with _local_lock:
            found = _local.get(credential)
            if found is None:
                found = _local[credential] = threading.BoundedSemaphore(limit)
            return found
    return RedisGovernor.for_url(url).slot(credential, limit)


def key_for(credential: str) -> str:
    """Return the Redis key of a credential's leases: a hash, so no credential text reaches Redis."""
    return KEY_PREFIX + hashlib.sha256(credential.encode()).hexdigest()[:32]


class RedisGovernor:
    """The leases one process holds in one Redis, and the thread renewing them."""

    def __init__(self, url: str, ttl: float | None = None) -> None:
        try:
            import redis
        except ImportError as exc:
            needs = install_hint(exc, "workers")
            raise ConfigError(f"{REDIS_ENV} or a redis:// {BROKER_ENV} is set, but {needs}") from None
        self.url = url
        self.ttl = ttl or float(os.environ.get(TTL_ENV) or DEFAULT_TTL)
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._acquire = self.client.register_script(_ACQUIRE)
        self._renew = self.client.register_script(_RENEW)
        self._held: dict[str, str] = {}  # token -> key
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None

    @classmethod
    def for_url(cls, url: str) -> RedisGovernor:
        """One instance per process and URL (a forked worker makes its own)."""
        with _local_lock:
            found = _shared.get((os.getpid(), url))
            if found is None:
                found = _shared[(os.getpid(), url)] = cls(url)
            return found

    def slot(self, credential: str, limit: int) -> RedisSlot:
        """Return a gate holding one of ``limit`` leases of ``credential`` per call."""
        return RedisSlot(self, key_for(credential), limit)

    def acquire(self, key: str, limit: int) -> str:
        """Wait for a lease on ``key``; returns its token."""
        token = uuid.uuid4().hex
        ttl_ms = str(int(self.ttl * 1000))
        pause = 0.005
        while True:
            if self._call(self._acquire, [key], [token, str(limit), ttl_ms]):
                with self._lock:
                    self._held[token] = key
                    self._start_renewer()
                return token
            time.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, 0.1)

    def release(self, key: str, token: str) -> None:
        """Give back the lease ``token`` on ``key``."""
        with self._lock:
            self._held.pop(token, None)
        self._call(lambda keys, args: self.client.zrem(keys[0], *args), [key], [token])

    def renew(self) -> None:
        """Push back the expiry of every lease this process holds."""
        with self._lock:
            held = list(self._held.items())
        if not held:
            return
        kept = self._call(
            self._renew, [key for _, key in held], [str(int(self.ttl * 1000)), *(token for token, _ in held)]
        )
        if kept < len(held):
            log.warning(
                "%d governor lease(s) expired before renewal (a pause longer than %ss)", len(held) - kept, self.ttl
            )

    def _start_renewer(self) -> None:
        if self._renewer is None or not self._renewer.is_alive():
            self._renewer = threading.Thread(target=self._renew_loop, name="segport-governor", daemon=True)
            self._renewer.start()

    def _renew_loop(self) -> None:
        while True:
            time.sleep(self.ttl / 3)
            try:
                self.renew()
            except ExecutorError as exc:
                log.warning("%s", exc)

    def _call(self, script: Any, keys: list[str], args: list[str]) -> int:
        import redis

        try:
            return int(script(keys=keys, args=args))
        except redis.RedisError:
            shown = without_password(self.url, "***")
            raise ExecutorError(
                f"the concurrency governor cannot reach Redis ({shown}): start Redis, or fix {REDIS_ENV} / {BROKER_ENV}"
            ) from None


class RedisSlot:
    """One credential's governor in Redis as a context manager (tokens kept per thread)."""

    def __init__(self, owner: RedisGovernor, key: str, limit: int) -> None:
        self.owner, self.key, self.limit = owner, key, limit
        self._tokens = threading.local()

    def __enter__(self) -> RedisSlot:
        stack: list[str] = self._tokens.__dict__.setdefault("stack", [])
        stack.append(self.owner.acquire(self.key, self.limit))
        return self

    def __exit__(self, *exc: object) -> None:
        self.owner.release(self.key, self._tokens.stack.pop())


class GovernedAdapter(HTTPAdapter):
    """A ``requests`` transport adapter holding one slot of ``gate`` for each call.

    The slot is held from sending the request until the whole answer is read, so the calls a
    platform sees in flight never pass the limit, whatever a plugin does inside one batch (several
    calls, parallel pre-flight reads).
    """

    def __init__(self, gate: Gate, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:  # type: ignore[override]
        """Send the request holding a slot of the gate until its answer is read."""
        with self.gate:
            response = super().send(request, **kwargs)
            if not kwargs.get("stream"):
                _ = response.content  # the server counts the call until its answer is sent: read it all
            time.sleep(RELEASE_GRACE_S)  # and until its handler ends, just after its last byte
            return response
