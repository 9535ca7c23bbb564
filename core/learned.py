"""Facts a writer learns about the platform mid-run, shared by its concurrent batches.

``write_batch`` runs on several threads at once, so a writer keeps no shared mutable state: what
``prepare()`` found is fixed before the first batch. The one exception the contract allows is a
:class:`Learned` map: a thread-safe, write-once store of facts that a batch discovers and that
save later batches calls or refusals (the server has no ``/batches``; the id of a tag found by its
name). Each key is set at most once and never changes, so every batch reads either nothing or the
one value; a batch that reads nothing yet must still be right, only slower.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Learned(Generic[K, V]):
    """A write-once, thread-safe map of facts learned during one run (create it in the writer's ``__init__``).

    ``learn(key, value)`` keeps the first value a key is given and returns the value kept;
    ``get(key)`` is None until then. Nothing is ever removed or replaced.
    """

    def __init__(self) -> None:
        self._facts: dict[K, V] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """Return the value learned for ``key``, or None."""
        return self._facts.get(key)

    def learn(self, key: K, value: V) -> V:
        """Keep ``value`` for ``key`` unless a value was learned first; return the value kept."""
        with self._lock:
            return self._facts.setdefault(key, value)
