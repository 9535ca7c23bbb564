"""The server's open workspaces: one per request in flight, each acting as that request's user.

A :class:`~segport.Workspace` holds one database connection and one acting user, so a request takes
one from the pool for its whole life and gives it back (its user and client address cleared). The
workspaces share the plugin registry and hook manager, loaded once.
"""

from __future__ import annotations

import queue
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..executor import Executor
from ..workspace import Workspace


class Workspaces:
    """At most ``size`` open workspaces over one folder and database, handed out one request at a time.

    :param home: the workspace folder.
    :param database_url: its database (None: ``SEGPORT_DATABASE_URL``, else the folder's SQLite file).
    :param executor: the Celery executor, when a broker is configured.
    """

    def __init__(
        self, home: Path, database_url: str | None = None, *, executor: Executor | None = None, size: int = 8
    ) -> None:
        self.home = home
        self.database_url = database_url
        self.executor = executor
        self._idle: queue.LifoQueue[Workspace] = queue.LifoQueue()
        self._open: list[Workspace] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._first = self.open(None)  # opens (and migrates) once at start: a wrong folder fails the server's start
        self._idle.put(self._first)

    def open(self, user: str | None) -> Workspace:
        """Open one more workspace acting as ``user`` (the hook manager and registry shared)."""
        first = getattr(self, "_first", None)
        ws = Workspace.open(
            self.home,
            user,
            database_url=self.database_url,
            executor=self.executor,
            **({"registry": first.registry, "pm": first.pm} if first is not None else {}),
        )
        with self._lock:
            self._open.append(ws)
        return ws

    @property
    def first(self) -> Workspace:
        """The workspace opened at start (its registry and hook manager are everyone's)."""
        return self._first

    @contextmanager
    def acting(self, user: str | None, *, client: str | None) -> Iterator[Workspace]:
        """Lend a workspace acting as ``user``, its audit entries naming ``client``; waits while all are lent."""
        self._slots.acquire()
        try:
            try:
                ws = self._idle.get_nowait()
            except queue.Empty:
                ws = self.open(None)
            ws.context.user_name = user
            ws.store.audit_client = client
            try:
                yield ws
            finally:
                ws.context.user_name = None
                ws.store.audit_client = None
                self._idle.put(ws)
        finally:
            self._slots.release()

    def close(self) -> None:
        """Close every workspace opened (a request after this opens a new one)."""
        with self._lock:
            opened, self._open = self._open, []
            while not self._idle.empty():
                self._idle.get_nowait()
        for ws in opened:
            ws.close()
