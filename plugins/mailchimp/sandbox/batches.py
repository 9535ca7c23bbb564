"""Batch operations of the Mailchimp sandbox: ``/batches`` queued and run one at a time.

A worker thread takes the account's batches in submission order (Mailchimp runs one batch at a
time per account, docs/providers/mailchimp.md#one-batch-at-a-time), waits one latency period, runs every
operation through a callback (the sandbox routes it to the same handlers as a direct call), then
stores the results as a gzipped tar of JSON array files, each item ``{status_code, operation_id,
response}`` with ``response`` a JSON string (docs/providers/mailchimp.md#batch-results). States: ``pending``
-> ``started`` -> ``finished``.
"""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from .state import JSON, invalid, not_found, now_iso

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")  # (docs/providers/mailchimp.md#batch-operations-request)
RESULTS_PER_FILE = 200  # results are split over several JSON files in the archive (file size UNCONFIRMED)
_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "integer", float: "number", bool: "boolean"}


def json_name(value: Any) -> str:
    """Return the JSON type name of a decoded value (for "Schema describes …" messages, pacely/mailchimp-api-v3#17)."""
    return "null" if value is None else _JSON_NAMES.get(type(value), type(value).__name__)


def check_operations(body: JSON) -> list[JSON]:
    """Return the ``operations`` of a ``POST /batches`` body, or raise 400 Invalid Resource naming each wrong field.

    See docs/providers/mailchimp.md#batch-operations-request.
    """
    operations = body.get("operations")
    if not isinstance(operations, list):
        raise invalid([("operations", f"Schema describes array, {json_name(operations)} found instead")])
    problems: list[tuple[str, str]] = []
    for i, op in enumerate(operations):
        where = f"operations.item:{i}"  # (docs/providers/mailchimp.md#problem-documents)
        if not isinstance(op, dict):
            problems.append((where, f"Schema describes object, {json_name(op)} found instead"))
            continue
        if op.get("method") not in METHODS:
            problems.append((f"{where}.method", "Value is not one of the enum values: " + ", ".join(METHODS)))
        path = op.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            problems.append((f"{where}.path", "A path relative to the API root is required, such as /lists/abc."))
        for name, kind in (("body", str), ("params", dict), ("operation_id", str)):
            if name in op and not isinstance(op[name], kind):  # `body` is a JSON *string*
                problems.append(
                    (f"{where}.{name}", f"Schema describes {_JSON_NAMES[kind]}, {json_name(op[name])} found instead")
                )
    if problems:
        raise invalid(problems)
    return operations


@dataclass
class Batch:
    """One submitted batch: its operations, progress and, once finished, its results archive."""

    id: str
    operations: list[JSON]
    submitted_at: str
    token: str  # the results URL's signature: the URL is a credential of its own
    status: str = "pending"
    finished: int = 0
    errored: int = 0
    completed_at: str = ""
    archive: bytes | None = None
    url: str = ""
    cancelled: bool = field(default=False, repr=False)

    def json(self) -> JSON:
        """Return the batch resource (docs/providers/mailchimp.md#batch-status)."""
        return {
            "id": self.id,
            "status": self.status,
            "total_operations": len(self.operations),
            "finished_operations": self.finished,
            "errored_operations": self.errored,
            "submitted_at": self.submitted_at,
            "completed_at": self.completed_at,
            "response_body_url": self.url,
            "_links": [],
        }


Execute = Callable[[JSON], tuple[int, str]]  # one operation -> (status_code, response as a JSON string)


class BatchQueue:
    """One account's batches and the worker thread that runs them in order.

    :param execute: runs one operation against the sandbox's state.
    :param pause: called once per batch before it runs (the sandbox's latency).
    :param results_url: ``(batch id, token)`` -> the absolute URL of the results archive.
    """

    def __init__(self, execute: Execute, pause: Callable[[], None], results_url: Callable[[str, str], str]) -> None:
        self.execute, self.pause, self.results_url = execute, pause, results_url
        self._batches: dict[str, Batch] = {}  # in submission order
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False

    def submit(self, operations: list[JSON]) -> JSON:
        """Queue a batch of ``operations`` (starting the worker if needed); return its resource."""
        batch = Batch(secrets.token_hex(5), operations, now_iso(), secrets.token_urlsafe(18))
        with self._cond:
            self._batches[batch.id] = batch
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                self._thread = threading.Thread(target=self._work, name="mailchimp-sandbox-batches", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return batch.json()

    def get(self, batch_id: str) -> JSON:
        """Return the resource of batch ``batch_id``; 404 when it is unknown."""
        with self._cond:
            return self._find(batch_id).json()

    def page(self, count: int, offset: int) -> JSON:
        """Return one page of the batches, in submission order, as ``GET /batches`` answers."""
        with self._cond:
            batches = [b.json() for b in self._batches.values()]
        return {"batches": batches[offset : offset + count], "total_items": len(batches), "_links": []}

    def delete(self, batch_id: str) -> None:
        """Stop a batch; its results (even of finished operations) become unavailable.

        See docs/providers/mailchimp.md#batch-status.
        """
        with self._cond:
            self._find(batch_id).cancelled = True
            del self._batches[batch_id]

    def archive(self, batch_id: str, token: str) -> bytes | None:
        """Return the results archive, or None for an unknown batch, a wrong token or unfinished work."""
        with self._cond:
            batch = self._batches.get(batch_id)
            if batch is None or batch.archive is None or not secrets.compare_digest(batch.token, token):
                return None
            return batch.archive

    def busy(self) -> bool:
        """Whether a batch is pending or running."""
        with self._cond:
            return any(b.status in ("pending", "started") for b in self._batches.values())

    def dump(self) -> list[JSON]:
        """Return every batch resource, for the sandbox's state."""
        with self._cond:
            return [b.json() for b in self._batches.values()]

    def reset(self) -> None:
        """Cancel and forget every batch."""
        with self._cond:
            for batch in self._batches.values():
                batch.cancelled = True
            self._batches.clear()

    def close(self) -> None:
        """Stop the worker (after the operation it is running)."""
        with self._cond:
            self._closing = True
            for batch in self._batches.values():
                batch.cancelled = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(5)

    # -- the worker --------------------------------------------------------------------------------------

    def _find(self, batch_id: str) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise not_found()
        return batch

    def _next(self) -> Batch | None:
        with self._cond:
            while not self._closing:
                batch = next((b for b in self._batches.values() if b.status == "pending"), None)
                if batch is not None:
                    batch.status = "started"
                    return batch
                self._cond.wait()
            return None

    def _work(self) -> None:
        while (batch := self._next()) is not None:
            self.pause()  # roughly one latency period per batch, not per operation
            results: list[JSON] = []
            for op in batch.operations:
                if batch.cancelled:
                    break
                status, response = self.execute(op)
                results.append({"status_code": status, "operation_id": op.get("operation_id"), "response": response})
                with self._cond:
                    batch.finished += 1
                    batch.errored += status >= 400
            archive = _tar(batch.id, results)
            with self._cond:
                if not batch.cancelled:
                    batch.archive, batch.url = archive, self.results_url(batch.id, batch.token)
                    batch.status, batch.completed_at = "finished", now_iso()


def _tar(batch_id: str, results: list[JSON]) -> bytes:
    """Return a gzipped tar of JSON array files (``<id>/<n>.json``) (docs/providers/mailchimp.md#batch-results)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for n, start in enumerate(range(0, len(results), RESULTS_PER_FILE)):
            data = json.dumps(results[start : start + RESULTS_PER_FILE]).encode("utf-8")
            info = tarfile.TarInfo(f"{batch_id}/{n}.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
