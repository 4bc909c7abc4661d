"""The specification of a sweep and its cells.

A study sweeps ``data x kernel x map x sampler x weights x dim x n_features`` and runs
``replications`` independent randomizations of every cell. A cell whose map cannot target
its kernel, or whose sampler does not suit its map, is left out of a sweep with the reason
recorded; a specification with no runnable cell is an error.
"""

from __future__ import annotations

import itertools
import json
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kernelapprox._validation import as_seed_sequence, check_choice, check_positive_int
from kernelapprox.estimators.gram import METRICS as GRAM_METRICS
from kernelapprox.estimators.learning import LEARNING_METRICS
from kernelapprox.features import MAPS, incompatibility
from kernelapprox.kernels import KERNELS
from kernelapprox.sampling import SAMPLERS, from_spec
from kernelapprox.study.data import (
    BUILTIN,
    LEARNING_SPLIT,
    SUBSAMPLE,
    SYNTHETIC,
    check_n_points,
    content_sha256,
    is_file,
    resolve_dim,
)

WEIGHTS = ("uniform", "box", "fitted")
#: Gram-matrix errors and learning-task errors (the latter need labelled data).
METRICS = {**GRAM_METRICS, **LEARNING_METRICS}
#: Sweep axes: growing one (``--extend``) adds cells and keeps every stored row valid.
AXES = ("data", "kernels", "maps", "samplers", "weights", "dims", "features", "metrics")
#: Options every row depends on: a study with another value is another study.
FIXED = ("length_scale", "kernel_scale", "n_points", "seed")
#: The command-line option of each identity entry, for messages.
OPTION = {
    "data": "--data", "kernels": "--kernel", "maps": "--maps", "samplers": "--samplers",
    "weights": "--weights", "dims": "--dim", "features": "--features", "metrics": "--metric",
    "length_scale": "--length-scale", "kernel_scale": "--scale", "n_points": "--n-points",
    "seed": "--seed", "replications": "--replications", "data_sha256": "--data",
    "rules": "--n-points/--length-scale", "learning": "--target/--ridge",
}  # fmt: skip
#: How the laplacian kernel's median length scale is measured (its own L1 distance).
LAPLACIAN_MEDIAN = "cityblock"
LENGTH_SCALE_RULES = ("median",)
KERNEL_SCALE_RULES = ("inv_sqrt_dim",)


def _number(value: Any) -> int:
    return value if isinstance(value, int) else 0


@dataclass(frozen=True)
class Cell:
    """One point of the sweep; all its replications share everything but the randomization."""

    data: str
    kernel: str
    map: str
    sampler: str
    weights: str
    dim: int
    #: The number of frequencies ``m`` (not the output columns, ``m * components``), as
    #: everywhere in the package; the ``n_features`` column of ``results.csv``.
    n_features: int

    @property
    def key(self) -> str:
        return "|".join(str(v) for v in asdict(self).values())

    def seed(self, root: int, replication: int) -> np.random.SeedSequence:
        """Seed of one replication: a child of the study seed keyed by cell and replication.

        Independent of the order in which cells run, so a resumed study draws the same
        frequencies as an uninterrupted one.
        """
        base = as_seed_sequence(root)
        return np.random.SeedSequence(
            base.entropy, spawn_key=(zlib.crc32(self.key.encode()), replication)
        )


