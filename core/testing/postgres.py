"""A throwaway PostgreSQL cluster for tests: ``initdb`` in a temporary folder, a free loopback port.

::

    cluster = PostgresCluster.start()          # raises PostgresUnavailable without the server binaries
    url = cluster.create_database()             # a fresh, empty database (from template0)
    ...
    cluster.drop_database(url)
    cluster.stop()

The binaries come from ``$PG_BINDIR`` (only), else ``pg_config --bindir`` or ``/usr/lib/postgresql/*/bin``. As root
(``initdb`` refuses root) the server runs as the ``postgres`` user. ``fsync`` is off: this is for
tests only. The superuser ``segport`` has password :data:`PASSWORD` over TCP (scram), so tests can
check a wrong password too.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from .ports import free_port

USER = "segport"
PASSWORD = "segport-test-pw"
_NAMES = itertools.count(1)


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries (or psycopg) are not installed."""


def find_bindir() -> Path | None:
    """Where ``initdb``, ``pg_ctl`` and ``postgres`` are, or None."""
    if os.environ.get("PG_BINDIR"):  # this one only
        bindir = Path(os.environ["PG_BINDIR"])
        return bindir if (bindir / "initdb").is_file() else None
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            candidates.append(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip())
        except OSError:
            pass
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    return None


class PostgresCluster:
    """One running test cluster (see the module docstring)."""

    def __init__(self, bindir: Path, root: Path, port: int, as_user: list[str]) -> None:
        self.bindir, self.root, self.port, self._as = bindir, root, port, as_user
        self.data = root / "data"

    @classmethod
    def start(cls) -> PostgresCluster:
        """Initialise and start a new cluster; raise :class:`PostgresUnavailable` without psycopg or the binaries."""
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise PostgresUnavailable("psycopg is not installed (pip install 'segport[postgres]')") from None
        bindir = find_bindir()
        if bindir is None:
            raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl): install postgresql")
        root = Path(tempfile.mkdtemp(prefix="segport-pg-"))
        as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            account = pwd.getpwnam("postgres")
            os.chown(root, account.pw_uid, account.pw_gid)
            as_user = ["runuser", "-u", "postgres", "--"]
        cluster = cls(bindir, root, free_port(), as_user)
        try:
            cluster._init()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self._as, *args], capture_output=True, text=True, cwd=self.root)
        if result.returncode:
            raise PostgresUnavailable(f"{Path(args[0]).name} failed: {(result.stderr or result.stdout).strip()[-800:]}")

    def _init(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as:
            shutil.chown(pwfile, "postgres")
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data), "-U", USER, f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
            "-l", str(self.root / "server.log"), "-o", options,
        )  # fmt: skip

    def url(self, database: str = "postgres", *, password: str = PASSWORD) -> str:
        """Return the URL of ``database`` on this cluster, as the superuser with ``password``."""
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create a new empty database and return its URL."""
        from ..store.postgres import create_database

        name = name or f"t{os.getpid()}_{next(_NAMES)}"
        create_database(self.url(), name)
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database` (connections still open are closed)."""
        from ..store.postgres import drop_database

        drop_database(self.url(), urlsplit(url).path.lstrip("/"))

    def stop(self) -> None:
        """Stop the server (immediate shutdown) and remove the cluster's folder."""
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*self._as, str(self.bindir / "pg_ctl"), "stop", "-m", "immediate", "-D", str(self.data)],
                capture_output=True,
            )
        for _ in range(50):  # the server's files are gone once it stopped
            if not (self.data / "postmaster.pid").exists():
                break
            time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)
