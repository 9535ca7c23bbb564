"""Creating and opening a workspace: its folder, secret key and database, checked against each other."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import WorkspaceError
from .models import Role
from .private import make_folder, tighten_workspace
from .services.context import check_name
from .store import Store, open_store, private_files, sqlite_path
from .store import database_url as store_url
from .vault import KEY_CHECK_SETTING, KEY_FILE, Vault

HOME_ENV = "SEGPORT_HOME"
DEFAULT_HOME = ".segport"


def default_home() -> Path:
    """``SEGPORT_HOME`` or ``./.segport``."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)


def create_workspace(
    home: str | os.PathLike[str] | None, admin: str, database_url: str | None
) -> tuple[Path, Store, Vault, str]:
    """Create a workspace's folder, key and database with its first admin (``segport init``).

    The database is ``database_url`` (default ``SEGPORT_DATABASE_URL``; unset: ``segport.db`` in the
    folder); the folder holds the secret key and reject files either way.
    """
    path = Path(home) if home is not None else default_home()
    admin = check_name("user", admin)
    url = store_url(database_url)
    db_file = sqlite_path(url, path)
    store = None
    if db_file is None:  # PostgreSQL: connect first, so a bad URL leaves no key file behind
        store = open_store(url, path)
        if store.schema_version():
            store.close()
            raise WorkspaceError(
                f"a workspace exists already in the database {store.url}: use it, or choose another database",
                param="database_url",
            )
    elif db_file.exists():
        raise WorkspaceError(
            f"a workspace exists already at {path}: use it, or choose another folder", param="home"
        )
    try:
        make_folder(path)
        tighten_workspace(path, [path / KEY_FILE])  # a folder that existed: private from now on
        vault = Vault.for_workspace(path, create=True)
    except OSError as exc:
        if store is not None:
            store.close()
        raise WorkspaceError(f"cannot create the workspace at {path}: {exc.strerror}") from None
    store = store or open_store(url, path)
    try:
        store.migrate()
        with store.transaction():
            store.set_setting(KEY_CHECK_SETTING, vault.encrypt({"workspace": "segport"}).decode("ascii"))
            store.add_user(admin, Role.ADMIN)
            store.audit(admin, "workspace.init", str(path))
    except BaseException:
        store.close()
        raise
    return path, store, vault, admin


def open_workspace(home: str | os.PathLike[str] | None, database_url: str | None) -> tuple[Path, Store, Vault]:
    """Open an existing workspace's database (migrated) and key (checked against it).

    Its database is ``database_url`` (default ``SEGPORT_DATABASE_URL``, else ``segport.db`` in the folder).
    """
    path = Path(home) if home is not None else default_home()
    url = store_url(database_url)
    db_file = sqlite_path(url, path)
    if db_file is not None and not db_file.is_file():
        raise WorkspaceError(f"no workspace at {path}: create one, or open the folder that holds it", param="home")
    tighten_workspace(path, [path / KEY_FILE, *private_files(db_file)])  # before SQLite opens (and copies) them
    store = open_store(url, path)
    try:
        if db_file is None and not store.schema_version():
            raise WorkspaceError(
                f"no workspace in the database {store.url}: create one there, or check the URL",
                param="database_url",
            )
        store.migrate()
        vault = Vault.for_workspace(path)
        _check_key(store, vault)
    except BaseException:
        store.close()
        raise
    return path, store, vault


def _check_key(store: Store, vault: Vault) -> None:
    """Refuse a secret key that is not the workspace's, before anything is read or stored with it.

    A wrong ``SEGPORT_SECRET_KEY`` would otherwise encrypt new credentials that the real key cannot
    read. Workspaces made before the check token existed are checked against a stored secret.
    """
    token = store.get_setting(KEY_CHECK_SETTING)
    if token is not None:
        sample: bytes | None = token.encode("ascii")
    else:
        sample = next((store.connection_secrets(c.id) for c in store.list_connections() if c.has_secrets), None)
    if not sample:
        return
    try:
        vault.decrypt(sample)
    except WorkspaceError:
        raise WorkspaceError(
            "the secret key is not this workspace's: its stored secrets cannot be decrypted with it; use the key "
            "the workspace was created with (its secret.key file, or SEGPORT_SECRET_KEY)"
        ) from None
