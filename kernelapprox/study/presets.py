"""Named studies: ``kernelapprox study --preset NAME`` (explicit options override a preset).

``default``
    Gaussian kernel (median length scale) on 400 standard-normal points in d=8; maps
    ``sincos``, ``positive`` and ``dct``; samplers MC, orthogonal, Sobol', Halton;
    m = 16..256; 5 replications. Under a minute on 2 cores.
``dijiang``
    The maps DiJiang compares (positive/PRF, fourier, dct, dct_released) with MC and QMC
    radii, on attention-shaped data (``qk`` and ``qk_unit``, d=64) at m = d and m = 4d, for
    the softmax kernel ``exp(q.k / sqrt(d))`` and the Gaussian kernel with the matching
    length scale ``d^{1/4}`` (``exp(-|q-k|^2 / (2 sqrt d))``); every map is scored against
    the kernel it claims to target, and all maps against the attention matrix
    (``rownorm_fro``).
``avron``
    The Gram-error protocol of Avron et al. (JMLR 2016) as reproduced in the reference notes:
    ``sincos`` features, Gaussian kernel with the median length scale, samplers MC,
    orthogonal, Halton, Sobol', lattice, m = 64..1024, 10 replications, spectral and
    Frobenius errors, on both of its data sets in one run: 500 digits (d=64, a seeded
    random subsample) and 500 points of ``N(0, I_8)``.
"""

from __future__ import annotations

from kernelapprox._validation import check_choice
from kernelapprox.study.spec import StudySpec


def preset(name: str) -> StudySpec:
    """The :class:`StudySpec` of a named preset."""
    check_choice(name, "preset", PRESETS)
    return PRESETS[name]()


def _default() -> StudySpec:
    return StudySpec(maps=["sincos", "positive", "dct"])


def _dijiang() -> StudySpec:
    return StudySpec(
        data=["qk", "qk_unit"],
        kernels=["softmax", "gaussian"],
        kernel_scale="inv_sqrt_dim",
        length_scale=64**0.25,
        dims=[64],
        n_points=256,
        maps=["positive", "fourier", "dct", "dct_released"],
        samplers=["mc", "sobol", "halton"],
        features=[64, 256],
        metrics=["rel_fro", "rownorm_fro", "rel_spectral", "max_abs"],
        replications=5,
    )


def _avron() -> StudySpec:
    return StudySpec(
        data=["digits", "normal"],  # d = 64 and d = 8 (normal's default dimension)
        n_points=500,
        maps=["sincos"],
        samplers=["mc", "orthogonal", "halton", "sobol", "lattice"],
        features=[64, 128, 256, 512, 1024],
        metrics=["rel_spectral", "rel_fro"],
        replications=10,
    )


PRESETS = {"default": _default, "dijiang": _dijiang, "avron": _avron}

#: Metrics whose tables ``kernelapprox study`` prints for a preset (default: the first metric).
#: DiJiang's released map targets attention, not kernel values: its attention-matrix error
#: (``rownorm_fro``) is printed before the kernel error.
PRESET_TABLES = {"dijiang": ["rownorm_fro", "rel_fro"]}
