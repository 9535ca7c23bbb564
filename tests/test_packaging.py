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


def test_every_web_template_and_static_file_ships() -> None:
    """The console's templates (subfolders too) and static files match setup.cfg's package_data globs."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    globs = [g.strip() for g in config["options.package_data"]["segport.web"].split(",")]
    web = ROOT / "core" / "web"
    shipped = {path for pattern in globs for path in web.glob(pattern) if path.is_file()}
    present = {path for folder in ("templates", "static") for path in (web / folder).rglob("*") if path.is_file()}
    assert present == shipped, f"not in the wheel: {sorted(str(p.relative_to(web)) for p in present - shipped)}"
