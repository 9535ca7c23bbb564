"""``segport.toml``: the global options (home, database_url, user, debug) kept in a file.

The file read is the first of: ``$SEGPORT_CONFIG`` (which must exist), ``./segport.toml``, and
``segport.toml`` in the workspace folder (``--home``, ``$SEGPORT_HOME`` or ``./.segport``). A value
given on the command line or in the environment wins over the file's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..opening import DEFAULT_HOME

CONFIG_ENV = "SEGPORT_CONFIG"
FILE_NAME = "segport.toml"

#: key in the file -> (the global option's parameter name, the type its value must have)
KEYS: dict[str, tuple[str, type]] = {
    "home": ("home", str),
    "database_url": ("database_url", str),
    "user": ("user", str),
    "as": ("user", str),
    "debug": ("debug", bool),
}


def find(home: str | None) -> Path | None:
    """Return the config file to read (see the module's docstring), or None when there is none."""
    named = os.environ.get(CONFIG_ENV, "").strip()
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={named!r}: no such file (unset it, or point it at a {FILE_NAME})")
        return path
    for path in (Path(FILE_NAME), Path(home or DEFAULT_HOME).expanduser() / FILE_NAME):
        if path.is_file():
            return path
    return None


def load(path: Path) -> dict[str, Any]:
    """Return the file's global options by parameter name; a bad file is one :class:`ConfigError` line."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError(f"{path}: reading {FILE_NAME} needs Python 3.11, or 'pip install tomli'") from None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in KEYS:
            known = ", ".join(sorted(KEYS))
            raise ConfigError(f"{path}: unknown key {key!r} (the keys are {known})")
        name, kind = KEYS[key]
        if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
            what = "true or false" if kind is bool else "a non-empty string"
            raise ConfigError(f"{path}: {key!r} must be {what}")
        if name in values:
            raise ConfigError(f"{path}: set 'as' or 'user', not both")
        values[name] = value
    if "home" in values:  # a relative folder is relative to the file, not to where segport runs
        values["home"] = str(path.parent / Path(values["home"]).expanduser())
    return values
