"""Secrets at rest: Fernet encryption with a workspace key file (0600) or ``SEGPORT_SECRET_KEY``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from cryptography.fernet import Fernet, InvalidToken

from .errors import WorkspaceError
from .private import create_file

KEY_ENV = "SEGPORT_SECRET_KEY"
KEY_FILE = "secret.key"
KEY_CHECK_SETTING = "secret_key_check"  # a token encrypted at init: proves a key is this workspace's


class Vault:
    """Encrypts and decrypts secret mappings with one Fernet key."""

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise WorkspaceError(
                f"the secret key is malformed: {KEY_ENV} or {KEY_FILE} must hold a Fernet key "
                "(make one with: python -c "
                "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            ) from None

    @classmethod
    def for_workspace(cls, home: Path, *, create: bool = False) -> Vault:
        """Return the vault of a workspace: ``SEGPORT_SECRET_KEY`` if set, else its key file."""
        env = os.environ.get(KEY_ENV)
        if env:
            return cls(env.strip().encode())
        path = home / KEY_FILE
        if create and create_file(path):  # 0600 whatever the umask, before the key is in it
            path.write_bytes(Fernet.generate_key())
        try:
            return cls(path.read_bytes().strip())
        except FileNotFoundError:
            raise WorkspaceError(
                f"the workspace key file {path} is missing: restore it from backup or set {KEY_ENV}"
            ) from None

    @staticmethod
    def new_key() -> bytes:
        """Return a new random Fernet key."""
        return Fernet.generate_key()

    def encrypt(self, secrets: Mapping[str, Any]) -> bytes:
        """Return ``secrets`` as an encrypted token for the store."""
        return self._fernet.encrypt(json.dumps(dict(secrets), sort_keys=True).encode())

    def decrypt(self, token: bytes) -> dict[str, Any]:
        """Return the secrets of a token; a token of another key is a :class:`WorkspaceError`."""
        try:
            plain = self._fernet.decrypt(token)
        except InvalidToken:
            raise WorkspaceError(
                "stored secrets cannot be decrypted with this secret key: use the key the workspace "
                f"was created with ({KEY_FILE} or {KEY_ENV}), or remove and re-add the connection"
            ) from None
        result: dict[str, Any] = json.loads(plain)
        return result
