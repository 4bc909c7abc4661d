"""The build-time helpers of the documentation site (docs/hooks.py, docs/griffe_rst.py).

The strict mkdocs build (``bash docs/build.sh``) exercises them on the real pages; these tests
pin the conversions themselves. ``griffe_rst`` needs griffe, part of the docs extra.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rst_roles_math_and_tables_become_markdown() -> None:
    pytest.importorskip("griffe", reason="griffe comes with the docs extra (mkdocstrings)")
    rst = _load("griffe_rst").rst_to_markdown
    text = (
        "See :func:`kernelapprox.kernels.make_kernel` and :class:`~pkg.mod.Name`, "
        "with :math:`\\alpha_i`.\n"
        "\n"
        "    .. math:: a = b\n"
        "              + c\n"
        "\n"
        "=====  ==================\n"
        "name   value\n"
        "=====  ==================\n"
        "``a``  ``|x|`` first line\n"
        "       continued\n"
        "b      1 | 2\n"
        "=====  ==================\n"
        "after"
    )
    out = rst(text)
    assert "`kernelapprox.kernels.make_kernel`" in out and "`Name`" in out
    assert "$\\alpha_i$" in out and ":math:" not in out
    assert "    $$\n    a = b\n    + c\n    $$" in out
    assert "| name | value |" in out
    assert "| ``a`` | ``|x|`` first line continued |" in out  # no escape inside code
    assert "| b | 1 \\| 2 |" in out  # escaped outside code
    assert out.rstrip().endswith("after")
    assert not re.search(r"^=+ ", out, re.MULTILINE)


def test_theory_links_become_api_references_or_text() -> None:
    hooks = _load("hooks")
    hooks._documented.clear()
    hooks._documented.update({"kernelapprox.features", "kernelapprox.discrepancy"})
    page = (
        "[`proofs/x.py`](../../proofs/x.py); run by "
        "[`tests/proofs/t.py::f[x]`](../../tests/proofs/t.py); underpins "
        "[`kernelapprox.features`](../../kernelapprox/features/__init__.py), "
        "[`kernelapprox.features.dct`](../../kernelapprox/features/dct.py), "
        "[`kernelapprox.attention`](../../kernelapprox/attention/__init__.py) and [local](#a)."
    )
    out = hooks._REPO_LINK.sub(hooks._rewrite, page)
    assert out == (
        "`proofs/x.py`; run by `tests/proofs/t.py::f[x]`; underpins "
        "[`kernelapprox.features`][kernelapprox.features], "
        "[`kernelapprox.features.dct`][kernelapprox.features], "
        "`kernelapprox.attention` and [local](#a)."
    )


def test_statement_display_math_gets_its_own_paragraph() -> None:
    # a $$ block right after a text line is inline text to Markdown (stray $ on the page)
    from proofs._render import _display_math

    text = "For $x$,\n$$a = b\n+ c,$$\na convex one,\n$$d$$\nend"
    assert _display_math(text) == "For $x$,\n\n$$a = b\n+ c,$$\n\na convex one,\n\n$$d$$\n\nend"
    assert _display_math("x\n\n$$\ny\n$$\n\nz") == "x\n\n$$\ny\n$$\n\nz"


def test_claim_titles_get_their_math_as_tex() -> None:
    from proofs._render import title_math

    assert title_math("unbiased for exp(x.y)") == "unbiased for $e^{x^\\top y}$"
    assert title_math("variance (1 - exp(-z^2))^2 / 2") == "variance $(1 - e^{-z^2})^2 / 2$"
    assert title_math("beat iid (d >= 4)") == "beat iid ($d \\ge 4$)"
    assert title_math("with chi_d radii, O(1/m), d = 2, 8, 64") == (
        "with $\\chi_d$ radii, $O(1/m)$, $d = 2, 8, 64$"
    )
    assert title_math("rank <= r; box <= uniform") == "rank $\\le r$; box $\\le$ uniform"
    assert title_math("Bochner's theorem for the Gaussian kernel") == (
        "Bochner's theorem for the Gaussian kernel"
    )
