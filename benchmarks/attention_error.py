"""Why the attention bench's error column reads 2-4 for ours and ~0.7 for performer-pytorch.

An opt-in measurement (not part of the tests) on the bench's own inputs
(:func:`kernelapprox.bench.attention.make_inputs` of a :class:`~kernelapprox.bench.attention.Case`:
B=1, H=8, d=64, m=256, causal, seed 0, ``N(0, s^2)`` q and k, ``N(0, 1)`` v). For each input
scale ``s`` and length ``T`` it prints the relative RMS error against exact attention
(float64 SDPA) of:

* ``ours``: the bench's implementation (:func:`~kernelapprox.bench.attention.build`),
  float32 as in the bench;
* ``oracle``: the same estimator computed independently here in float64 from the same
  frequencies (explicit features, a dense masked ``T x T`` matrix, no chunking): it checks
  that ``ours`` is the estimator and nothing else;
* ``floored``: the same features with performer-pytorch's stabilizer: each query's
  features divided by their largest, all keys' features by the largest over every key and
  feature of the head, then ``+ eps`` (``1e-4``) added to every feature;
* ``performer``: the bench's performer-pytorch ``FastAttention`` (float64), and
  ``performer_eps0`` the same module with ``eps = 0`` in its ``softmax_kernel``;
* ``uniform``: :func:`~kernelapprox.bench.attention.uniform_attention`, the no-information
  baseline;

and the input scale ``|q|^2/sqrt(d)``, the analytic median relative SD of one kernel entry
(:func:`~kernelapprox.bench.attention.kernel_relative_sd`), the measured relative
Frobenius error of the (causally masked) kernel matrix of the oracle's features, and the
analytic root-mean-square prediction of that error (Choromanski et al., Lemma 2, i.i.d.
frequencies). A second table gives the same (performer aside) at ``T = 512`` for more
features; a check scales the last key and reports how much the earlier outputs move (zero
for a causal method); last, the forward errors of a stored bench run (``--stored-run``) are
set against uniform attention's on the same inputs.

Usage::

    python benchmarks/attention_error.py [--lengths 512,2048] [--stds 1,0.5,0.25]
        [--features 256,1024,4096] [--feature-stds 1,0.5]
        [--stored-run docs/results/attention_bench.json] [--out results.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kernelapprox._io import atomic_write, json_text
from kernelapprox.attention.naive import relative_rms
from kernelapprox.bench import attention as bench
from kernelapprox.estimators.analytic import performer_positive_mse

#: performer-pytorch's default additive floor (``softmax_kernel(..., eps=1e-4)``).
PERFORMER_EPS = 1e-4


def _projection_and_half_norm(
    x: torch.Tensor, W: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``w_f . u`` and ``|u|^2/2`` with ``u = x / d^{1/4}``; the log positive feature is their
    difference (up to ``-log(m)/2``)."""
    u = x * x.shape[-1] ** -0.25
    return u @ W.T, 0.5 * (u * u).sum(-1, keepdim=True)


