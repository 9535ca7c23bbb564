"""Make a distribution's entry points visible without pip: what ``pip install`` writes, and no more.

Put the returned folder's parent on ``PYTHONPATH`` (of a subprocess) and ``importlib.metadata``,
stevedore and pluggy find the distribution's ``segport.destinations`` / ``segport.hooks`` entry
points, exactly as after an install.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

__all__ = ["install_metadata"]


def install_metadata(site: Path, project: Mapping[str, Any]) -> Path:
    """Write ``<site>/<name>-<version>.dist-info`` (``METADATA``, ``entry_points.txt``) for ``project``.

    ``project`` is a ``pyproject.toml`` ``[project]`` table (``name``, ``version``, ``entry-points``);
    return that folder.
    """
    name, version = project["name"], project["version"]
    dist_info = site / f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    groups: Mapping[str, Mapping[str, str]] = project.get("entry-points", {})
    entry_points = "".join(
        f"[{group}]\n" + "".join(f"{key} = {target}\n" for key, target in points.items()) + "\n"
        for group, points in groups.items()
    )
    (dist_info / "entry_points.txt").write_text(entry_points, encoding="utf-8")
    return dist_info
