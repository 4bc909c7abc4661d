"""One name per concept, and one rule for seed defaults, across the public API.

Walks every public callable of ``kernelapprox`` (``inspect.signature``) and checks

* **names** (docs/guide/architecture.md, "Names"): ``n_features`` is the number of
  frequencies ``m``, ``output_dim`` the number of output columns; the old names of ``m``
  (``m``, ``n_frequencies``, ``n_samples``) appear in no public signature, and every renamed
  keyword still works for one release through :func:`kernelapprox._validation.renamed_keywords`,
  with a ``DeprecationWarning`` that names the new keyword and the same result;
* **seeds**: every defaulted ``seed`` parameter defaults to ``None`` (the call returns a
  random object) or ``0`` (the call computes a reported number), as the rule beside
  :data:`kernelapprox._validation.SeedLike` says, and each is classified below, so that a new
  one must be classified too.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import kernelapprox

#: Modules that need an optional dependency missing here are skipped by name.
OPTIONAL = ("kernelapprox.attention.triton",)


def _public_modules() -> Iterator[Any]:
    for info in pkgutil.walk_packages(kernelapprox.__path__, "kernelapprox."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts[1:]):
            continue
        try:
            yield importlib.import_module(info.name)
        except ImportError:
            if not info.name.startswith(OPTIONAL):
                raise


def _public_callables() -> dict[str, Callable[..., Any]]:
    """``defining_module:qualname`` -> callable, for the functions and classes that the
    package's public modules expose (also those defined in a private module and re-exported,
    such as ``FeatureMap``), with their public methods and ``__init__``."""
    found: dict[str, Callable[..., Any]] = {}
    for module in _public_modules():
        for name, obj in vars(module).items():
            defined_in = getattr(obj, "__module__", None) or ""
            if name.startswith("_") or not defined_in.startswith("kernelapprox."):
                continue
            if inspect.isfunction(obj):
                found[f"{defined_in}:{obj.__qualname__}"] = obj
            elif inspect.isclass(obj):
                found[f"{defined_in}:{obj.__qualname__}"] = obj
                for attr, raw in vars(obj).items():
                    if attr.startswith("_") and attr != "__init__":
                        continue
                    if isinstance(raw, staticmethod | classmethod):
                        raw = raw.__func__
                    if inspect.isfunction(raw):
                        found[f"{defined_in}:{obj.__qualname__}.{attr}"] = raw
    return found


CALLABLES = _public_callables()


def _parameters(func: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(func).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        return {}


# ---------------------------------------------------------------------------------- names
#: Old names of ``m`` (the number of frequencies), and the rooms where they meant it.
#: ``n_samples`` elsewhere counts data rows (``dynamics.objectives.whitened_regression``), a
#: different concept that keeps its name.
OLD_NAMES_OF_M = {
    "m": ("kernelapprox",),
    "n_frequencies": ("kernelapprox",),
    "n_samples": (
        "kernelapprox.kernels",
        "kernelapprox.sampling",
        "kernelapprox.features",
        "kernelapprox.estimators",
    ),
}


def test_the_public_surface_was_found():
    assert len(CALLABLES) > 300
    assert "kernelapprox.features:make" in CALLABLES
    assert "kernelapprox.sampling:sample_frequencies" in CALLABLES


def test_no_public_signature_uses_an_old_name_of_m():
    offenders = [
        f"{where}({name})"
        for where, func in CALLABLES.items()
        for name, rooms in OLD_NAMES_OF_M.items()
        if name in _parameters(func) and where.startswith(rooms)
    ]
    assert not offenders, offenders


#: Every renamed keyword of the public API: (callable, old keyword, new keyword, a call
#: with the new keyword as (args, kwargs)). The walk below finds every callable that
#: carries renames and requires each of its renames to be listed here.
_Z = np.array([0.3, 1.1])
_X, _Y = np.array([[0.1, -0.2, 0.3]]), np.array([[0.2, 0.1, -0.1]])


def _cases() -> list[tuple[str, str, str, tuple, dict]]:
    import torch

    from kernelapprox.kernels import Gaussian

    reference = torch.zeros(2, 3)  # a per-head log-scale reference (B, H_kv)
    measure = Gaussian().spectral_measure
    return [
        ("kernelapprox.estimators.analytic:sincos_variance", "n_features", "output_dim",
         (0.5, 0.1), {"output_dim": 8}),
        ("kernelapprox.estimators.analytic:orf_variance", "n_frequencies", "n_features",
         (_Z,), {"dim": 4, "n_features": 6}),
        ("kernelapprox.estimators.analytic:performer_positive_mse", "n_samples", "n_features",
         (_X, _Y), {"n_features": 8}),
        ("kernelapprox.estimators.analytic:performer_trigonometric_mse", "n_samples",
         "n_features", (_X, _Y), {"n_features": 8}),
        ("kernelapprox.estimators.analytic:performer_hyperbolic_mse", "n_samples", "n_features",
         (_X, _Y), {"n_features": 8}),
        ("kernelapprox.estimators.bounds:rahimi_recht_probability", "n_frequencies",
         "n_features", (0.5,), {"n_features": 400, "dim": 3, "sigma_p": 1.0, "diameter": 1.0}),
        ("kernelapprox.estimators.bounds:sutherland_schneider_probability", "n_features",
         "output_dim", (0.5,), {"output_dim": 800, "dim": 3, "sigma_p": 1.0, "diameter": 1.0}),
        ("kernelapprox.sampling:sample_frequencies", "m", "n_features",
         ("mc", Gaussian()), {"n_features": 5, "dim": 3, "seed": 1}),
        ("kernelapprox.sampling:sample_frequencies", "d", "dim",
         ("mc", Gaussian()), {"n_features": 5, "dim": 3, "seed": 1}),
        ("kernelapprox.sampling._base:Sampler.frequencies", "m", "n_features",
         (_sampler("mc"), measure), {"n_features": 5, "dim": 3, "seed": 2}),
        ("kernelapprox.sampling._base:Sampler.frequencies", "d", "dim",
         (_sampler("mc"), measure), {"n_features": 5, "dim": 3, "seed": 2}),
        ("kernelapprox.sampling.orthogonal:StructuredOrthogonal.frequencies", "m", "n_features",
         (_sampler("sorf"), measure), {"n_features": 64, "dim": 64, "seed": 3}),
        ("kernelapprox.sampling.orthogonal:StructuredOrthogonal.frequencies", "d", "dim",
         (_sampler("sorf"), measure), {"n_features": 64, "dim": 64, "seed": 3}),
        ("kernelapprox.sampling.orthogonal:stacked_blocks", "m", "n_features",
         (), {"n_features": 10, "block": 4}),
        ("kernelapprox.sampling.weights:uniform_weights", "m", "n_features",
         (), {"n_features": 4}),
        ("kernelapprox.features._base:check_weights", "m", "n_features",
         ([0.5, 0.5],), {"n_features": 2}),
        ("kernelapprox.attention.state:AttentionState.zeros", "n_features", "output_dim",
         (2, 1), {"output_dim": 6, "value_dim": 3}),
        ("kernelapprox.attention.checks:per_feature_reference", "n_features", "output_dim",
         (reference,), {"output_dim": 4}),
    ]  # fmt: skip


def _sampler(name: str) -> Any:
    from kernelapprox.sampling import make_sampler

    return make_sampler(name)


def _resolve(where: str) -> Callable[..., Any]:
    module, _, qualname = where.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _renamed() -> dict[str, dict[str, str]]:
    """The renames carried by the public callables."""
    return {
        where: func.__renamed_keywords__
        for where, func in CALLABLES.items()
        if hasattr(func, "__renamed_keywords__")
    }


def test_every_renamed_keyword_has_a_case():
    listed = {(where, old) for where, old, *_ in _cases()}
    carried = {(where, old) for where, renames in _renamed().items() for old in renames}
    assert carried == listed


@pytest.mark.parametrize("where, old, new, args, kwargs", _cases(), ids=lambda v: str(v)[:40])
def test_old_keyword_warns_names_the_new_one_and_gives_the_same_result(
    where, old, new, args, kwargs
):
    func = _resolve(where)
    params = inspect.signature(func).parameters
    assert new in params and old not in params
    assert func.__renamed_keywords__[old] == new
    expected = func(*args, **kwargs)
    old_kwargs = {(old if k == new else k): v for k, v in kwargs.items()}
    with pytest.warns(DeprecationWarning, match=rf"'{old}' is deprecated; pass {new}="):
        got = func(*args, **old_kwargs)
    for g, e in zip(_arrays(got), _arrays(expected), strict=True):
        np.testing.assert_array_equal(g, e)
    with pytest.raises(TypeError, match=rf"pass only {new}="):
        func(*args, **kwargs, **{old: kwargs[new]})


def _arrays(result: Any) -> list[Any]:
    """A result as a list of arrays (a tuple of tensors such as an ``AttentionState``)."""
    items = result if isinstance(result, tuple) else (result,)
    return [np.asarray(item) for item in items]


def test_the_meaning_change_is_named_in_the_warning():
    """``sincos_variance``'s old ``n_features`` was the output width D, not m: the warning
    says so, and the old value keeps its old meaning (D = 8 outputs = 4 frequencies)."""
    from kernelapprox.estimators.analytic import cos_variance, sincos_variance

    with pytest.warns(DeprecationWarning, match="output width D"):
        old = sincos_variance(0.5, 0.1, n_features=8)
    assert old == pytest.approx(cos_variance(0.5, 0.1) / 4, rel=1e-15)


def test_new_keyword_calls_do_not_warn():
    for where, _old, _new, args, kwargs in _cases():
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            _resolve(where)(*args, **kwargs)


# ---------------------------------------------------------------------------------- seeds
#: The call returns a random object for the caller: default ``seed=None``.
SEED_NONE = {
    "kernelapprox.attention.maps:make_map",
    "kernelapprox.compression.pruning.adapters:GrowingLoRALinear",
    "kernelapprox.compression.pruning.adapters:GrowingLoRALinear.__init__",
    "kernelapprox.compression.pruning.adapters:GrowingLoRALinear.grow",
    "kernelapprox.compression.pruning.adapters:add_adapters",
    "kernelapprox.compression.quantization.kmeans:lloyd_kmeans",
    "kernelapprox.compression.quantization.models:quantize_linears",
    "kernelapprox.compression.quantization.nested:independent_quantize",
    "kernelapprox.compression.quantization.nested:nested_quantize",
    "kernelapprox.attention.modules:FeatureAttention",
    "kernelapprox.attention.modules:FeatureAttention.__init__",
    "kernelapprox.attention.modules:MultiheadFeatureAttention",
    "kernelapprox.attention.modules:MultiheadFeatureAttention.__init__",
    "kernelapprox.dynamics.completion:completion_problem",
    "kernelapprox.dynamics.est:SubnetworkSampler",
    "kernelapprox.dynamics.est:SubnetworkSampler.__init__",
    "kernelapprox.dynamics.est:SubnetworkSampler.for_config",
    "kernelapprox.dynamics.est_hf:HFSubnetworks.sampler",
    "kernelapprox.dynamics.factorization:DeepFactorization",
    "kernelapprox.dynamics.factorization:DeepFactorization.__init__",
    "kernelapprox.dynamics.lora:DeepLoRA",
    "kernelapprox.dynamics.lora:DeepLoRA.__init__",
    "kernelapprox.dynamics.objectives:whitened_regression",
    "kernelapprox.dynamics.theorem:exact_count_mask",
    "kernelapprox.dynamics.theorem:low_rank_target",
    "kernelapprox.features:make",
    "kernelapprox.features._base:FeatureMap",
    "kernelapprox.features._base:FeatureMap.__init__",
    "kernelapprox.features.exponential:Hyperbolic",
    "kernelapprox.features.exponential:Positive",
    "kernelapprox.features.trigonometric:CosOffset",
    "kernelapprox.features.trigonometric:Fourier",
    "kernelapprox.features.trigonometric:SinCos",
    "kernelapprox.integrations.convert:convert",
    "kernelapprox.lm.model:Decoder",
    "kernelapprox.lm.model:Decoder.__init__",
    "kernelapprox.lm.model:Decoder.reset_parameters",
    "kernelapprox.sampling:sample_frequencies",
    "kernelapprox.sampling._base:PointSetSampler.uniform_points",
    "kernelapprox.sampling._base:Sampler.frequencies",
    "kernelapprox.sampling.orthogonal:StructuredOrthogonal.frequencies",
}

#: The call computes a reported number (experiment, verification, benchmark, statistic of
#: given data from a random resample): default ``seed=0``.
SEED_ZERO = {
    "kernelapprox.bench.attention:Case",
    "kernelapprox.bench.attention:Case.__init__",
    "kernelapprox.bench.attention:Sweep",
    "kernelapprox.bench.attention:Sweep.__init__",
    "kernelapprox.compression.pruning.train:APTConfig",
    "kernelapprox.compression.pruning.train:APTConfig.__init__",
    "kernelapprox.compression.quantization.experiment:run_quantization",
    "kernelapprox.dynamics.completion:depth_width_sweep",
    "kernelapprox.dynamics.completion:run_completion",
    "kernelapprox.dynamics.est:compare_over_seeds",
    "kernelapprox.dynamics.est:compare_subnetwork_draws",
    "kernelapprox.dynamics.est:compare_training",
    "kernelapprox.dynamics.lpa:verify_lpa_rank_bound",
    "kernelapprox.dynamics.theorem:verify_invariant_subspace",
    "kernelapprox.estimators.bootstrap:bootstrap_columns",
    "kernelapprox.estimators.bootstrap:bootstrap_replications",
    "kernelapprox.estimators.comparisons:features_ratio",
    "kernelapprox.integrations.convert:distill",
    "kernelapprox.features._base:FeatureMap.fit_weights",
    "kernelapprox.kernels:median_pairwise_distance",
    "kernelapprox.study.data:load_data",
    "kernelapprox.study.data:load_targets",
    "kernelapprox.study.spec:StudySpec",
    "kernelapprox.study.spec:StudySpec.__init__",
    "kernelapprox.testing.attention:assert_causal",
    "kernelapprox.testing.moments:assert_unbiased",
    "kernelapprox.testing.moments:assert_variance_matches",
}


def _seed_defaults() -> dict[str, Any]:
    """``where`` -> the default of its ``seed`` parameter, for every defaulted one."""
    found = {}
    for where, func in CALLABLES.items():
        seed = _parameters(func).get("seed")
        if seed is not None and seed.default is not inspect.Parameter.empty:
            found[where] = seed.default
    return found


def test_seed_classification_is_complete_and_disjoint():
    assert not SEED_NONE & SEED_ZERO
    unclassified = set(_seed_defaults()) - SEED_NONE - SEED_ZERO
    assert not unclassified, sorted(unclassified)
    stale = (SEED_NONE | SEED_ZERO) - set(_seed_defaults())
    assert not stale, sorted(stale)


def test_seed_defaults_follow_the_rule():
    wrong = {
        where: default
        for where, default in _seed_defaults().items()
        if (where in SEED_NONE and default is not None)
        or (where in SEED_ZERO and not (type(default) is int and default == 0))
    }
    assert not wrong, wrong


def test_seed_parameters_of_the_core_are_annotated_seed_like():
    """The core rooms annotate every ``seed`` with :data:`~kernelapprox._validation.SeedLike`
    (protocol hooks that receive a spawned ``SeedSequence`` say so instead). The study's
    seeds are ``int`` on purpose: the root seed is recorded in the spec's JSON and in
    ``results.csv``, so that a resumed run draws the same replications."""
    core = tuple(
        f"kernelapprox.{room}" for room in ("kernels", "sampling", "features", "estimators")
    )
    wrong = {}
    for where, func in CALLABLES.items():
        seed = _parameters(func).get("seed")
        if not where.startswith(core) or seed is None:
            continue
        note = seed.annotation
        if seed.default is inspect.Parameter.empty and "SeedSequence" in str(note):
            continue
        if note != "SeedLike":
            wrong[where] = note
    assert not wrong, wrong


# ------------------------------------------------------------------- the helper itself
def test_renamed_keywords_checks_its_renames_when_it_decorates():
    from kernelapprox._validation import renamed_keywords

    def f(*, n_features: int) -> int:
        return n_features

    with pytest.raises(ValueError, match="no parameter 'output_dim'"):
        renamed_keywords({"m": "output_dim"})(f)
    with pytest.raises(ValueError, match="still has the old parameter 'n_features'"):
        renamed_keywords({"n_features": "n_features"})(f)
    with pytest.raises(ValueError, match="notes name keywords that are not renamed"):
        renamed_keywords({"m": "n_features"}, notes={"d": "?"})


def test_renamed_keywords_warns_at_the_callers_line_and_keeps_positional_calls():
    from kernelapprox._validation import REMOVED_IN, renamed_keywords

    @renamed_keywords({"m": "n_features"}, notes={"m": "A note."})
    def f(n_features: int, dim: int = 1) -> tuple[int, int]:
        return n_features, dim

    assert f(3, 2) == (3, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert f(m=3, dim=2) == (3, 2)
    (w,) = caught
    assert w.category is DeprecationWarning and w.filename == __file__
    assert str(w.message) == (
        f"test_renamed_keywords_warns_at_the_callers_line_and_keeps_positional_calls.<locals>"
        f".f(): the keyword 'm' is deprecated; pass n_features= instead (m= stops working in "
        f"kernelapprox {REMOVED_IN}). A note."
    )
    assert list(inspect.signature(f).parameters) == ["n_features", "dim"]