@dataclass
class StudySpec:
    """Everything that defines a study (and nothing about where it is written)."""

    data: list[str] = field(default_factory=lambda: ["normal"])
    kernels: list[str] = field(default_factory=lambda: ["gaussian"])
    length_scale: float | str = "median"
    kernel_scale: float | str = 1.0
    dims: list[int | None] = field(default_factory=lambda: [None])
    #: rows per data set, or ``"all"`` (files and digits); a smaller set uses all its rows
    n_points: int | str = 400
    maps: list[str] = field(default_factory=lambda: ["sincos", "positive"])
    samplers: list[str] = field(default_factory=lambda: ["mc", "orthogonal", "sobol", "halton"])
    weights: list[str] = field(default_factory=lambda: ["uniform"])
    features: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 256])
    metrics: list[str] = field(default_factory=lambda: ["rel_fro", "rel_spectral", "max_abs"])
    replications: int = 5
    seed: int = 0
    level: float = 0.95
    #: the sampler every other sampler is compared with (summary only, like ``level``)
    baseline: str = "mc"
    #: targets of a data file's rows for the learning metrics (``.npy``/``.csv``)
    target: str | None = None
    #: ridge ``lambda`` of the learning metrics' kernel ridge regression
    ridge: float = 1e-2

    def validate(self) -> StudySpec:
        for name, values, allowed in (
            ("kernel", self.kernels, KERNELS),
            ("maps", self.maps, MAPS),
            ("samplers", self.samplers, SAMPLERS),
            ("weights", self.weights, WEIGHTS),
            ("metric", self.metrics, METRICS),
        ):
            if not values:
                raise ValueError(f"{name} must name at least one of {', '.join(allowed)}")
            for v in values:
                if name == "samplers" and isinstance(v, str) and ":" in v:
                    from_spec(v)  # a sampler with options: its ValueError names the bad one
                else:
                    check_choice(v, name, allowed)
        if not self.data:
            raise ValueError(
                f"data must name a built-in set ({', '.join(BUILTIN)}) or a .npy/.csv file"
            )
        for name in self.data:
            if not isinstance(name, str) or not name or any(c in name for c in "\r\n\0"):
                raise ValueError(
                    f"data must be a name or a .npy/.csv path on one line, got {name!r}"
                )
        if isinstance(self.length_scale, str):
            check_choice(self.length_scale, "length_scale", LENGTH_SCALE_RULES)
        elif not (np.isfinite(self.length_scale) and self.length_scale > 0):
            raise ValueError(f"length_scale must be > 0 or 'median', got {self.length_scale}")
        if isinstance(self.kernel_scale, str):
            check_choice(self.kernel_scale, "kernel_scale", KERNEL_SCALE_RULES)
        elif not (np.isfinite(self.kernel_scale) and self.kernel_scale > 0):
            raise ValueError(f"kernel_scale must be > 0 or 'inv_sqrt_dim', got {self.kernel_scale}")
        for m in self.features:
            check_positive_int(m, "features")
        for d in self.dims:
            if d is not None:
                check_positive_int(d, "dim")
        self.n_points = check_n_points(self.n_points)
        if self.n_points == "all" and any(d in SYNTHETIC for d in self.data):
            drawn = ", ".join(d for d in self.data if d in SYNTHETIC)
            raise ValueError(
                f"n_points='all' needs data sets with rows; {drawn} are drawn at random: "
                "give a number of points"
            )
        check_positive_int(self.replications, "replications")
        check_positive_int(self.seed, "seed", minimum=0)
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1), got {self.level}")
        check_choice(self.baseline, "baseline", SAMPLERS)
        self._validate_learning()
        if not self.cells()[0]:
            reasons = "; ".join(sorted(set(self.cells()[1].values())))
            raise ValueError(f"no cell of this study can run: {reasons}")
        return self

    def learning_metrics(self) -> list[str]:
        return [m for m in dict.fromkeys(self.metrics) if m in LEARNING_METRICS]

    def _validate_learning(self) -> None:
        files = [d for d in self.data if is_file(d)]
        if self.target is not None:
            if not isinstance(self.target, str) or not is_file(self.target):
                raise ValueError(f"target must be a .npy or .csv file, got {self.target!r}")
            if len(set(files)) != 1:
                raise ValueError(
                    "target labels the rows of one data file: give exactly one .npy/.csv "
                    f"--data with --target (data: {', '.join(self.data)})"
                )
        learning = self.learning_metrics()
        if not learning:
            return
        if not (np.isfinite(self.ridge) and self.ridge > 0):
            raise ValueError(f"ridge must be > 0, got {self.ridge}")
        unlabelled = [d for d in self.data if d in SYNTHETIC or (is_file(d) and not self.target)]
        if unlabelled:
            raise ValueError(
                f"metric {learning[0]} needs labelled data; {', '.join(unlabelled)} has no "
                "targets: give --target FILE for a data file, or use --data digits"
            )

    def cells(self) -> tuple[list[Cell], dict[str, str]]:
        """Runnable cells in sweep order, and the skipped combinations with their reasons."""
        runnable: list[Cell] = []
        skipped: dict[str, str] = {}
        for data, kernel, map_, sampler, weights, dim, m in itertools.product(
            *(list(dict.fromkeys(v)) for v in (self.data, self.kernels, self.maps)),
            *(list(dict.fromkeys(v)) for v in (self.samplers, self.weights, self.dims)),
            sorted(set(self.features)),
        ):  # a name given twice is one cell, not two
            reason = incompatibility(kernel, map_, sampler, weights)
            if reason:
                skipped[f"{kernel}/{map_}/{sampler}/{weights}"] = reason
                continue
            runnable.append(Cell(data, kernel, map_, sampler, weights, resolve_dim(data, dim), m))
        return runnable, skipped

    def identity(self) -> dict[str, Any]:
        """Every option that changes a row or the set of rows, normalized, JSON-ready.

        This is what ``spec.json`` stores and what ``--resume`` compares: the sweep axes
        (:data:`AXES`, as sorted lists without repeats, since neither order nor repeats
        change the rows), :data:`FIXED` options, ``replications`` and, for each ``.npy``
        data file, the SHA-256 of its bytes (``data_sha256``), and ``rules``: how rows are
        subsampled from files and digits (:data:`~kernelapprox.study.data.SUBSAMPLE`) and
        how the Laplacian's median length scale is measured (:data:`LAPLACIAN_MEDIAN`), for
        the studies they apply to (a study stored under older rules is not resumed; a study
        to which neither applies keeps the identity it always had). ``level`` and ``baseline``
        are not part of it: they change only the summary, which is recomputed from the rows
        on every run.
        """
        ident: dict[str, Any] = {}
        for name in AXES:
            values = list(dict.fromkeys(getattr(self, name)))
            ident[name] = sorted(values, key=lambda v: (v is not None, _number(v), str(v)))
        for name in FIXED:
            ident[name] = getattr(self, name)
        ident["replications"] = self.replications
        ident["data_sha256"] = {d: content_sha256(d) for d in ident["data"] if is_file(d)}
        rules = {}
        if any(d not in SYNTHETIC for d in ident["data"]):
            rules["subsample"] = SUBSAMPLE
        if "laplacian" in ident["kernels"] and self.length_scale == "median":
            rules["laplacian_median"] = LAPLACIAN_MEDIAN
        if rules:
            ident["rules"] = rules
        if self.learning_metrics():
            ident["learning"] = {
                "ridge": float(self.ridge), "split": LEARNING_SPLIT, "target": self.target,
                "target_sha256": content_sha256(self.target) if self.target else None,
            }  # fmt: skip
        return ident

    @classmethod
    def from_identity(cls, identity: dict[str, Any], **options: Any) -> StudySpec:
        """The spec whose :meth:`identity` is ``identity``; ``options`` set the rest (level,
        baseline)."""
        fields = {name: identity[name] for name in (*AXES, *FIXED, "replications")}
        learning = identity.get("learning")
        if isinstance(learning, dict):
            fields.update(target=learning.get("target"), ridge=learning.get("ridge", 1e-2))
        return cls(**fields, **options)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)
