"""The two records of the catalogue: a :class:`Claim` and the :class:`Verdict` its check returns.

A claim module in :mod:`proofs` holds one claim. Its docstring carries the statement (LaTeX
between ``$`` signs, in a section headed ``Statement``), the source and the method; the module
defines ``CLAIM = Claim(...)`` whose ``run`` function returns a :class:`Verdict` with the
evidence (a simplified symbolic residual, or the measured numbers).

Verdicts
--------
``holds``
    The statement was verified: a sympy residual simplified to exactly zero, or every measured
    number lies within its stated tolerance.
``refuted``
    An experiment or an exact counterexample shows that the statement fails as stated.
``fails``
    The check did not establish what it set out to (a residual that is not zero, a number
    outside its tolerance, or an exception in the check). This is never an expected verdict:
    it always marks a claim that needs attention.
``pending``
    The check cannot run because an optional dependency *outside* the package is not
    installed; the verdict says which import failed. Never counted as a pass. Code of the
    package itself is never a reason to be pending: an ``ImportError`` raised while importing
    ``kernelapprox`` code (a missing module, a missing name, a broken import inside it) makes
    the claim ``fails`` (see :func:`try_import` and :func:`proofs._runner.evaluate`).
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: How a claim is checked.
METHODS: tuple[str, ...] = ("symbolic", "numerical", "refuted")
#: Verdicts a claim may be expected to reach.
EXPECTED: tuple[str, ...] = ("holds", "refuted")
#: Every verdict a check can return.
VERDICTS: tuple[str, ...] = ("holds", "refuted", "pending", "fails")

#: Claim families: one documentation page each (``docs/theory/<family>.md``).
FAMILIES: dict[str, tuple[str, str]] = {
    "random_features": (
        "Random Fourier and positive random features",
        "Unbiasedness and variance of the feature maps the toolkit builds: Bochner's theorem for "
        "the Gaussian kernel, positive (Performer) features for the softmax kernel, the "
        "Sutherland & Schneider comparison of the two trigonometric embeddings, the three "
        "Performer MSE formulas, and the variance reduction of orthogonal random features.",
    ),
    "qmc": (
        "Quasi-Monte Carlo and discrepancy",
        "The integration-error theory behind quasi-Monte Carlo features: Koksma-Hlawka with the "
        "exact 1-D star discrepancy, the convergence rate of scrambled Sobol' points, and the "
        "closed form of the box discrepancy for a Gaussian measure.",
    ),
    "dijiang": (
        "DiJiang: DCT features and weighted quasi-Monte Carlo",
        "The claims of DiJiang (Chen et al., ICML 2024, arXiv 2403.19928) and of its released "
        "code (YuchuanTian/DiJiang): the DCT matrix, what the released feature map estimates, "
        "Theorem 3.2 with the radial law the proof needs and with the one the code uses, the "
        "'QMC is O(1/m)' rate, and Theorem 3.3 on weighted discrepancy.",
    ),
    "attention": (
        "Linear attention",
        "Algebraic identities the attention backend relies on: the chunked causal algorithm "
        "computes exactly the masked quadratic form.",
    ),
    "dynamics": (
        "Low-rank training dynamics",
        "Deep overparameterised low-rank learning (Yaras et al., ICML 2024), evolving subnetwork "
        "training (EST, Li et al., ICML 2024) and low-dimensional projected attention (LPA, "
        "Lv et al., EMNLP 2024).",
    ),
    "compression": (
        "Model compression",
        "Model compression measured as an approximation: structured pruning with adaptive "
        "tuning (APT, Zhao, Hajishirzi & Cao, ICML 2024) and nested quantization "
        "(Any-Precision LLM, Park et al., ICML 2024).",
    ),
}

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _jsonable(value: Any) -> Any:
    """Turn numpy/sympy scalars and containers into plain JSON values (non-finite floats -> str)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _jsonable(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    return str(value)


def seed_parameter(run: Callable[..., Any]) -> inspect.Parameter | None:
    """The keyword-only ``seed`` parameter of a claim's ``run``, or ``None`` if it has none."""
    parameter = inspect.signature(run).parameters.get("seed")
    if parameter is None or parameter.kind is not inspect.Parameter.KEYWORD_ONLY:
        return None
    return parameter


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one claim.

    Attributes
    ----------
    status : {"holds", "refuted", "pending", "fails"}
        See the module docstring.
    summary : str
        One human-readable line with the evidence (residuals, measured numbers, tolerances).
    evidence : dict
        The same evidence as plain JSON values (numbers, strings, lists).
    """

    status: str
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in VERDICTS:
            raise ValueError(f"status must be one of {', '.join(VERDICTS)}; got {self.status!r}")
        if not isinstance(self.summary, str) or not self.summary.strip():
            raise ValueError("summary must be a non-empty string describing the evidence")
        object.__setattr__(self, "evidence", _jsonable(dict(self.evidence)))

    @classmethod
    def decide(cls, ok: bool, summary: str, *, failure: str = "fails", **evidence: Any) -> Verdict:
        """``holds`` when ``ok``, otherwise ``failure`` (``"fails"`` or ``"refuted"``)."""
        return cls("holds" if ok else failure, summary, evidence)

    @classmethod
    def pending(cls, reason: str, **evidence: Any) -> Verdict:
        return cls("pending", reason, evidence)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "summary": self.summary, "evidence": dict(self.evidence)}


@dataclass(frozen=True)
class Claim:
    """One machine-checked claim.

    Attributes
    ----------
    name : str
        Unique identifier, equal to the claim module's name (``proofs.<name>``).
    title : str
        A short title.
    statement : str
        The statement in LaTeX (inline ``$...$``, display ``$$...$$``), taken from the
        ``Statement`` section of the module docstring by :func:`docstring_section`.
    source : str
        Where the statement comes from: paper, theorem or equation number, or code.
    method : {"symbolic", "numerical", "refuted"}
        ``symbolic``: sympy proves an identity exactly; ``numerical``: an experiment with a
        stated tolerance and seed; ``refuted``: an experiment or exact counterexample showing
        that a published claim fails as stated.
    expected : {"holds", "refuted"}
        The verdict the check should reach; ``method="refuted"`` goes with ``expected="refuted"``.
    family : str
        A key of :data:`FAMILIES`.
    run : callable
        ``run(*, thorough: bool) -> Verdict``. ``thorough`` enlarges numerical experiments. A
        seeded experiment also takes ``seed`` (keyword-only, default :attr:`seed`), the root
        seed of its randomness (see :attr:`takes_seed` and :mod:`proofs._numerical`).
    module : str
        Dotted name of the module that defines the claim.
    seed : int or None
        Root seed of a numerical experiment (``None`` for symbolic claims).
    tolerance : str
        How the tolerance of a numerical check is derived.
    requires : tuple of str
        Modules the check imports. A missing module of the package makes the claim ``fails``;
        only a missing optional dependency outside it makes it ``pending``.
    verifies : tuple of str
        Dotted names of the package code whose theory the claim underpins (for the docs).
    """

    name: str
    title: str
    statement: str
    source: str
    method: str
    expected: str
    family: str
    run: Callable[..., Verdict]
    module: str
    seed: int | None = None
    tolerance: str = ""
    requires: tuple[str, ...] = ()
    verifies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"name must be a lower-case identifier, got {self.name!r}")
        for attr in ("title", "statement", "source", "module"):
            value = getattr(self, attr)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{attr} of claim {self.name!r} must be a non-empty string")
        if "$" not in self.statement:
            raise ValueError(f"statement of claim {self.name!r} must contain LaTeX ($...$)")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.expected not in EXPECTED:
            raise ValueError(
                f"expected must be one of {', '.join(EXPECTED)}; got {self.expected!r}"
            )
        if (self.method == "refuted") != (self.expected == "refuted"):
            raise ValueError(
                f"claim {self.name!r}: method 'refuted' goes with expected verdict 'refuted' "
                f"(got method={self.method!r}, expected={self.expected!r})"
            )
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {self.family!r}")
        if not callable(self.run):
            raise TypeError(f"run of claim {self.name!r} must be callable")
        if self.method == "numerical" and self.seed is None:
            raise ValueError(f"claim {self.name!r}: a numerical experiment needs a seed")
        object.__setattr__(self, "requires", tuple(self.requires))
        object.__setattr__(self, "verifies", tuple(self.verifies))

    @property
    def takes_seed(self) -> bool:
        """Whether ``run`` takes the root seed as the keyword-only argument ``seed``."""
        return seed_parameter(self.run) is not None

    def check(self, *, thorough: bool = False, seed: int | None = None) -> Verdict:
        """Run the check and return its verdict (exceptions propagate; the runner catches them).

        ``seed`` replaces the recorded root seed of an experiment that :attr:`takes_seed`;
        ``None`` runs it with the recorded one. A claim that takes no seed refuses a seed
        (``TypeError``).
        """
        if seed is None:
            verdict = self.run(thorough=thorough)
        elif self.takes_seed:
            verdict = self.run(thorough=thorough, seed=seed)
        else:
            raise TypeError(f"claim {self.name!r} takes no seed (its run has no seed argument)")
        if not isinstance(verdict, Verdict):
            raise TypeError(f"claim {self.name!r}: run() returned {type(verdict).__name__}")
        return verdict


def docstring_section(doc: str | None, heading: str) -> str:
    """The text of the section ``heading`` (underlined with dashes) of a docstring, dedented."""
    if not doc:
        return ""
    lines = doc.splitlines()
    body: list[str] = []
    inside = False
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        is_heading = bool(line.strip()) and re.fullmatch(r"\s*-{3,}\s*", nxt or "") is not None
        if is_heading:
            if inside:
                break
            inside = line.strip() == heading
            continue
        if inside and re.fullmatch(r"\s*-{3,}\s*", line):
            continue
        if inside:
            body.append(line)
    text = "\n".join(body).strip("\n")
    indents = [len(ln) - len(ln.lstrip()) for ln in text.splitlines() if ln.strip()]
    cut = min(indents, default=0)
    return "\n".join(ln[cut:] for ln in text.splitlines()).strip()


#: The package whose code the claims verify; an import of it that fails is a failure.
PACKAGE = "kernelapprox"


def is_package_module(module: str) -> bool:
    """Whether ``module`` is ``kernelapprox`` or one of its submodules."""
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def package_module(module: str) -> Any:
    """The imported module ``module`` of the package (as ``sys.modules`` holds it).

    A claim imports the package code it verifies with this inside ``run``, so that an
    ``ImportError`` is raised when the claim runs (the runner reports it as ``fails``, never
    as pending) and ``kernelapprox verify --list`` imports no heavy module.
    """
    if not is_package_module(module):
        raise ValueError(f"package_module takes a module of {PACKAGE}, got {module!r}")
    return importlib.import_module(module)


def try_import(module: str) -> tuple[Any, str | None]:
    """Import ``module``; return ``(module, None)``, or ``(None, reason)`` for a missing extra.

    Only an optional dependency outside the package may be missing: for a module of
    ``kernelapprox`` the ``ImportError`` propagates, and the runner reports the claim as
    ``fails`` (package code that does not import is a defect, never "not available yet").
    Any other error while importing propagates too.
    """
    if is_package_module(module):
        return importlib.import_module(module), None
    try:
        return importlib.import_module(module), None
    except ImportError as exc:
        return None, f"{module} is not installed ({type(exc).__name__}: {exc})"


def package_attr(module: str, name: str) -> Any:
    """``module.name`` for a module of the package; an ``ImportError`` when either is missing."""
    imported = importlib.import_module(module)
    try:
        return getattr(imported, name)
    except AttributeError:
        raise ImportError(f"cannot import name {name!r} from {module!r}", name=module) from None
