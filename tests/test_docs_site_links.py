"""Every local link of the built site (``site/``, made by ``bash docs/build.sh``) leads to a
file of the site.

``mkdocs build --strict`` checks the links between pages, but a link to a file mkdocs leaves
out (``exclude_docs``: a results page's ``est.json``) is only an INFO line, and the reader gets
a 404. This walks every ``<a href>`` of every page and checks that its target exists; the
fragments (``#anchor``) are mkdocs' own check. Skipped without a built site, like
``tests/test_docs_site.py``.
"""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.built_site import require_site

SITE = require_site()

#: A URL with a scheme (https:, mailto:, data:) or protocol-relative: not a file of the site.
NOT_LOCAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def local_target(page: Path, href: str) -> Path | None:
    """The file of ``SITE`` that ``href`` on ``page`` leads to (``None``: not a local file)."""
    if NOT_LOCAL.match(href) or href.startswith("#"):
        return None
    path = unquote(urlsplit(href).path)
    if not path:
        return None
    target = (SITE / path.lstrip("/")) if path.startswith("/") else (page.parent / path)
    target = Path(os.path.normpath(target))
    return target / "index.html" if path.endswith("/") or target.is_dir() else target


def test_local_target_resolves_pages_and_files() -> None:
    page = SITE / "results" / "est" / "index.html"
    assert local_target(page, "../est.json") == SITE / "results" / "est.json"
    assert local_target(page, "../../guide/est/#how") == SITE / "guide" / "est" / "index.html"
    assert local_target(page, "https://arxiv.org/abs/2406.06962") is None
    assert local_target(page, "#stages") is None


def test_every_local_link_leads_to_a_file() -> None:
    missing = []
    pages = sorted(SITE.rglob("*.html"))
    for page in pages:
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for href in parser.hrefs:
            target = local_target(page, href)
            if target is not None and not target.exists():
                missing.append(f"{page.relative_to(SITE)}: {href}")
    assert len(pages) > 30
    assert not missing, f"{len(missing)} links to no file of site/:\n" + "\n".join(missing[:30])
