"""How the theory pages say a claim's method and title (``proofs/_render.py``), and which inline
code the site keeps on one line (``docs/hooks.py``)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

import proofs
from proofs._render import DOCS_DIR, method_label, method_sentence, plain_text, title_math
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
#: ASCII math a heading must not show outside ``$...$`` (each has a TeX form in title_math).
_ASCII_MATH = re.compile(r"\b(?:exp|sqrt|rho|chi)\b|<=|>=|\b[A-Z]\d\b|\bL2-|\b[a-z] - \d")


def test_method_label_is_said_once() -> None:
    how = "Experiment with the package, fixed seed."
    assert (
        method_sentence("numerical", how) == "Numerical. Experiment with the package, fixed seed."
    )
    assert method_sentence("numerical", "Numerical: `select_blocks` on random problems.") == (
        "Numerical: `select_blocks` on random problems."
    )
    assert method_sentence("numerical", "Numerical, float64: layers.") == (
        "Numerical, float64: layers."
    )
    assert method_sentence("symbolic", "Symbolic:  sympy\n  expands it.") == (
        "Symbolic: sympy expands it."
    )
    # a section that starts with a longer word, or with only part of the label, keeps the label
    assert method_sentence("numerical", "Numerically exact.") == "Numerical. Numerically exact."
    assert method_sentence("numerical counterexample", "Numerical: a draw.") == (
        "Numerical counterexample. Numerical: a draw."
    )
    assert method_sentence("symbolic", "") == "Symbolic."


def test_verdict_summary_shows_as_written() -> None:
    # Markdown made 'D*_n in all 72 cases; ... closed-form D*' emphasis
    markdown = pytest.importorskip("markdown")
    summary = r"|error| <= V(f) D*_n in all 72 cases; closed-form D* equals `it`, a\b, x_1_"
    html = markdown.markdown(plain_text(summary))
    assert html.startswith("<p>") and html.endswith("</p>")
    text = html[3:-4].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert text == summary


def test_committed_theory_pages_name_each_method_once() -> None:
    labels = sorted({method_label(c) for c in proofs.catalogue()}, key=len, reverse=True)
    lines = [
        line
        for page in sorted((ROOT / DOCS_DIR).glob("*.md"))
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith("**Method.** ")
    ]
    assert len(lines) == len(proofs.catalogue())
    for line in lines:
        text = line.removeprefix("**Method.** ").lower()
        label = next((lab for lab in labels if text.startswith(lab)), None)
        assert label, f"no method label: {line[:80]}"
        rest = text[len(label) :].lstrip(".:, ")
        assert not rest.startswith(label.split()[0]), f"label said twice: {line[:80]}"


def test_claim_titles_get_their_remaining_ascii_math_as_tex() -> None:
    assert title_math("SORF blocks sqrt(p) H D1 H D2 H D3: orthogonal") == (
        "SORF blocks $\\sqrt{p}\\,H D_1 H D_2 H D_3$: orthogonal"
    )
    assert title_math("map + rho(t)^L times; the value rho(t) under SGD") == (
        "map + $\\rho(t)^L$ times; the value $\\rho(t)$ under SGD"
    )
    assert title_math("a t interval on k - 2 degrees") == "a t interval on $k - 2$ degrees"
    assert title_math("slope below -1.2; slope -1/2") == "slope below $-1.2$; slope $-1/2$"
    assert title_math("EST: N/k-rescaled heads") == "EST: $N/k$-rescaled heads"
    assert title_math("L2-star, centred") == "$L_2$-star, centred"
    # words and names with digits or hyphens stay text
    for plain in ("GPT-2 schedule", "DCT-II and DCT-III", "1-D Gaussian", "Koksma-Hlawka"):
        assert title_math(plain) == plain


@pytest.mark.parametrize("claim", proofs.catalogue(), ids=lambda c: c.name)
def test_claim_heading_has_no_ascii_math(claim) -> None:
    outside_math = re.sub(r"\$[^$]*\$", " ", title_math(claim.title))
    assert not _ASCII_MATH.search(outside_math), f"{claim.name}: {title_math(claim.title)}"


def _hooks():
    return load_script(ROOT / "docs" / "hooks.py")


def test_short_inline_code_is_marked_unbroken() -> None:
    hooks = _hooks()
    limit = hooks._UNBROKEN_MAX
    html = (
        "<p><code>--maps</code>, <code>--weights uniform,box</code>, "
        f"<code>{'x' * limit}</code> <code>{'y' * (limit + 1)}</code></p>"
        "<pre><span></span><code>a\nb</code></pre>"
    )
    page = SimpleNamespace(file=SimpleNamespace(src_uri="guide/study.md"))
    marked = hooks.on_post_page(html, page=page, config={})
    assert marked == (
        '<p><code class="unbroken">--maps</code>, <code class="unbroken">--weights uniform,box'
        f'</code>, <code class="unbroken">{"x" * limit}</code> <code>{"y" * (limit + 1)}</code>'
        "</p><pre><span></span><code>a\nb</code></pre>"
    )
    css = (ROOT / "docs" / "stylesheets" / "extra.css").read_text(encoding="utf-8")
    rule = re.search(r"code\.unbroken:not\(pre code, table code\)\s*\{([^}]*)\}", css)
    assert rule and "white-space: nowrap" in rule.group(1)
