"""The evidence a claim reports is plain Unicode text (``proofs/_text.py``): what the theory
pages and ``kernelapprox verify`` show carries no ASCII math. (Claim titles stay ASCII for the
command line; ``proofs._render.title_math`` turns their math into TeX on the pages.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from proofs._render import DOCS_DIR, title_math
from proofs._text import superscript

ROOT = Path(__file__).resolve().parents[2]
#: ASCII math with a Unicode form: ``+-``, ``<=``, ``>=``, ``!=``, ``^``, ``sqrt(``, ``~`` and
#: Greek letters spelled out (a name such as ``rho_trajectory``, ``rho\_`` on a page, is code;
#: "the delta method" is a name too).
_ASCII_MATH = re.compile(
    r"\+-|<=|>=|!=|\^|\bsqrt\(|~|(?<![\w\\])(?:alpha|beta|gamma|delta|eps|epsilon|lambda|mu"
    r"|sigma|rho|chi|phi|pi|theta|tau|omega)(?![\w\\]| method)"
)


def test_superscript_writes_every_digit_and_the_sign() -> None:
    assert superscript(-6) == "⁻⁶"
    assert superscript(1234567890) == "¹²³⁴⁵⁶⁷⁸⁹⁰"
    assert superscript(0) == "⁰"


@pytest.mark.parametrize("bad", [2.0, "3", True, None])
def test_superscript_rejects_a_non_integer(bad) -> None:
    with pytest.raises(TypeError, match="exponent"):
        superscript(bad)


def test_the_pattern_finds_ascii_math_and_spares_names() -> None:
    for ascii_math in ("1.7 +- 0.02", "kept <= budget", "E[W^4]", "norm sqrt(d)", "rho(t)", "eps"):
        assert _ASCII_MATH.search(ascii_math), ascii_math
    for text in (
        "rho\\_trajectory equals SGD",
        "1.7 ± 0.02",
        "kept ≤ budget",
        "e² 1e-03",
        "the delta method",
    ):
        assert not _ASCII_MATH.search(text), text


def test_title_powers_and_kl_divergence_become_tex() -> None:
    assert title_math("loss is w c T^2 KL(p_t || p_s) plus MSEs") == (
        "loss is $w\\,c\\,T^2$ $\\mathrm{KL}(p_t \\Vert p_s)$ plus MSEs"
    )
    assert title_math("a T^2 guide; GPT-2 and x^2") == "$a\\,T^2$ guide; GPT-2 and x^2"


def test_committed_theory_pages_show_evidence_and_tolerances_in_unicode() -> None:
    lines = [
        (page.name, line)
        for page in sorted((ROOT / DOCS_DIR).glob("*.md"))
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.startswith(("**Verdict.** ", "**Experiment.** "))
    ]
    assert lines
    found = [
        f"{name}: {m.group(0)!r} in {line[:90]}"
        for name, line in lines
        if (m := _ASCII_MATH.search(line))
    ]
    assert not found, "ASCII math in evidence; write it in Unicode (proofs/_text.py):\n" + (
        "\n".join(found)
    )
