"""The claims written against the last survivors of ``verify`` fail under those mutants.

Each test takes a mutant of the catalogue in ``benchmarks/mutation.py`` (its exact snippet and
replacement), executes the mutated source of the package module as a separate module, patches
the mutated function into the real module with monkeypatch, and asserts that the claim written
for it turns to ``fails`` with the message of the check meant to catch it. The references of
the claims are checked against values derived by hand.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from proofs import (
    apt_cubic_schedule,
    apt_distillation_loss,
    apt_outlier_kurtosis,
    apt_rank_allocation,
    est_kept_count,
    est_training_flops,
    quant_lookup_output,
)
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _catalogue() -> dict:
    return {m.name: m for m in load_script(ROOT / "benchmarks" / "mutation.py").MUTANTS}


def plant(monkeypatch: pytest.MonkeyPatch, mutant_name: str, functions: tuple[str, ...]) -> None:
    """Patch ``functions`` of the mutant's module with their versions from the mutated source."""
    mutant = _catalogue()[mutant_name]
    source = (ROOT / mutant.path).read_text(encoding="utf-8")
    assert source.count(mutant.find) == 1, f"{mutant_name}: snippet moved"
    variant = types.ModuleType(f"mutant_{mutant_name}")
    monkeypatch.setitem(sys.modules, variant.__name__, variant)
    code = compile(source.replace(mutant.find, mutant.replace), str(ROOT / mutant.path), "exec")
    exec(code, variant.__dict__)  # the package's own source, one line changed
    real = importlib.import_module(mutant.module)
    for name in functions:
        monkeypatch.setattr(real, name, getattr(variant, name))


CASES = [
    ("est_kept_count_rounding", ("kept_count",), est_kept_count, "differs from round-half-up"),
    ("est_training_flops_factor", ("subnetwork_flops",), est_training_flops, "torch counts"),
    ("excess_kurtosis_minus3", ("excess_kurtosis",), apt_outlier_kurtosis, "excess_kurtosis:"),
    ("allocate_ranks_floor_half", ("allocate_ranks",), apt_rank_allocation, "top-half rule"),
    ("allocate_ranks_growth_factor", ("allocate_ranks",), apt_rank_allocation, "short"),
    ("kl_direction", ("kl_divergence",), apt_distillation_loss, "kl differs"),
    ("distillation_temperature_linear", ("distillation_loss",), apt_distillation_loss, "loss"),
    ("cubic_schedule_square", ("cubic_keep_fraction",), apt_cubic_schedule, "derived cubic"),
    ("lookup_bias_dropped", ("lookup_linear",), quant_lookup_output, "summation bound"),
]


@pytest.mark.parametrize(
    ("mutant", "functions", "claim", "message"), CASES, ids=[c[0] for c in CASES]
)
def test_claim_fails_under_its_mutant(
    monkeypatch: pytest.MonkeyPatch, mutant: str, functions, claim, message: str
) -> None:
    plant(monkeypatch, mutant, functions)
    verdict = claim.run()
    assert verdict.status == "fails", verdict.summary
    assert message in verdict.summary


def test_plant_changes_only_the_patched_function(monkeypatch: pytest.MonkeyPatch) -> None:
    from kernelapprox.dynamics import est

    assert est.kept_count(4, 0.4) == 2
    plant(monkeypatch, "est_kept_count_rounding", ("kept_count",))
    assert est.kept_count(4, 0.4) == 1  # floor(1.6)
    assert est.SubnetworkSampler(1, 4, 4, seed=0).sizes((0.4, 1.0, 1.0))[0] == 1


