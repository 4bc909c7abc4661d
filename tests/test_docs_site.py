"""The built documentation site (``site/``, made by ``bash docs/build.sh``) as a reader gets it.

MathJax typesets in the browser, so in the static HTML the TeX is still text. What these tests
check is that every formula sits where the site's MathJax will typeset it: they read the
``ignoreHtmlClass`` / ``processHtmlClass`` settings from the site's ``javascripts/mathjax.js``
and walk each page the way MathJax 3 chooses what to scan (a class matching the process
pattern turns scanning on for the element and its descendants, one matching the ignore pattern
turns it off, an element without a class inherits, script/style/pre/code are never scanned).
A ``$``, ``\\(``, ``\\[`` or ``$$`` in text MathJax skips is math the reader sees raw. They also
check that no page loads a script, stylesheet or image from another host, and that the local
ones exist, so the site works with no network.

The site must be built first. Without ``site/index.html`` the tests are skipped, unless
``KERNELAPPROX_REQUIRE_SITE=1`` (set by ``.ci/run`` after its docs build), where that fails.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.built_site import ROOT, require_site

SITE = require_site()

#: Tags whose text MathJax never scans (its default skipHtmlTags), and tags with no content.
SKIP_TAGS = {"script", "noscript", "style", "textarea", "pre", "code", "annotation"}
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"}
VOID_TAGS |= {"source", "track", "wbr"}
#: Classes of text no reader sees: the notebooks' copy-to-clipboard source (display: none).
HIDDEN_CLASSES = {"clipboard-copy-txt"}
#: A math delimiter in plain text: $$, \( \) \[ \], or a $ not followed by a digit (a price).
RAW_MATH = re.compile(r"\$\$|\\[()\[\]]|\$(?!\d)")
REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.I)


def _mathjax_option(name: str) -> re.Pattern[str]:
    config = (SITE / "javascripts" / "mathjax.js").read_text(encoding="utf-8")
    value = re.search(rf'{name}\s*:\s*"([^"]*)"', config)
    assert value, f"{name} not found in javascripts/mathjax.js"
    # as MathJax builds it (HTMLDomStrings): the pattern must match one whole class name
    return re.compile(rf"(^| )({value.group(1)})( |$)")


class _Page(HTMLParser):
    """Splits a page's body text into what MathJax scans and what it skips."""

    def __init__(self, process: re.Pattern[str], ignore: re.Pattern[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.process, self.ignore = process, ignore
        self.stack: list[tuple[str, bool, bool]] = []  # tag, ignored, skipped
        self.in_body = False
        self.skipped_text: list[str] = []  # text MathJax does not scan, one entry per node
        self.scanned_text: list[str] = []
        self.urls: list[tuple[str, str]] = []  # (tag, url) of scripts, stylesheets, images
        self.inline_scripts: list[str] = []
        self.display_blocks = 0  # <div class="arithmatex">, display math as arithmatex emits it

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag in ("script", "img", "iframe", "source") and attr.get("src"):
            self.urls.append((tag, attr["src"]))
        if tag == "link" and attr.get("href") and attr.get("rel") not in ("canonical", "alternate"):
            self.urls.append((tag, attr["href"]))
        if tag == "body":
            self.in_body = True
        cname = attr.get("class", "")
        if tag == "div" and "arithmatex" in cname.split():
            self.display_blocks += 1
        if tag in VOID_TAGS:
            return
        ignored, skipped = self.stack[-1][1:] if self.stack else (False, False)
        process = bool(self.process.search(cname))
        ignored = (ignored or bool(self.ignore.search(cname))) and not process
        skipped = skipped or (tag in SKIP_TAGS and not process)
        skipped = skipped or bool(HIDDEN_CLASSES & set(cname.split()))
        self.stack.append((tag, ignored, skipped))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if not self.stack:
            return
        tag, ignored, skipped = self.stack[-1]
        if tag == "script":
            self.inline_scripts.append(data)
        if not self.in_body or skipped or not data.strip():
            return
        (self.skipped_text if ignored else self.scanned_text).append(data)


def _pages() -> list[Path]:
    return sorted(SITE.rglob("*.html"))


def _parse(path: Path) -> _Page:
    page = _Page(_mathjax_option("processHtmlClass"), _mathjax_option("ignoreHtmlClass"))
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


@pytest.fixture(scope="module")
def parsed() -> dict[str, _Page]:
    return {str(p.relative_to(SITE)): _parse(p) for p in _pages()}


def test_site_has_the_pages() -> None:
    names = {str(p.relative_to(SITE)) for p in _pages()}
    for page in ("index.html", "theory/index.html", "theory/dijiang/index.html"):
        assert page in names
    assert any(n.startswith("notebooks/0") for n in names), "no rendered notebook"


def test_no_math_left_where_mathjax_does_not_look(parsed: dict[str, _Page]) -> None:
    raw = []
    for name, page in parsed.items():
        for text in page.skipped_text:
            for m in RAW_MATH.finditer(text):
                lo, hi = max(m.start() - 40, 0), m.end() + 40
                raw.append(f"{name}: ...{' '.join(text[lo:hi].split())}...")
    assert not raw, f"{len(raw)} math delimiters MathJax will not typeset:\n" + "\n".join(raw[:30])


def test_notebook_math_is_scanned(parsed: dict[str, _Page]) -> None:
    # the notebooks' markdown cells hold $...$ math; MathJax must see it
    for name, page in parsed.items():
        if name.startswith("notebooks/0"):
            scanned = "".join(page.scanned_text)
            assert "$" in scanned, f"{name}: no formula reaches MathJax"


def test_display_equations_are_display_math(parsed: dict[str, _Page]) -> None:
    # each $$ ... $$ block of a theory page's markdown must come out as display math
    for md in sorted((ROOT / "docs" / "theory").glob("*.md")):
        blocks = len(re.findall(r"^\s*\$\$", md.read_text(encoding="utf-8"), re.M))
        name = "theory/index.html" if md.stem == "index" else f"theory/{md.stem}/index.html"
        assert parsed[name].display_blocks >= blocks, (
            f"{name}: {blocks} display equations in the source, "
            f"{parsed[name].display_blocks} rendered as display math"
        )
    for name, page in parsed.items():
        for text in page.scanned_text:
            tex = text.strip()
            if tex.startswith(("\\(", "\\[")):
                assert "$" not in tex.replace("\\$", ""), f"{name}: stray $ in {tex[:80]!r}"


def test_no_remote_scripts_stylesheets_or_images(parsed: dict[str, _Page]) -> None:
    remote = []
    missing = []
    for name, page in parsed.items():
        base = (SITE / name).parent
        for tag, url in page.urls:
            if REMOTE.match(url) or url.startswith(("http:", "https:")):
                remote.append(f"{name}: <{tag}> {url}")
            elif not url.startswith(("data:", "#")):
                path = unquote(urlsplit(url).path)
                # 404.html links from the site root, as it is served at any depth
                target = (SITE / path.lstrip("/")) if path.startswith("/") else (base / path)
                if not target.exists():
                    missing.append(f"{name}: <{tag}> {url}")
        for script in page.inline_scripts:
            for url in re.findall(r"""["'`]((?:https?:)?//[^"'`\s]+)""", script):
                remote.append(f"{name}: inline script loads {url}")
    assert not remote, "remote resources:\n" + "\n".join(sorted(set(remote))[:30])
    assert not missing, "local resources missing from site/:\n" + "\n".join(missing[:30])


def test_mathjax_ships_with_the_site(parsed: dict[str, _Page]) -> None:
    for name, page in parsed.items():
        scripts = [url for tag, url in page.urls if tag == "script"]
        assert any(url.endswith("vendor/mathjax/tex-svg-full.js") for url in scripts), name


def test_claims_index_shows_outcomes_and_refuted_claims_first() -> None:
    html = (SITE / "theory" / "index.html").read_text(encoding="utf-8")
    for badge in ("verdict-holds", "verdict-refuted", "verdict-failed", "verdict-pending"):
        assert f'class="verdict {badge}"' in html
    refuted = html.index('id="paper-claims-refuted"')
    assert refuted < html.index('id="by-family"') < html.index('id="all-claims"')
    section = html[refuted : html.index('id="by-family"')]
    rows = re.findall(r"<tr>(.*?)</tr>", section, re.S)[1:]
    assert rows, "no refuted claim listed"
    for row in rows:
        family, anchor = re.search(r'<a href="(\w+)/#([^"]+)"', row).groups()
        page = (SITE / "theory" / family / "index.html").read_text(encoding="utf-8")
        assert f'id="{anchor}"' in page, f"{family}#{anchor} is not a heading"
        cells = re.findall(r"<td>(.*?)</td>", row, re.S)
        assert cells[1] in ("numerical counterexample", "symbolic counterexample"), cells[1]
        assert "verdict-refuted" in cells[2]
        assert 'href="../api/' in cells[3], f"no API page for the code it checks: {cells[3]}"


def test_header_shows_the_package_version() -> None:
    version = re.search(
        r'^version\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M
    ).group(1)
    html = (SITE / "index.html").read_text(encoding="utf-8")
    header = html[html.index('class="md-header__topic"') :][:400]
    assert f"kernelapprox {version}" in header


def test_results_are_tables_and_figures_enlarge() -> None:
    html = (SITE / "results" / "index.html").read_text(encoding="utf-8")
    assert "<th" in html and "slope [CI]</th>" in html, "study tables are not HTML tables"
    assert "slope [CI]" not in "".join(re.findall(r"<pre.*?</pre>", html, re.S)), "CLI text left"
    for page in ("results/index.html", "results/benchmarks/index.html"):
        text = (SITE / page).read_text(encoding="utf-8")
        for img in re.findall(r"(<a [^>]*>)?\s*<img [^>]*>", text):
            assert "glightbox" in img, f"{page}: a figure that does not enlarge on click"


def test_no_internal_wording() -> None:
    internal = re.compile(
        r"\b(?:second|first|this|previous|\w+th) session\b|\bthe \w+ issue\b|\bthe issue's\b"
        r"|\bissue\s*#?\d+",
        re.I,
    )
    hits = [
        f"{p.relative_to(ROOT)}: {m.group(0)}"
        for p in [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "CHANGELOG.md"]
        for m in internal.finditer(p.read_text(encoding="utf-8"))
    ]
    assert not hits, hits


def test_api_signatures_are_formatted_one_parameter_a_line() -> None:
    # mkdocstrings formats a long signature with ruff (docs extra); without it, one long line
    html = (SITE / "api" / "features" / "index.html").read_text(encoding="utf-8")
    signatures = [
        re.sub(r"<[^>]+>", "", sig)
        for sig in re.findall(r'doc-signature highlight"><pre>(.*?)</pre>', html, re.S)
    ]
    long_ones = [s for s in signatures if len(" ".join(s.split())) > 100]
    assert long_ones, "no long signature on the page"
    for sig in long_ones:
        assert "(\n    " in sig, f"signature on one line: {' '.join(sig.split())[:100]}"


def test_gallery_shows_every_example_with_its_figure() -> None:
    index = (SITE / "gallery" / "index.html").read_text(encoding="utf-8")
    for script in sorted((ROOT / "examples").glob("*.py")):
        page = SITE / "gallery" / script.stem / "index.html"
        assert page.is_file(), f"no gallery page for examples/{script.name}"
        html = page.read_text(encoding="utf-8")
        figures = re.findall(r'<img [^>]*src="([^"]+\.png)"', html)
        assert figures, f"gallery/{script.stem}: no figure (was it built with --no-execute?)"
        assert f'href="{script.stem}/"' in index, f"no card for {script.stem} on the index"
    thumbs = re.findall(r'<img [^>]*src="(thumbs/[^"]+\.png)"', index)
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(thumbs) == len(list((ROOT / "examples").glob("*.py"))) + len(notebooks)
    assert all((SITE / "gallery" / t).is_file() for t in thumbs)
