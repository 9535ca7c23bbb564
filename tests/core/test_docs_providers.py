"""The provider facts stay in the repository: nothing names an outside document, every cited anchor exists.

Code, tests and docs cite platform facts as ``docs/providers/<name>.md#<anchor>``; the anchor is the
GitHub-style slug of a heading of that page. These tests fail when a citation points at a page or heading
that does not exist, and when any file names a document that is not in the repository.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROVIDERS = ROOT / "docs" / "providers"
SKIPPED_DIRS = {
    ".git", ".venv", "venv", ".tox", "build", "dist", "__pycache__", ".mypy_cache", ".ruff_cache",
    ".pytest_cache", ".hypothesis", "node_modules", ".segport",
}
MAX_BYTES = 2_000_000

# Documents outside the repository that earlier comments cited; spelled in pieces so this file does not
# name them itself.
OUTSIDE = ("shared" + "/", "provider" + "-apis", "DESIGN" + ".md")
# Their source keys in square brackets: MC-SPEC, CS-PY, CM-GS..., GRP, RS, DT, 3P, or a section such as A4 or B1.
SOURCE_KEY = re.compile(r"\[(?:(?:MC|CS|CM)-[A-Z]{2,}|(?:GRP|RS|DT|3P)\b|[AB][1-9](?=[\],:; -]))")
# A citation: docs/providers/<page>.md#<anchor> (from anywhere) or providers/<page>.md#<anchor> (from docs/).
CITATION = re.compile(r"(?<![\w/-])(?:docs/)?providers/([a-z0-9_-]+)\.md(?:#([A-Za-z0-9_-]+))?")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def repository_files() -> Iterator[Path]:
    """Every file of the working tree (build output, caches and virtualenvs skipped), in a stable order.

    Files that vanish while the tree is walked (another test's scratch files) are skipped.
    """
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info"))
        for name in sorted(files):
            path = Path(folder, name)
            try:
                if path.stat().st_size <= MAX_BYTES:
                    yield path
            except OSError:
                continue


@cache
def text_of(path: Path) -> str | None:
    """The file's text, or None for a binary file."""
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    """The anchors of a Markdown page's headings, outside code fences, with GitHub's -1, -2 for repeats."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def citations() -> Iterator[tuple[str, str, str | None]]:
    """``(where, page name, anchor or None)`` for every provider citation in the repository."""
    for path in repository_files():
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for match in CITATION.finditer(line):
                yield f"{path.relative_to(ROOT)}:{number}", match.group(1), match.group(2)


def test_the_provider_pages_exist() -> None:
    assert {p.name for p in PROVIDERS.glob("*.md")} >= {"mailchimp.md", "campaignmonitor.md"}


def test_no_file_names_a_document_outside_the_repository() -> None:
    offenders = []
    for path in repository_files():
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if any(name in line for name in OUTSIDE) or SOURCE_KEY.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not offenders, (
        "these lines cite a document outside the repository (or its source keys); point them at "
        "docs/providers/<platform>.md#<heading> instead:\n" + "\n".join(offenders)
    )


def test_every_cited_provider_anchor_exists() -> None:
    found = list(citations())
    assert len({where.split(":")[0] for where, _, _ in found}) >= 10, "the plugins should cite docs/providers"
    broken = []
    for where, name, anchor in found:
        page = PROVIDERS / f"{name}.md"
        if not page.is_file():
            broken.append(f"{where}: no page docs/providers/{name}.md")
        elif anchor is not None and anchor not in anchors(page):
            broken.append(f"{where}: no heading with anchor #{anchor} in docs/providers/{name}.md")
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("page", sorted(PROVIDERS.glob("*.md")), ids=lambda p: p.name)
def test_links_inside_a_provider_page_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    local = set(re.findall(r"\]\(#([A-Za-z0-9_-]+)\)", text))
    assert local <= anchors(page), f"{page.name}: no heading for #{', #'.join(sorted(local - anchors(page)))}"
    labels = set(re.findall(r"\]\[([a-z0-9-]+)\]", text))
    defined = set(re.findall(r"^\[([a-z0-9-]+)\]: https://", text, re.M))
    assert labels <= defined, f"{page.name}: undefined link labels {sorted(labels - defined)}"
    assert defined <= labels, f"{page.name}: unused link definitions {sorted(defined - labels)}"


def test_slugs_follow_github() -> None:
    assert slug("Batch subscribe answer") == "batch-subscribe-answer"
    assert slug("OAuth2 web-server flow") == "oauth2-web-server-flow"
    assert slug("Update, unsubscribe and delete") == "update-unsubscribe-and-delete"
    assert slug("`POST /batches` (async)") == "post-batches-async"
