"""Every package under a package_dir root is listed in setup.cfg (else the wheel silently lacks it)."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    options = config["options"]
    listed = set(options["packages"].split())
    mapping = dict(line.split(" = ") for line in options["package_dir"].strip().splitlines())
    found = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *relative)))
    assert found <= listed, f"packages missing from setup.cfg: {sorted(found - listed)}"
    assert set(mapping) == listed


def test_schemas_ship_as_package_data() -> None:
    from segport import schemas

    assert schemas.load("run-record")["title"] == "segport run record"
    assert schemas.load("destination-spec")["properties"]["type"] == {"const": "object"}
