"""Rotating the workspace's secret key: every stored secret re-encrypted with a new key, in one transaction."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, WorkspaceError
from ..private import create_file
from ..vault import KEY_CHECK_SETTING, KEY_ENV, KEY_FILE, Vault
from .context import Context


class KeyRotation:
    """Replaces the secret key that encrypts the connections' credentials at rest."""

    def __init__(self, context: Context) -> None:
        self.context = context

    def rotate(self, *, new_key_file: Path | None = None) -> dict[str, Any]:
        """Re-encrypt every connection's secrets (and the key check) with a new key; return what was done.

        The new key is written first, to ``new_key_file`` or, when the key is the workspace's key file,
        next to it as ``secret.key.new``; the secrets are re-encrypted in one transaction; then
        ``secret.key.new`` replaces ``secret.key``. If segport stops between the two, the database
        already needs the new key: ``secret.key.new`` holds it. A key from ``SEGPORT_SECRET_KEY``
        cannot be replaced in place: the new key goes to ``new_key_file``, which is then required.
        """
        ctx = self.context
        actor = ctx.authorize("key.rotate")
        key_file = ctx.home / KEY_FILE
        from_env = bool(os.environ.get(KEY_ENV))
        if from_env and new_key_file is None:
            raise ConfigError(
                f"the secret key comes from {KEY_ENV}, which segport cannot change: name a new file to "
                f"receive the new key, then put that key in {KEY_ENV}",
                param="new_key_file",
            )
        target = new_key_file or key_file.with_name(KEY_FILE + ".new")
        if not create_file(target):
            raise ConfigError(f"{target} already exists: move it away (it may hold a key) and rotate again")
        key = Vault.new_key()
        try:
            _write_synced(target, key)
        except OSError as exc:
            target.unlink(missing_ok=True)
            raise WorkspaceError(f"cannot write the new key to {target}: {exc.strerror}") from None
        new = Vault(key)
        rotated = 0
        try:
            with ctx.store.transaction():
                for connection in ctx.store.list_connections():
                    token = ctx.store.connection_secrets(connection.id)
                    if token:
                        secrets = ctx.vault.decrypt(token)
                        ctx.store.update_connection_config(connection.id, connection.config, new.encrypt(secrets))
                        rotated += 1
                ctx.store.set_setting(KEY_CHECK_SETTING, new.encrypt({"workspace": "segport"}).decode("ascii"))
                ctx.store.audit(actor.name, "key.rotate", "secret key", {"connections": rotated})
        except BaseException:
            target.unlink(missing_ok=True)  # nothing was re-encrypted: the old key stays the key
            raise
        if new_key_file is None:
            os.replace(target, key_file)
        ctx.vault = new
        return {"connections": rotated, "key_file": str(new_key_file or key_file), "from_env": from_env}


def _write_synced(path: Path, key: bytes) -> None:
    """Write ``key`` to the (new, 0600) file ``path`` and flush it to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, key + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
