"""The build-time helpers of the documentation site (docs/hooks.py, docs/griffe_rst.py).

The strict mkdocs build (``bash docs/build.sh``) exercises them on the real pages; these tests
pin the conversions themselves. ``griffe_rst`` needs griffe, part of the docs extra.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.scripts import load_script

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _load(name: str):
    return load_script(DOCS / f"{name}.py")


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


def test_rst_table_without_header_ends_at_its_second_border() -> None:
    # kernelapprox.sampling's docstring: a headerless table, then a paragraph; the paragraph
    # used to be read as more rows, cut at the column starts ("options can be g | iven in")
    pytest.importorskip("griffe", reason="griffe comes with the docs extra (mkdocstrings)")
    rst = _load("griffe_rst").rst_to_markdown
    text = (
        "Samplers by name:\n"
        "\n"
        "==========  ======================\n"
        "``mc``      iid\n"
        "``sobol``   scrambled Sobol'\n"
        "==========  ======================\n"
        "\n"
        "Any QMCEngine instance is accepted, and options can be given in a spec string.\n"
    )
    out = rst(text)
    rows = [line for line in out.splitlines() if line.startswith("|")]
    assert rows == ["|  |  |", "|---|---|", "| ``mc`` | iid |", "| ``sobol`` | scrambled Sobol' |"]
    assert out.rstrip().endswith("options can be given in a spec string.")


def test_rst_literal_block_intro_shows_one_colon() -> None:
    pytest.importorskip("griffe", reason="griffe comes with the docs extra (mkdocstrings)")
    rst = _load("griffe_rst").rst_to_markdown
    out = rst("Run it from Python::\n\n    import proofs\n\nor this ::\n\n    x\n")
    assert out.splitlines()[0] == "Run it from Python:" and "or this\n" in out
    assert "    import proofs" in out
    assert rst("    .. math:: a = b\n").count("$$") == 2  # a directive keeps its meaning


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


def _solid_png(path: Path, rgb: tuple[int, int, int], size: tuple[int, int]) -> bytes:
    from PIL import Image

    Image.new("RGB", size, rgb).save(path, format="PNG")
    return path.read_bytes()


def test_gallery_runs_each_example_and_thumbnails_its_figure(tmp_path, monkeypatch) -> None:
    """docs/build_gallery.py on a one-script gallery and a one-notebook folder: the script
    runs, its page holds its output, figure and included source, and each thumbnail is drawn
    from the figure of that run (a red figure gives a red thumbnail, a blue one a blue one)."""
    import base64

    import nbformat
    from PIL import Image

    gallery = _load("build_gallery")
    examples, notebooks = tmp_path / "examples", tmp_path / "notebooks"
    examples.mkdir()
    notebooks.mkdir()
    script = examples / "red_square.py"
    script.write_text(
        '"""A red square.\n\nDraws a red square. Nothing else.\n"""\n'
        "from PIL import Image\n\n"
        "print('side 800')\n"
        "Image.new('RGB', (800, 400), (255, 0, 0)).save('red.png')\n",
        encoding="utf-8",
    )
    png = _solid_png(tmp_path / "blue.png", (0, 0, 255), (720, 720))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 7. A blue notebook\n\nText."),
        nbformat.v4.new_code_cell("plot()", outputs=[nbformat.v4.new_output(
            "display_data", data={"image/png": base64.b64encode(png).decode()})]),
    ]  # fmt: skip
    nbformat.write(nb, notebooks / "07_blue.ipynb")
    monkeypatch.setattr(gallery, "ROOT", tmp_path)
    monkeypatch.setattr(gallery, "EXAMPLES", examples)
    monkeypatch.setattr(gallery, "NOTEBOOKS", notebooks)
    monkeypatch.setattr(gallery, "GALLERY", tmp_path / "gallery")

    pages = gallery.build(execute=True)
    out = tmp_path / "gallery"
    assert [p.name for p in pages] == ["index.md", "red_square.md"]
    page = (out / "red_square.md").read_text(encoding="utf-8")
    assert page.startswith("# A red square\n\nDraws a red square. Nothing else.")
    assert "side 800" in page and "![A red square: red.png](red_square/red.png)" in page
    assert '--8<-- "examples/red_square.py"' in page
    for thumb, rgb, size in (("red.png", (255, 0, 0), (360, 181)),
                             ("07_blue.png", (0, 0, 255), (360, 360))):  # fmt: skip
        with Image.open(out / "thumbs" / thumb) as img:
            assert img.size[0] == gallery.THUMB_WIDTH
            assert abs(img.size[1] - size[1]) <= 1
            assert img.convert("RGB").getpixel((10, 10)) == rgb
    index = (out / "index.md").read_text(encoding="utf-8")
    assert "(thumbs/red.png)" in index and "(../notebooks/07_blue.ipynb)" in index
    assert "7. A blue notebook" in index and "A notebook with 1 figure, run" in index

    gallery.build(execute=False)  # the fast build: source only, no thumbnails
    assert "Not executed in this build" in (out / "red_square.md").read_text(encoding="utf-8")
    assert not (out / "thumbs" / "red.png").exists()

    script.write_text('"""Fails."""\nraise SystemExit(3)\n', encoding="utf-8")
    with pytest.raises(RuntimeError, match=r"red_square\.py failed"):
        gallery.build(execute=True)
    script.write_text("print('no docstring')\n", encoding="utf-8")
    with pytest.raises(ValueError, match="docstring"):
        gallery.describe(script)