def _log_features(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    projection, half = _projection_and_half_norm(x, W)
    return projection - half


def _masked_attention(a: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """``A v / A 1`` with the future masked by selection."""
    if causal:
        T = a.shape[-1]
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        a = torch.where(future, torch.zeros((), dtype=a.dtype), a)
    return (a @ v) / a.sum(-1, keepdim=True)


def feature_estimate(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, W: torch.Tensor, *, causal: bool,
    eps: float = 0.0,
) -> torch.Tensor:  # fmt: skip
    """Positive-feature attention in float64 from frequencies ``W`` (``(m, d)``).

    Performer-pytorch's stabilizer (``softmax_kernel`` 1.1.4): every feature
    ``exp(w_f . u - |u|^2/2)`` is divided by ``exp(max w . u)``, the largest *projection*
    (not the largest feature) of the query itself, or of every key and frequency of the head,
    and then ``eps`` is added. Per-query and per-head key factors cancel in the
    normalization, so ``eps = 0`` is the unbiased-kernel estimator of ``ours``; ``eps > 0``
    floors every feature at ``eps`` relative to ``exp(max w . u)``, which exceeds the
    typical feature by ``exp(|u|^2/2 + (max - typical) w . u)``.
    """
    q, k, v, W = (t.to(torch.float64) for t in (q, k, v, W))
    (projection_q, half_q), (projection_k, half_k) = (
        _projection_and_half_norm(x, W) for x in (q, k)
    )
    pq = torch.exp(projection_q - half_q - projection_q.amax(-1, keepdim=True)) + eps
    pk = torch.exp(projection_k - half_k - projection_k.amax((-1, -2), keepdim=True)) + eps
    return _masked_attention(pq @ pk.transpose(-1, -2), v, causal)


def share_below_floor(k: torch.Tensor, W: torch.Tensor, eps: float = PERFORMER_EPS) -> float:
    """Share of the key features that performer's stabilizer leaves below its floor ``eps``."""
    projection, half = _projection_and_half_norm(k.to(torch.float64), W.to(torch.float64))
    scaled = torch.exp(projection - half - projection.amax((-1, -2), keepdim=True))
    return float((scaled < eps).to(torch.float64).mean())


def kernel_matrix_errors(
    q: torch.Tensor, k: torch.Tensor, W: torch.Tensor, causal: bool
) -> tuple[float, float]:
    """Measured and predicted relative Frobenius error of the kernel-matrix estimate.

    ``K_ij = exp(q_i . k_j / sqrt(d))`` over the visible pairs, estimated by
    ``phi(x_i) . phi(y_j)``; the prediction is ``sqrt(sum_ij MSE_ij) / |K|_F`` with the
    i.i.d.-frequency MSE (:func:`performer_positive_mse`), summed over the first head only
    (``T^2`` pairs).
    """
    q, k, W = (t[0, 0].to(torch.float64) for t in (q, k, W[None, None]))
    m, d = W.shape
    K = torch.exp(q @ k.T / math.sqrt(d))
    K_hat = torch.exp(_log_features(q, W)) @ torch.exp(_log_features(k, W)).T / m
    visible = torch.ones_like(K, dtype=torch.bool)
    if causal:
        visible = ~torch.ones_like(visible).triu(1)
    zero = torch.zeros((), dtype=K.dtype)
    K, K_hat = (torch.where(visible, t, zero) for t in (K, K_hat))
    measured = float(torch.linalg.norm(K_hat - K) / torch.linalg.norm(K))
    x = (q * d**-0.25).numpy()
    y = (k * d**-0.25).numpy()
    mse = performer_positive_mse(x[:, None, :], y[None, :, :], n_features=m)
    mse = np.where(visible.numpy(), mse, 0.0)
    predicted = float(np.sqrt(mse.sum()) / torch.linalg.norm(K))
    return measured, predicted


def _performer(case: bench.Case, eps: float) -> Callable[..., torch.Tensor]:
    """The bench's performer module in float64, its ``softmax_kernel`` floor set to ``eps``."""
    import performer_pytorch.performer_pytorch as pp

    torch.manual_seed(case.seed)  # as bench.build: the same projection as the bench's run
    fast = pp.FastAttention(
        dim_heads=case.head_dim, nb_features=case.n_features, causal=case.causal
    ).double()
    original = pp.softmax_kernel

    def forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        pp.softmax_kernel = functools.partial(original, eps=eps)
        try:
            return fast(q, k, v)
        finally:
            pp.softmax_kernel = original

    return forward


def measure_case(case: bench.Case, *, with_performer: bool = True) -> dict:
    """Every error of the module docstring for one case."""
    q, k, v = bench.make_inputs(case)
    q64, k64, v64 = (t.to(torch.float64) for t in (q, k, v))
    with torch.no_grad():
        exact = F.scaled_dot_product_attention(q64, k64, v64, is_causal=case.causal)
        fm = bench._feature_map(case)
        W = torch.as_tensor(fm.frequencies, dtype=torch.float64)
        ours = bench.build(case)(q, k, v)
        oracle = feature_estimate(q64, k64, v64, W, causal=case.causal)
        floored = feature_estimate(q64, k64, v64, W, causal=case.causal, eps=PERFORMER_EPS)
        uniform = bench.uniform_attention(v, causal=case.causal)
        row = {
            "input_std": case.input_std,
            "T": case.T,
            "n_features": case.n_features,
            "causal": case.causal,
            "input_scale": bench.input_scale(case, q),
            "kernel_rel_sd": bench.kernel_relative_sd(case, q, k),
            "ours": relative_rms(ours, exact),
            "ours_vs_oracle": relative_rms(ours, oracle),
            "oracle": relative_rms(oracle, exact),
            "floored": relative_rms(floored, exact),
            "uniform": relative_rms(uniform, exact),
            "floored_vs_uniform": relative_rms(floored, uniform),
            "keys_below_floor": share_below_floor(k, W),
        }
        if with_performer:
            for name, eps in (("performer", PERFORMER_EPS), ("performer_eps0", 0.0)):
                out = _performer(case, eps)(q64, k64, v64)
                row[name] = relative_rms(out, exact)
                row[f"{name}_vs_uniform"] = relative_rms(out, uniform)
        if case.T <= 2048:
            row["kernel_error"], row["kernel_error_predicted"] = kernel_matrix_errors(
                q, k, W, case.causal
            )
    return row


def later_key_effect(case: bench.Case, factor: float = 3.0) -> dict[str, float]:
    """How much the outputs of tokens ``0 .. T-2`` move when the last key is scaled by
    ``factor`` (the bench's float32 function of ``case.impl``): zero for a causal method.
    performer-pytorch's key stabilizer takes its maximum over all keys, future ones too."""
    q, k, v = bench.make_inputs(case)
    later = k.clone()
    later[:, :, -1] *= factor
    fn = bench.build(case)
    with torch.no_grad():
        before, after = fn(q, k, v)[:, :, :-1], fn(q, later, v)[:, :, :-1]
    return {
        "max_abs_change": float((after - before).abs().max()),
        "relative_rms_change": relative_rms(after, before),
    }


def stored_run_against_uniform(path: Path) -> list[dict]:
    """Each stored forward row's error (a bench run's ``results.json``) next to uniform
    attention's on the same inputs (:func:`~kernelapprox.bench.attention.error_references`)."""
    import json

    stored = json.loads(path.read_text(encoding="utf-8"))
    fields = {f.name for f in dataclasses.fields(bench.Case)}
    uniform: dict[tuple, float] = {}
    out = []
    for r in stored["rows"]:
        if r["mode"] != "fwd" or not isinstance(r.get("rel_error"), float) or r["impl"] == "sdpa":
            continue
        case = bench.Case(**{k: r[k] for k in fields})
        key = (case.T, case.head_dim, case.input_std, case.causal, case.seed)
        if key not in uniform:
            uniform[key] = bench.error_references(case)[1]["uniform_error"]
        out.append(
            {"impl": r["impl"], "T": r["T"], "rel_error": r["rel_error"], "uniform": uniform[key]}
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="512,2048")
    parser.add_argument("--stds", default="1,0.5,0.25")
    parser.add_argument("--features", default="256,1024,4096")
    parser.add_argument("--feature-stds", default="1,0.5")
    parser.add_argument(
        "--stored-run",
        type=Path,
        default=Path(__file__).parents[1] / "docs/results/attention_bench.json",
        help="a bench run's results.json whose forward errors to set against uniform attention",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    base = bench.Case("ours", "fwd", 512, 64, 256, batch=1, heads=8, causal=True)
    cols = ("ours", "oracle", "floored", "performer", "performer_eps0", "uniform")
    rows = []
    print("s     T      |q|^2/sqrt(d)  kernel_rel_sd  kernel_err (pred)  " + "  ".join(cols))
    for std in (float(s) for s in args.stds.split(",")):
        for T in (int(t) for t in args.lengths.split(",")):
            row = measure_case(replace(base, T=T, input_std=std))
            rows.append(row)
            kern = (
                f"{row['kernel_error']:.3g} ({row['kernel_error_predicted']:.3g})"
                if "kernel_error" in row
                else "-"
            )
            print(
                f"{std:<5g} {T:<6d} {row['input_scale']:<14.3f} {row['kernel_rel_sd']:<14.4g} "
                f"{kern:<18} " + "  ".join(f"{row[c]:.3f}" for c in cols)
                + f"   (ours vs oracle {row['ours_vs_oracle']:.1e}; vs uniform: floored "
                f"{row['floored_vs_uniform']:.3f}, performer {row['performer_vs_uniform']:.3f}; "
                f"keys below the floor {row['keys_below_floor']:.1%})"
            )  # fmt: skip
    print("\nT = 512: error against exact attention for more features")
    more = []
    for std in (float(s) for s in args.feature_stds.split(",")):
        for m in (int(x) for x in args.features.split(",")):
            row = measure_case(replace(base, n_features=m, input_std=std), with_performer=False)
            more.append(row)
            print(
                f"s = {std:g}  m = {m:<5d} ours {row['ours']:.3f}  oracle {row['oracle']:.3f}  "
                f"floored {row['floored']:.3f}  uniform {row['uniform']:.3f}  "
                f"kernel_rel_sd {row['kernel_rel_sd']:.4g}  kernel_err {row['kernel_error']:.3g} "
                f"(pred {row['kernel_error_predicted']:.3g})"
            )
    print("\nT = 512, s = 1: change of the outputs of tokens 0..510 when key 511 is scaled x3")
    causality = {}
    for impl in ("ours", "performer"):
        causality[impl] = later_key_effect(replace(base, impl=impl))
        print(
            f"{impl:<10} max |change| {causality[impl]['max_abs_change']:.3g}, "
            f"relative RMS {causality[impl]['relative_rms_change']:.3g}"
        )
    stored = []
    if args.stored_run is not None:
        print(f"\n{args.stored_run}: stored forward error and uniform attention's, same inputs")
        stored = stored_run_against_uniform(args.stored_run)
        for r in stored:
            print(
                f"{r['impl']:<10} T = {r['T']:<6d} {r['rel_error']:.3f}  uniform {r['uniform']:.3f}"
            )
    if args.out is not None:
        record = {"rows": rows, "features": more, "later_key": causality, "stored_run": stored}
        atomic_write(args.out, json_text(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