def test_kept_count_reference_and_ties() -> None:
    # 4 x 0.4 = 1.6 -> 2; 5 x 1/2 = 2.5 -> 3 (half up, not Python's 2); 8 x 1/64 -> at least 1
    assert est_kept_count.rounded_half_up(4, Fraction(2, 5)) == 2
    assert est_kept_count.rounded_half_up(5, Fraction(1, 2)) == 3 != round(2.5)
    assert est_kept_count.rounded_half_up(8, Fraction(1, 64)) == 1
    assert est_kept_count.distance_to_tie(25, Fraction(58, 100)) == 0  # 14.5
    assert est_kept_count.distance_to_tie(4, Fraction(2, 5)) == Fraction(1, 10)


def test_training_flops_hand_count() -> None:
    # d = 16, T = 8, 4 heads of 4, 24 neurons, V = 50, 3 layers, full network, per token:
    # layer 8*16*16 + 4*8*16 + 4*16*24 = 4096, head 2*16*50 = 1600, x3 for training
    from kernelapprox.dynamics import est
    from kernelapprox.lm import DecoderConfig

    config = DecoderConfig(vocab_size=50, context=8, n_layers=3, d_model=16, n_heads=4, d_mlp=24)
    assert est.subnetwork_flops(config, include_head=True) == 3 * (3 * 4096 + 1600) == 41664


def test_rank_allocation_reference() -> None:
    # the docstring example: 4 adapters of rank 8, 10 params per rank, current 320, target 480:
    # the top two (0.9, 0.5) grow by rho = 160 / 160 + 1 = 2
    new, top, rho = apt_rank_allocation.top_half_ranks(
        [0.9, 0.1, 0.5, 0.3], [8, 8, 8, 8], [10, 10, 10, 10], 480, 64
    )
    assert new == [16, 8, 16, 8] and sorted(top) == [0, 2] and rho == 2
    # three adapters: the top half rounds up to two
    new, top, _ = apt_rank_allocation.top_half_ranks([3.0, 1.0, 2.0], [4, 4, 4], [1, 1, 1], 20, 64)
    assert sorted(top) == [0, 2] and new == [8, 4, 8]


def test_distillation_reference_by_hand() -> None:
    # two classes, T = 1: p_t = (1/2, 1/2), z_s = (0, log 3): p_s = (1/4, 3/4),
    # KL = 1/2 log 2 + 1/2 log(2/3) = 1/2 log(4/3); loss = 0.1 * 10 * 1 * KL
    zs, zt = np.array([[0.0, np.log(3.0)]]), np.zeros((1, 2))
    loss, ps, pt = apt_distillation_loss.reference_loss(
        zs, zt, [], [], temperature=1.0, kl_weight=0.1, kl_scale=10.0, hidden_weight=0.9
    )
    assert loss == pytest.approx(0.5 * np.log(4 / 3), rel=1e-14)
    assert ps[0] == pytest.approx([0.25, 0.75], rel=1e-14)
    assert pt[0] == pytest.approx([0.5, 0.5], rel=1e-14)


def test_cubic_reference_is_derived() -> None:
    cubic, symbols, residual = apt_cubic_schedule.derived_cubic()
    assert residual == 0
    t, t_warm, t_end, g_0, g_T = symbols
    # midpoint of [0, 10] from 1 to 0.4: 0.4 + 0.6 / 8
    assert float(cubic.subs({t: 5, t_warm: 0, t_end: 10, g_0: 1, g_T: 0.4})) == pytest.approx(0.475)


def test_kurtosis_reference_matches_the_two_point_closed_form() -> None:
    x = np.where(np.arange(100) < 10, 1.0, -1.0)
    assert stats.kurtosis(x, fisher=True, bias=True) == pytest.approx(46 / 9, rel=1e-13)


def test_lookup_reference_weight() -> None:
    codes = np.array([[0b110, 0b011]], dtype=np.uint8)
    table = np.array([[0.1, 0.2, 0.3, 0.4]], dtype=np.float16)
    # two bits of three-bit codes: 0b11 and 0b01
    w = quant_lookup_output.reference_weight(codes, table, 1)
    assert w.dtype == np.float64
    assert w.tolist() == [[float(np.float16(0.4)), float(np.float16(0.2))]]
