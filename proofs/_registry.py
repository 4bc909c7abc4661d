"""Discovery of the claim modules of :mod:`proofs` and selection by name or family.

The catalogue is importable under two names: ``proofs`` in a checkout of the repository (and an
editable install) and ``kernelapprox.proofs`` in the wheel, so that the distribution claims no
global top-level name. Its modules therefore import each other relatively and find their
siblings through :data:`PACKAGE_NAME`, the name under which this copy was imported.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from collections.abc import Iterable
from pathlib import Path

from ._core import FAMILIES, Claim, Verdict, docstring_section

#: The name the catalogue was imported under: ``proofs`` or ``kernelapprox.proofs``.
PACKAGE_NAME: str = __name__.rpartition(".")[0]


def claim_module_names() -> list[str]:
    """Names of the claim modules: every public (not ``_``-prefixed) module of :mod:`proofs`."""
    package = importlib.import_module(PACKAGE_NAME)
    return sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_") and not info.ispkg
    )


def _module_constants(tree: ast.Module) -> dict[str, object]:
    """Module-level ``NAME = <literal>`` assignments (e.g. ``SEED = 20240329``)."""
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    constants[target.id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return constants


def _literal_keywords(tree: ast.Module) -> dict[str, object]:
    """The literal keyword arguments of the module's ``CLAIM = Claim(...)`` (or
    ``CLAIM = numerical_claim(...)``) call; a keyword given as a module constant is looked up.
    For :func:`~proofs._numerical.numerical_claim` the method follows from the expected
    verdict, as it does there."""
    constants = _module_constants(tree)
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "CLAIM" for t in node.targets)
            and isinstance(node.value, ast.Call)
        ):
            found: dict[str, object] = {}
            for kw in node.value.keywords:
                if isinstance(kw.value, ast.Name) and kw.value.id in constants:
                    found[kw.arg] = constants[kw.value.id]
                    continue
                try:
                    found[kw.arg] = ast.literal_eval(kw.value)
                except ValueError:
                    continue
            func = node.value.func
            if isinstance(func, ast.Name) and func.id == "numerical_claim":
                expected = found.get("expected", "holds")
                found.setdefault("expected", expected)
                found.setdefault("method", "refuted" if expected == "refuted" else "numerical")
            return found
    return {}


def unimportable_claim(name: str, error: ImportError) -> Claim:
    """A stand-in for claim module ``name`` whose import raised ``error``: its check fails.

    The record (title, family, method, expected verdict) is read from the module's source, so
    the report still shows which claim broke; running it re-raises the import error, which the
    runner reports as ``fails`` (package code that does not import is never "pending").
    """
    spec = importlib.util.find_spec(f"{PACKAGE_NAME}.{name}")
    origin = spec.origin if spec is not None and spec.origin else ""
    source = Path(origin).read_text(encoding="utf-8") if origin else ""
    tree = ast.parse(source) if source else ast.Module(body=[], type_ignores=[])
    keywords = _literal_keywords(tree)
    statement = docstring_section(ast.get_docstring(tree), "Statement") or "$\\text{unknown}$"
    family = keywords.get("family")
    method = keywords.get("method")
    expected = keywords.get("expected")

    def run(*, thorough: bool = False) -> Verdict:
        raise error

    return Claim(
        name=name,
        title=str(keywords.get("title") or f"{name} (the claim module does not import)"),
        statement=statement if "$" in statement else f"{statement} $\\cdot$",
        source=str(keywords.get("source") or "unknown: the module does not import"),
        method=method if method in ("symbolic", "numerical", "refuted") else "symbolic",
        expected=expected if expected in ("holds", "refuted") else "holds",
        family=family if family in FAMILIES else next(iter(FAMILIES)),
        run=run,
        module=f"{PACKAGE_NAME}.{name}",
        seed=keywords.get("seed") if isinstance(keywords.get("seed"), int) else 0,
    )


def catalogue() -> list[Claim]:
    """Import every claim module and return its ``CLAIM``, ordered by family then name.

    Raises
    ------
    TypeError
        If a claim module defines no ``CLAIM`` of type :class:`~proofs.Claim`.
    ValueError
        If a claim's name differs from its module's name.
    """
    claims = []
    for name in claim_module_names():
        try:
            module = importlib.import_module(f"{PACKAGE_NAME}.{name}")
        except ImportError as exc:
            claims.append(unimportable_claim(name, exc))
            continue
        claim = getattr(module, "CLAIM", None)
        if not isinstance(claim, Claim):
            raise TypeError(f"{PACKAGE_NAME}.{name} must define CLAIM = proofs.Claim(...)")
        if claim.name != name or claim.module != module.__name__:
            raise ValueError(
                f"{PACKAGE_NAME}.{name}: CLAIM.name must be {name!r} and CLAIM.module "
                f"{module.__name__!r}; got {claim.name!r} and {claim.module!r}"
            )
        claims.append(claim)
    order = {family: i for i, family in enumerate(FAMILIES)}
    return sorted(claims, key=lambda c: (order[c.family], c.name))


def select(only: Iterable[str] | None = None, *, family: str | None = None) -> list[Claim]:
    """The claims named in ``only`` (all when ``None``), optionally restricted to one family.

    Raises
    ------
    ValueError
        For an unknown claim name or family; the message lists the valid ones.
    """
    claims = catalogue()
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {family!r}")
    if family is not None:
        claims = [c for c in claims if c.family == family]
    if only is None:
        return claims
    wanted = [n.strip() for n in only if n.strip()]
    known = {c.name: c for c in claims}
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        scope = f" in family {family!r}" if family is not None else ""
        shown = ", ".join(repr(n) for n in unknown) if unknown else "(none given)"
        raise ValueError(
            f"unknown claim name(s) {shown}{scope}; valid names: {', '.join(sorted(known))}"
        )
    seen: dict[str, Claim] = {}
    for n in wanted:
        seen.setdefault(n, known[n])
    return list(seen.values())
