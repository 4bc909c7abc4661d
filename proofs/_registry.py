"""Discovery of the claim modules of :mod:`proofs` and selection by name or family."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from proofs._core import FAMILIES, Claim


def claim_module_names() -> list[str]:
    """Names of the claim modules: every public (not ``_``-prefixed) module of :mod:`proofs`."""
    import proofs

    return sorted(
        info.name
        for info in pkgutil.iter_modules(proofs.__path__)
        if not info.name.startswith("_") and not info.ispkg
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
        module = importlib.import_module(f"proofs.{name}")
        claim = getattr(module, "CLAIM", None)
        if not isinstance(claim, Claim):
            raise TypeError(f"proofs.{name} must define CLAIM = proofs.Claim(...)")
        if claim.name != name or claim.module != module.__name__:
            raise ValueError(
                f"proofs.{name}: CLAIM.name must be {name!r} and CLAIM.module "
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
