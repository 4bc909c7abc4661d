"""Opt-in speed, memory and accuracy comparison of feature attention against its peers.

End to end from ``q, k, v`` to the output, *including the feature map*, for

* ``ours``: :func:`~kernelapprox.attention.feature_attention` with positive (FAVOR+) features,
  orthogonal frequencies, layout ``(B, H, T, D)``;
* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` (exact);
* ``performer``: ``performer_pytorch.FastAttention`` (pip ``performer-pytorch``) with the same
  number of features, when installed;
* ``fla``: flash-linear-attention's ``chunk_linear_attn`` fed with features computed in torch
  (GPU only, when ``fla`` is installed; not exercised without a GPU);
* ``triton``: :func:`~kernelapprox.attention.triton.triton_feature_attention`, the
  same attention with the features computed inside Triton kernels (forward and backward;
  autotuned; listed by default only on CUDA with ``triton`` installed; elsewhere it runs
  only under ``TRITON_INTERPRET=1``, far too slowly to time).

Modes: ``fwd`` (no autograd), ``fwdbwd`` (forward and backward of ``sum(o * g)``) and
``decode`` (tokens per second of one-token steps after a context of ``T`` tokens: a
constant-size state for ``ours``, a KV cache of length ``T`` for ``sdpa``). Times are the
median of ``repeats`` runs after one warm-up run; memory is the peak resident set of a fresh
process (CPU) or ``max_memory_allocated`` (CUDA) minus the footprint before the inputs; the
error is the relative RMS difference from exact attention on the same inputs, read against
``uniform_error`` (the error of equal weights on every visible key, :func:`uniform_attention`:
what an estimate carrying no information about the scores returns), ``input_scale``
(:func:`input_scale`) and, on feature-attention rows, ``kernel_rel_sd`` (the positive
estimator's analytic spread, :func:`kernel_relative_sd`). Nothing here runs in the test
suite's timing: tests only check that a tiny run produces well-formed rows.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import io
import math
import os
import re
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kernelapprox._io import atomic_path, atomic_write, json_text
from kernelapprox._style import GUIDE_COLOR, implementation_style
from kernelapprox.attention.functional import (
    DEFAULT_CHUNK,
    feature_attention,
    feature_attention_step,
)
from kernelapprox.attention.naive import relative_rms
from kernelapprox.bench import timing

IMPLS = ("ours", "sdpa", "performer", "fla", "triton")
#: Our implementations (the ones compared against every peer in :func:`summarize`).
OURS = ("ours", "triton")
MODES = ("fwd", "fwdbwd", "decode")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclasses.dataclass(frozen=True)
class Case:
    """One measurement: implementation, mode and shape."""

    impl: str
    mode: str
    T: int
    head_dim: int
    n_features: int
    batch: int = 1
    heads: int = 8
    causal: bool = True
    dtype: str = "float32"
    device: str = "cpu"
    seed: int = 0
    input_std: float = 1.0
    decode_tokens: int = 64


def available_impls(device: str) -> list[str]:
    """Implementations importable here (``fla`` and ``triton`` need CUDA)."""
    found = ["ours", "sdpa"]
    if importlib.util.find_spec("performer_pytorch") is not None:
        found.append("performer")
    if device.startswith("cuda") and importlib.util.find_spec("fla") is not None:
        found.append("fla")
    if device.startswith("cuda") and importlib.util.find_spec("triton") is not None:
        found.append("triton")
    return found


def make_inputs(case: Case) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``q, k, v`` of shape ``(B, H, T, D)`` with ``N(0, input_std^2)`` q, k and ``N(0, 1)`` v."""
    g = torch.Generator().manual_seed(case.seed)
    shape = (case.batch, case.heads, case.T, case.head_dim)
    q, k = (case.input_std * torch.randn(shape, generator=g) for _ in range(2))
    v = torch.randn(shape, generator=g)
    dtype = DTYPES[case.dtype]
    return tuple(x.to(device=case.device, dtype=dtype) for x in (q, k, v))  # type: ignore[return-value]


def _feature_map(case: Case) -> Any:
    from kernelapprox import features, kernels

    return features.make(
        "positive",
        kernels.Softmax(),
        case.n_features,
        dim=case.head_dim,
        sampler="orthogonal",
        seed=case.seed,
    )


def build(case: Case) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The forward function ``(q, k, v) -> o`` of ``case.impl`` (all in layout ``(B, H, T, D)``)."""
    if case.impl == "ours":
        fm = _feature_map(case)
        return lambda q, k, v: feature_attention(q, k, v, fm, causal=case.causal, layout="bhtd")
    if case.impl == "sdpa":
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=case.causal)
    if case.impl == "performer":
        from performer_pytorch import FastAttention

        torch.manual_seed(case.seed)
        fast = FastAttention(
            dim_heads=case.head_dim, nb_features=case.n_features, causal=case.causal
        ).to(case.device)
        return lambda q, k, v: fast(q, k, v)
    if case.impl == "fla":
        return _build_fla(case)
    if case.impl == "triton":
        from kernelapprox.attention.triton import triton_feature_attention

        fm = _feature_map(case)
        return lambda q, k, v: triton_feature_attention(
            q, k, v, fm, causal=case.causal, layout="bhtd"
        )
    raise ValueError(f"impl must be one of {IMPLS}, got {case.impl!r}")


def _build_fla(case: Case) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Torch-computed (materialized) features fed to fla's ``chunk_linear_attn``.

    The features are the same stabilized positive features as ours (per-token log-scales
    folded in by a sequence-global key maximum, the usual practice; queries' scale cancels),
    cast to the input dtype. Untested without a GPU.
    """
    from fla.ops.linear_attn import chunk_linear_attn

    from kernelapprox.attention.maps import input_multiplier, stabilized_features

    fm = _feature_map(case)
    mult = input_multiplier(fm, 1.0 / math.sqrt(case.head_dim))

    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        t = fm.tensors(q.device, torch.float32)
        pq, _ = stabilized_features(fm, q.transpose(1, 2).float(), t, mult)
        pk, ck = stabilized_features(fm, k.transpose(1, 2).float(), t, mult)
        pk = pk * torch.exp(ck - ck.amax(dim=1, keepdim=True))[..., None]
        o, _ = chunk_linear_attn(
            pq.to(q.dtype), pk.to(q.dtype), v.transpose(1, 2), scale=1.0, normalize=True
        )
        return o.transpose(1, 2)

    return run


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time(fn: Callable[[], Any], device: str, repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of ``repeats`` runs (:func:`.timing.measure`)."""
    return timing.measure(fn, repeats, sync=(lambda: _sync(device)))


def _decode_fn(case: Case, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Callable[[], Any]:
    """``decode_tokens`` one-token steps after a context of ``T`` tokens."""
    n = case.decode_tokens
    if case.impl == "ours":
        fm = _feature_map(case)
        with torch.no_grad():
            _, state0 = feature_attention(
                q, k, v, fm, causal=True, layout="bhtd", output_final_state=True
            )

        def run() -> None:
            state = state0
            with torch.no_grad():
                for t in range(n):
                    _, state = feature_attention_step(q[:, :, t], k[:, :, t], v[:, :, t], state, fm)

        return run
    if case.impl == "sdpa":
        # a preallocated KV cache holding the context plus the new tokens
        cache_k = torch.cat((k, k[:, :, :n]), dim=2)
        cache_v = torch.cat((v, v[:, :, :n]), dim=2)

        def run() -> None:
            with torch.no_grad():
                for t in range(n):
                    L = case.T + t + 1
                    F.scaled_dot_product_attention(
                        q[:, :, t : t + 1], cache_k[:, :, :L], cache_v[:, :, :L]
                    )

        return run
    raise ValueError(f"{case.impl} has no decode path")


def measure(case: Case, *, repeats: int = 3, exact: torch.Tensor | None = None) -> dict[str, Any]:
    """Time one case (and its error against ``exact``); returns one result row."""
    row: dict[str, Any] = dataclasses.asdict(case)
    q, k, v = make_inputs(case)
    if case.mode == "decode":
        if case.impl not in ("ours", "sdpa"):
            return {**row, "status": "n/a (no decode path)"}
        times, cpu = _time(_decode_fn(case, q, k, v), case.device, repeats)
        med = statistics.median(times)
        return {
            **row,
            "status": "ok",
            "time_ms": 1e3 * med,
            "time_min_ms": 1e3 * min(times),
            "cpu_ms": 1e3 * statistics.median(cpu),
            "tokens_per_s": case.decode_tokens * case.batch / med,
        }
    fn = build(case)
    if case.mode == "fwd":

        def run() -> torch.Tensor:
            with torch.no_grad():
                return fn(q, k, v)

    else:
        ins = [x.detach().requires_grad_() for x in (q, k, v)]
        grad = torch.randn_like(q)

        def run() -> torch.Tensor:
            out = fn(*ins)
            out.backward(grad)
            return out

    times, cpu = _time(run, case.device, repeats)
    row.update(
        status="ok",
        time_ms=1e3 * statistics.median(times),
        time_min_ms=1e3 * min(times),
        cpu_ms=1e3 * statistics.median(cpu),
    )
    if exact is not None:
        with torch.no_grad():
            row["rel_error"] = relative_rms(fn(q, k, v).float(), exact.float())
    return row


def uniform_attention(v: torch.Tensor, *, causal: bool) -> torch.Tensor:
    r"""Attention with equal weights on every visible key (layout ``(..., T, D)``, float64).

    :math:`o_i = |J_i|^{-1} \sum_{j \in J_i} v_j` with :math:`J_i = \{j \le i\}` (causal) or
    all :math:`j`: the output of any estimate whose weights carry no information about
    :math:`q \cdot k`, and the limit of an additive floor on the features that dominates
    them (performer-pytorch adds ``1e-4`` to features divided by ``exp`` of the largest key
    projection ``w . u``). Its error against exact attention is the error panel's "no
    information" line.
    """
    v = v.detach().to(torch.float64)
    if not causal:
        return v.mean(dim=-2, keepdim=True).expand_as(v)
    counts = torch.arange(1, v.shape[-2] + 1, dtype=torch.float64, device=v.device)
    return v.cumsum(dim=-2) / counts[:, None]


def input_scale(case: Case, q: torch.Tensor) -> float:
    r"""Mean over the query tokens of :math:`|u|^2 = |q|^2 / \sqrt{d}`, the squared norm the
    positive map sees (attention's ``1/sqrt(d)`` split between q and k); for ``N(0,
    s^2 I)`` rows its expectation is :math:`s^2 \sqrt{d}` (8 at ``s = 1``, ``d = 64``)."""
    q = q.detach().to(torch.float64)
    return float((q * q).sum(-1).mean()) / math.sqrt(case.head_dim)


def kernel_relative_sd(case: Case, q: torch.Tensor, k: torch.Tensor) -> float:
    r"""Median over the token pairs :math:`(q_t, k_t)` of the relative standard deviation
    :math:`\sqrt{\mathrm{MSE}} / \mathrm{SM}(x, y)` of one positive-feature estimate of the
    attention score with ``case.n_features`` frequencies, :math:`x = q / d^{1/4}`,
    :math:`y = k / d^{1/4}`:

    .. math::

        \frac{\mathrm{MSE}}{\mathrm{SM}^2} = \frac1m e^{|x + y|^2}(1 - e^{-|x + y|^2})

    (:func:`kernelapprox.estimators.analytic.performer_positive_mse`, Choromanski et al.,
    ICLR 2021, Lemma 2, i.i.d. frequencies; orthogonal ones, as in the bench, have a
    somewhat smaller variance). The bench's q and k are independent draws, so the pairs of
    equal index have the law of any pair.
    """
    from kernelapprox.estimators.analytic import performer_positive_mse

    shrink = case.head_dim**-0.25
    x = (q.detach().to(torch.float64) * shrink).reshape(-1, case.head_dim).cpu().numpy()
    y = (k.detach().to(torch.float64) * shrink).reshape(-1, case.head_dim).cpu().numpy()
    mse = performer_positive_mse(x, y, n_features=case.n_features)
    # log(sqrt(MSE) / SM) per pair; the median commutes with exp
    log_relative_sd = 0.5 * np.log(mse) - (x * y).sum(-1)
    return float(np.exp(np.median(log_relative_sd)))


def error_references(case: Case) -> tuple[torch.Tensor, dict[str, float]]:
    """Exact attention (float32 SDPA) on the inputs of ``case`` and what every error row of
    the same ``T`` and ``d`` is read against: ``uniform_error``, the relative RMS error of
    :func:`uniform_attention`, and ``input_scale`` (:func:`input_scale`)."""
    q, k, v = make_inputs(case)
    with torch.no_grad():
        exact = F.scaled_dot_product_attention(
            q.float(), k.float(), v.float(), is_causal=case.causal
        )
    references = {
        "uniform_error": relative_rms(uniform_attention(v, causal=case.causal), exact),
        "input_scale": input_scale(case, q),
    }
    return exact, references


#: Feature-attention implementations whose work is the algorithm counted by
#: :func:`algorithm_flops` (exact SDPA does other work and gets no roofline ratio).
LINEAR_IMPLS = ("ours", "triton", "performer", "fla")


def algorithm_flops(case: Case, *, chunk: int = DEFAULT_CHUNK) -> dict[str, float]:
    """Floating-point operations that feature attention must do for ``case``, by part.

    Per (batch, head) with ``T`` tokens, head dimension ``d``, ``m`` frequencies of the
    positive map (``F = m`` features), values of width ``d_v = d`` augmented with a column of
    ones (``d_v + 1``) and chunks of ``C = min(chunk, T)`` tokens (``N = ceil(T / C)``); a
    multiply-add counts 2, an exponential 1:

    * ``projection``: ``u W^T`` for queries and keys, ``2 * 2 T d m``;
    * ``norms``: ``|u|^2`` of queries and keys, ``2 * 2 T d``;
    * ``exponentials``: the features ``exp(w.u - |u|^2/2 - c)`` of queries and keys: two
      subtractions and an exponential per feature, ``2 * 3 T m``;
    * ``chunk_products`` (causal): ``phi(Q) phi(K)^T`` and its product with ``[V, 1]`` over
      whole ``C x C`` blocks (the masked half included: the chunked algorithm computes it),
      ``2 N C^2 (F + d_v + 1)``;
    * ``key_weights`` (causal): the ``N C^2`` exponentials ``exp(c_j - M_i)`` of the blocks;
    * ``state``: reading the state, ``phi(Q) S``, ``2 T F (d_v + 1)``, and updating it,
      ``phi(K)^T [V, 1]``, ``2 T F (d_v + 1)`` (the same two products make up the whole
      non-causal algorithm);
    * ``normalization``: ``T d_v`` divisions.

    The forward-and-backward count (``mode="fwdbwd"``) is three times the forward count: the
    backward pass of every product is two products of the same size (the usual convention
    for training FLOPs, e.g. Kaplan et al., 2020, Sec. 2.1). Returns the parts and their
    ``"total"``, summed over ``batch * heads``.
    """
    T, d, m = case.T, case.head_dim, case.n_features
    dv1 = d + 1
    C = min(chunk, T)
    N = -(-T // C)
    parts = {
        "projection": 2 * (2 * T * d * m),
        "norms": 2 * (2 * T * d),
        "exponentials": 2 * (3 * T * m),
        "chunk_products": 2 * N * C * C * (m + dv1) if case.causal else 0,
        "key_weights": N * C * C if case.causal else 0,
        "state": 2 * (2 * T * m * dv1),
        "normalization": T * d,
    }
    factor = case.batch * case.heads * (3 if case.mode == "fwdbwd" else 1)
    scaled = {name: float(factor * n) for name, n in parts.items()}
    scaled["total"] = sum(scaled.values())
    return scaled


#: The fewest timed runs of the peer matmul behind each roofline ratio.
MATMUL_REPEATS = 7


def matmul_rate(case: Case, *, repeats: int = 3, preallocated: bool = False) -> float:
    """GFLOP/s of a plain ``torch.matmul`` shaped like the largest product of ``case``.

    The product is the feature projection of all queries, ``(B H T, d) @ (d, m)``, in the
    case's dtype on its device, timed like every implementation (median of ``repeats`` runs
    after a warm-up), so the ratio ``algorithm_flops / time`` over this rate (the *roofline
    ratio*) compares an implementation with what this machine's matmul reaches in the same run.

    A plain call allocates its ``(B H T, m)`` output, and on CPU that allocation can cost
    more than the product: a block of tens of MiB comes from ``mmap`` and is page-faulted in
    on first touch, unless the C allocator has raised its mmap threshold after earlier frees
    (a plain matmul then ran 2x faster right after a forward+backward case than after a
    forward one). ``preallocated=True`` writes into one output tensor (``out=``), so the rate
    is the product's arithmetic alone: the stricter and steadier peer.
    """
    g = torch.Generator().manual_seed(case.seed)
    dtype = DTYPES[case.dtype]
    a = torch.randn(case.batch * case.heads * case.T, case.head_dim, generator=g)
    b = torch.randn(case.head_dim, case.n_features, generator=g)
    a, b = (x.to(device=case.device, dtype=dtype) for x in (a, b))
    out = torch.empty(a.shape[0], b.shape[1], device=a.device, dtype=dtype)

    def product() -> torch.Tensor:
        return torch.matmul(a, b, out=out) if preallocated else torch.matmul(a, b)

    with torch.no_grad():
        times, _ = _time(product, case.device, repeats)
    return 2.0 * a.shape[0] * case.head_dim * case.n_features / statistics.median(times) / 1e9


def roofline_row(
    case: Case, time_ms: float, matmul_gflops: float, compute_gflops: float | None = None
) -> dict[str, float]:
    """``gflop`` (the algorithm's count), achieved ``gflops``, the ``matmul_gflops`` peer and
    the ``roofline`` ratio ``gflops / matmul_gflops`` of one timed case; with
    ``compute_gflops`` (the preallocated matmul's rate) also ``roofline_compute``."""
    gflop = algorithm_flops(case)["total"] / 1e9
    achieved = gflop / (time_ms / 1e3)
    row = {
        "gflop": gflop,
        "gflops": achieved,
        "matmul_gflops": matmul_gflops,
        "roofline": achieved / matmul_gflops,
    }
    if compute_gflops is not None:
        row.update(compute_gflops=compute_gflops, roofline_compute=achieved / compute_gflops)
    return row


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in KiB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _memory_child(case: Case, queue: Any) -> None:  # pragma: no cover - runs in a subprocess
    """Peak RSS of one run above the RSS before it. ``VmHWM`` belongs to this process's own
    address space (``ru_maxrss`` would include the parent's RSS at fork time) and is reset
    to the current RSS by writing 5 to ``/proc/self/clear_refs``."""
    try:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        fn = build(case) if case.mode != "decode" else None
        q, k, v = make_inputs(case)
        base = _status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        if fn is None:
            _decode_fn(case, q, k, v)()
        elif case.mode == "fwd":
            with torch.no_grad():
                fn(q, k, v)
        else:
            ins = [x.detach().requires_grad_() for x in (q, k, v)]
            fn(*ins).backward(torch.randn_like(q))
        queue.put(max(_status_kib("VmHWM") - base, 0) / 1024.0)
    except Exception as exc:  # report, never hang the parent
        queue.put(f"error: {exc}")


def peak_memory_mb(case: Case, timeout: float = 600.0) -> float | str:
    """Peak extra memory of one run, in MiB (a fresh process on CPU; the allocator on CUDA)."""
    if case.device.startswith("cuda"):
        q, k, v = make_inputs(case)
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        if case.mode == "decode":
            _decode_fn(case, q, k, v)()
        elif case.mode == "fwd":
            with torch.no_grad():
                build(case)(q, k, v)
        else:
            ins = [x.detach().requires_grad_() for x in (q, k, v)]
            build(case)(*ins).backward(torch.randn_like(q))
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_memory_child, args=(case, queue))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        return "timeout"
    return queue.get() if not queue.empty() else "error: no result"


@dataclasses.dataclass
class Sweep:
    """A grid of cases; :meth:`run` measures them in order of increasing ``T``."""

    lengths: Sequence[int] = (512, 1024, 2048, 4096)
    head_dims: Sequence[int] = (64,)
    feature_multipliers: Sequence[float] = (4,)
    modes: Sequence[str] = ("fwd",)
    impls: Sequence[str] | None = None
    causal: bool = True
    batch: int = 1
    heads: int = 8
    dtype: str = "float32"
    device: str = "cpu"
    repeats: int = 3
    max_seconds: float = 30.0
    memory: bool = False
    error_max_length: int = 16384
    input_std: float = 1.0
    decode_tokens: int = 64
    seed: int = 0

    def cases(self) -> list[Case]:
        impls = list(self.impls or available_impls(self.device))
        out = []
        for d in self.head_dims:
            for mult in self.feature_multipliers:
                m = max(1, round(mult * d))
                for mode in self.modes:
                    for T in sorted(self.lengths):
                        for impl in impls:
                            if impl == "sdpa" and mult != self.feature_multipliers[0]:
                                continue  # exact attention does not depend on m
                            out.append(
                                Case(
                                    impl,
                                    mode,
                                    T,
                                    d,
                                    m,
                                    self.batch,
                                    self.heads,
                                    self.causal,
                                    self.dtype,
                                    self.device,
                                    self.seed,
                                    self.input_std,
                                    self.decode_tokens,
                                )
                            )
        return out

    def run(self, progress: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        too_slow: set[tuple[str, str, int, int]] = set()
        exact_cache: dict[tuple[int, int], tuple[torch.Tensor, dict[str, float]]] = {}
        for case in self.cases():
            key = (case.impl, case.mode, case.head_dim, case.n_features)
            if key in too_slow:
                row = {
                    **dataclasses.asdict(case),
                    "status": f"skipped (a shorter T took > {self.max_seconds:g} s)",
                }
            else:
                exact, references = None, {}
                if case.mode != "decode" and case.T <= self.error_max_length:
                    ek = (case.T, case.head_dim)
                    if ek not in exact_cache:
                        exact_cache.clear()
                        exact_cache[ek] = error_references(case)
                    exact, references = exact_cache[ek]
                try:
                    row = measure(case, repeats=self.repeats, exact=exact)
                except (RuntimeError, MemoryError, ImportError) as exc:
                    row = {**dataclasses.asdict(case), "status": f"error: {exc}"[:200]}
                if "rel_error" in row:
                    row.update(references)
                    if case.impl in LINEAR_IMPLS:
                        q, k, _ = make_inputs(case)
                        row["kernel_rel_sd"] = kernel_relative_sd(case, q, k)
                linear = case.impl in LINEAR_IMPLS and case.mode != "decode"
                if row.get("status") == "ok" and linear:
                    # The peer matmul is timed right after the case it is compared with, with
                    # at least MATMUL_REPEATS runs: one rate per shape for the whole run drifted
                    # by 2x with the machine's state (a ratio above 100 % in a quiet run).
                    reps = max(self.repeats, MATMUL_REPEATS)
                    rate = matmul_rate(case, repeats=reps)
                    compute = matmul_rate(case, repeats=reps, preallocated=True)
                    row.update(roofline_row(case, row["time_ms"], rate, compute))
                if row.get("status") == "ok" and self.memory:
                    row["peak_mb"] = peak_memory_mb(case)
                if row.get("time_ms", 0.0) > 1e3 * self.max_seconds:
                    too_slow.add(key)
            rows.append(row)
            if progress is not None:
                progress(row)
        return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Speed-up ratios of ``ours`` (and ``triton``) over each peer, the crossover length
    with ``sdpa`` (keys ``"<mode> d=<d> m=<m>"`` for ``ours``, prefixed ``"triton "``) and
    the roofline ratio of every feature-attention row (see :func:`roofline_row`)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    index = {(r["impl"], r["mode"], r["T"], r["head_dim"], r["n_features"]): r for r in ok}
    sdpa = {(r["mode"], r["T"], r["head_dim"]): r for r in ok if r["impl"] == "sdpa"}
    ratios = []
    crossover: dict[str, int | None] = {}
    for r in ok:
        if r["impl"] not in OURS:
            continue
        key = (r["mode"], r["T"], r["head_dim"], r["n_features"])
        peers = (
            ("sdpa", "performer", "fla", "ours")
            if r["impl"] == "triton"
            else ("sdpa", "performer", "fla")
        )
        for peer in peers:
            other = (
                sdpa.get((r["mode"], r["T"], r["head_dim"]))
                if peer == "sdpa"
                else index.get((peer, *key))
            )
            if other is not None:
                ratios.append(
                    {
                        "impl": r["impl"],
                        "mode": r["mode"],
                        "T": r["T"],
                        "head_dim": r["head_dim"],
                        "n_features": r["n_features"],
                        "peer": peer,
                        "speedup": other["time_ms"] / r["time_ms"],
                        "cpu_time_speedup": (
                            other["cpu_ms"] / r["cpu_ms"]
                            if other.get("cpu_ms") and r.get("cpu_ms")
                            else None
                        ),
                    }
                )
    for r in ratios:
        if r["peer"] != "sdpa":
            continue
        name = f"{r['mode']} d={r['head_dim']} m={r['n_features']}"
        if r["impl"] != "ours":
            name = f"{r['impl']} {name}"
        if r["speedup"] >= 1.0 and (crossover.get(name) is None or r["T"] < crossover[name]):
            crossover[name] = r["T"]
        crossover.setdefault(name, None)
    roofline = [
        {
            k: r[k]
            for k in (
                "impl",
                "mode",
                "T",
                "head_dim",
                "n_features",
                "gflops",
                "matmul_gflops",
                "roofline",
                "compute_gflops",
                "roofline_compute",
            )
            if k in r
        }
        for r in ok
        if "roofline" in r
    ]
    return {"speedups": ratios, "crossover_with_sdpa": crossover, "roofline": roofline}


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of the rows."""
    head = [
        "impl",
        "mode",
        "T",
        "d",
        "m",
        "time_ms",
        "cpu_ms",
        "tok/s",
        "peak_MiB",
        "rel_err",
        "GFLOP/s",
        "matmul",
        "roofline",
        "mm_out",
        "vs_mm_out",
        "status",
    ]
    lines = [" ".join(f"{h:>10}" for h in head)]

    def num(r: dict[str, Any], key: str, fmt: str) -> str:
        val = r.get(key)
        return format(val, fmt) if isinstance(val, (int, float)) else str(val or "")

    for r in rows:
        cells = [
            r["impl"],
            r["mode"],
            str(r["T"]),
            str(r["head_dim"]),
            str(r["n_features"]),
            num(r, "time_ms", ".1f"),
            num(r, "cpu_ms", ".1f"),
            num(r, "tokens_per_s", ".0f"),
            num(r, "peak_mb", ".0f"),
            num(r, "rel_error", ".3f"),
            num(r, "gflops", ".1f"),
            num(r, "matmul_gflops", ".1f"),
            num(r, "roofline", ".1%"),
            num(r, "compute_gflops", ".1f"),
            num(r, "roofline_compute", ".1%"),
            "" if r.get("status") == "ok" else r.get("status", ""),
        ]
        lines.append(" ".join(f"{c:>10}" for c in cells))
    return "\n".join(lines)


def write_results(
    rows: list[dict[str, Any]],
    out: str | Path,
    *,
    plot: bool = True,
    env: dict[str, Any] | None = None,
) -> list[Path]:
    """Write ``results.csv``, ``results.json`` (rows, summary and ``env``, by default
    :func:`environment`), ``table.txt`` and ``attention_bench.png`` (:func:`plot_results`)
    into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = environment() if env is None else env
    written = [out / "results.json", out / "results.csv", out / "table.txt"]
    atomic_write(
        written[0], json_text({"rows": rows, "summary": summarize(rows), "environment": env})
    )
    keys = sorted({k for r in rows for k in r})
    table = io.StringIO()
    w = csv.DictWriter(table, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    atomic_write(written[1], table.getvalue())
    atomic_write(written[2], format_table(rows) + "\n")
    if plot:
        written.append(plot_results(rows, out / "attention_bench.png", env))
    return written


_MODE_TITLES = {
    "fwd": "forward",
    "fwdbwd": "forward + backward",
    "decode": "decode",
}
_COMBO_LINES = ("-", "--", ":", "-.")
_SKIP_LIMIT = re.compile(r"> ([0-9.]+) s")


def _describe(rows: list[dict[str, Any]], env: dict[str, Any] | None) -> tuple[str, bool]:
    """The figure's title (what every curve shares) and whether the curves differ in d or m."""
    first = rows[0]
    shared = {k: {r.get(k) for r in rows} for k in ("device", "dtype", "batch", "heads", "causal")}
    combos = {(r["head_dim"], r["n_features"]) for r in rows if r["impl"] != "sdpa"}
    heads = {r["head_dim"] for r in rows}
    parts = [
        ("causal" if first.get("causal", True) else "non-causal") + " attention",
        f"{str(first.get('device', 'cpu')).replace('cpu', 'CPU')} {first.get('dtype', 'float32')}",
        f"batch {first.get('batch')}",
        f"{first.get('heads')} heads",
    ]
    if any(len(v) > 1 for v in shared.values()):
        parts = ["attention (mixed settings: see the table)"]
    if len(heads) == 1:
        parts.append(f"head dim d = {next(iter(heads))}")
    if len(combos) == 1:
        parts.append(f"m = {next(iter(combos))[1]} features")
    if env:
        if env.get("gpu"):
            parts.append(str(env["gpu"]))
        elif env.get("threads"):
            parts.append(f"{env['threads']} torch threads")
    return ", ".join(parts), len(combos) > 1 or len(heads) > 1


def _curves(rows: list[dict[str, Any]], mode: str | None, key: str) -> dict[tuple, list]:
    """``(impl, d, m) -> [(T, value), ...]`` of the rows with a number under ``key``."""
    curves: dict[tuple, list] = {}
    for r in rows:
        value = r.get(key)
        if (mode is not None and r["mode"] != mode) or not isinstance(value, (int, float)):
            continue
        curves.setdefault((r["impl"], r["head_dim"], r["n_features"]), []).append((r["T"], value))
    order = {name: i for i, name in enumerate(IMPLS)}
    return {
        c: sorted(pts)
        for c, pts in sorted(curves.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0]))
    }


def _label(curve: tuple, with_shape: bool) -> str:
    impl, d, m = curve
    name = f"{impl} (exact)" if impl == "sdpa" else impl
    if with_shape:
        name += f" d={d}" if impl == "sdpa" else f" d={d} m={m}"
    return name


def _guides(ax: Any, lengths: list[int], anchor: float, powers: tuple[int, ...]) -> None:
    """Dashed grey lines proportional to T**p through (min T, anchor), labelled at their end."""
    lo, hi = min(lengths), max(lengths)
    grid = [lo, hi]
    ax.set_xlim(lo / 1.2, hi * 1.6)  # room for the labels
    for power, ls in zip(powers, (":", "--"), strict=False):
        ys = [anchor * (t / lo) ** power for t in grid]
        ax.loglog(grid, ys, color=GUIDE_COLOR, ls=ls, lw=1, zorder=1)
        text = r"$\propto T$" if power == 1 else rf"$\propto T^{power}$"
        ax.annotate(text, (hi, ys[-1]), xytext=(3, 0), textcoords="offset points",
                    fontsize=8, color="0.4", va="center")  # fmt: skip


def _skip_notes(rows: list[dict[str, Any]], mode: str) -> list[str]:
    """Why a curve stops: the first skipped T of each implementation and the time that
    made the sweep skip it (``Sweep.max_seconds``)."""
    notes = []
    skipped: dict[tuple, int] = {}
    for r in rows:
        if r["mode"] == mode and str(r.get("status", "")).startswith("skipped"):
            key = (r["impl"], r["head_dim"], r["n_features"])
            skipped[key] = min(skipped.get(key, r["T"]), r["T"])
    for (impl, d, m), first in sorted(skipped.items()):
        done = [
            r
            for r in rows
            if (r["impl"], r["mode"], r["head_dim"], r["n_features"]) == (impl, mode, d, m)
            and r.get("status") == "ok"
            and r["T"] < first
        ]
        status = next(
            r["status"]
            for r in rows
            if (r["impl"], r["mode"], r["T"], r["head_dim"]) == (impl, mode, first, d)
        )
        limit = _SKIP_LIMIT.search(status)
        reason = f"{status}"
        if done and limit:
            last = max(done, key=lambda r: r["T"])
            reason = (
                f"T = {last['T']} took {last['time_ms'] / 1e3:.1f} s > {limit.group(1)} s, "
                "so longer T were not run"
            )
        notes.append(f"{impl}: stops before T = {first}: {reason}")
    return notes


def _reference_curve(rows: list[dict[str, Any]], mode: str, key: str) -> list[tuple[int, float]]:
    """``[(T, value), ...]`` of a per-``T`` reference (the same on every row of that ``T``)."""
    points = {r["T"]: r[key] for r in rows if r["mode"] == mode and isinstance(r.get(key), float)}
    return sorted(points.items())


def _error_notes(rows: list[dict[str, Any]], mode: str) -> list[str]:
    """The error panel's statement of the input scale and of the estimator's analytic spread
    (:func:`input_scale`, :func:`kernel_relative_sd`), where the rows carry them."""
    rows = [r for r in rows if r["mode"] == mode]
    notes = []
    scales = [r["input_scale"] for r in rows if isinstance(r.get("input_scale"), float)]
    if scales:
        notes.append(rf"$|q|^2/\sqrt{{d}}$ = {statistics.mean(scales):.2f} (mean over tokens)")
    spread: dict[int, list[float]] = {}
    for r in rows:
        if r["impl"] in ("ours", "triton") and isinstance(r.get("kernel_rel_sd"), float):
            spread.setdefault(r["n_features"], []).append(r["kernel_rel_sd"])
    for m, values in sorted(spread.items()):
        notes.append(
            f"m = {m} positive features: relative SD\nof one score estimate "
            f"{statistics.median(values):.3g} (median pair;\nChoromanski et al. 2021, Lemma 2, "
            "i.i.d. w)"
        )
    return notes


def plot_results(
    rows: list[dict[str, Any]], path: Path, environment: dict[str, Any] | None = None
) -> Path:
    """Time, peak memory and error against ``T`` (log-log), one panel each, into ``path``.

    One panel per mode (time, with guides proportional to ``T`` and ``T^2``), one of peak
    memory (solid: the first mode, dashed: the second) and one of the relative error against
    exact attention, with the uniform-attention error as its "no information" line and the
    input scale and the estimator's analytic spread written in it (rows of earlier runs,
    without these fields, draw without them). Each implementation has its colour and marker from
    :data:`kernelapprox._style.IMPLEMENTATION_STYLE`; a curve that stops early says why (a
    shorter ``T`` ran longer than the sweep's ``max_seconds``). The title states what every
    curve shares (device, dtype, batch, heads, d, m, threads: ``environment``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        raise ValueError("rows: no measured row (status 'ok') to plot")
    modes = [m for m in MODES if any(r["mode"] == m for r in ok)]
    title, with_shape = _describe(ok, environment)
    combos = sorted({(r["head_dim"], r["n_features"]) for r in ok})
    lines = {c: _COMBO_LINES[i % len(_COMBO_LINES)] for i, c in enumerate(combos)}
    memory = any(isinstance(r.get("peak_mb"), (int, float)) for r in ok)
    errors = [m for m in modes if any(isinstance(r.get("rel_error"), float) for r in ok
                                      if r["mode"] == m and r["impl"] != "sdpa")]  # fmt: skip
    n_panels = len(modes) + memory + bool(errors)
    ncols = min(2, n_panels)
    nrows = -(-n_panels // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 4.4 * nrows), squeeze=False)
    panels = iter(axes.flat)

    def draw(ax: Any, curve: tuple, pts: list, ls: str | None = None) -> None:
        color, marker = implementation_style(curve[0])
        style = ls or (lines[(curve[1], curve[2])] if with_shape else "-")
        ax.loglog(*zip(*pts, strict=True), color=color, marker=marker, ms=5, ls=style,
                  label=_label(curve, with_shape), zorder=3)  # fmt: skip

    for mode in modes:
        ax = next(panels)
        curves = _curves(ok, mode, "time_ms")
        for curve, pts in curves.items():
            draw(ax, curve, pts)
        lengths = sorted({t for pts in curves.values() for t, _ in pts})
        if mode != "decode" and len(lengths) > 1:
            start = min(v for pts in curves.values() for t, v in pts if t == lengths[0])
            _guides(ax, lengths, start / 4, (1, 2))
        notes = _skip_notes(rows, mode)
        if notes:
            ax.text(0.02, 0.02, "\n".join(notes), transform=ax.transAxes, fontsize=7,
                    va="bottom", color="0.25", wrap=True)  # fmt: skip
        what = _MODE_TITLES.get(mode, mode)
        if mode == "decode":
            what += f" ({ok[0].get('decode_tokens', '?')} one-token steps after T tokens)"
        ax.set(xlabel="sequence length T", ylabel="time (ms, median)", title=what)
        ax.legend(fontsize=7, loc="upper left")
    if memory:
        ax = next(panels)
        for i, mode in enumerate(m for m in modes if m != "decode"):
            for curve, pts in _curves(ok, mode, "peak_mb").items():
                draw(ax, curve, pts, ls="-" if i == 0 else "--")
                ax.lines[-1].set_label(f"{_label(curve, with_shape)}, {mode}")
        shown = [_MODE_TITLES.get(m, m) for m in modes if m != "decode"]
        styles = " (solid), ".join(shown[:2]) + (" (dashed)" if len(shown) > 1 else "")
        ax.set(xlabel="sequence length T", ylabel="peak memory (MiB)",
               title=f"peak memory: {styles}")  # fmt: skip
        if ax.lines:
            lengths = sorted({r["T"] for r in ok if isinstance(r.get("peak_mb"), (int, float))})
            low = min(r["peak_mb"] for r in ok if isinstance(r.get("peak_mb"), (int, float)))
            if len(lengths) > 1:
                _guides(ax, lengths, low / 2, (1,))
            # one entry per implementation: the title says which line style is which mode
            firsts = {}
            for line in ax.lines:
                firsts.setdefault(line.get_color(), line)
            handles = [h for h in firsts.values() if not h.get_label().startswith("_")]
            ax.legend(handles, [h.get_label().rsplit(", ", 1)[0] for h in handles],
                      fontsize=7, loc="lower right")  # fmt: skip
    if errors:
        ax = next(panels)
        mode = errors[0]
        for curve, pts in _curves(ok, mode, "rel_error").items():
            if curve[0] != "sdpa":
                draw(ax, curve, pts)
        uniform = _reference_curve(ok, mode, "uniform_error")
        if uniform:
            # a dash marker keeps a single length visible (and over a curve sitting on it)
            ax.plot(*zip(*uniform, strict=True), color=GUIDE_COLOR, ls="--", lw=1.5, marker="_",
                    ms=14, mew=2, zorder=4, label="uniform weights (no information)")  # fmt: skip
        ax.set_yscale("linear")
        highest = max(y for line in ax.lines for y in line.get_ydata())
        ax.set_ylim(bottom=0, top=1.6 * highest)  # the top third holds the legend and notes
        std = ok[0].get("input_std", 1.0)
        ax.set(xlabel="sequence length T", ylabel="relative RMS error",
               title=f"error against exact attention (N(0, {std:g}) q, k; {mode})")  # fmt: skip
        notes = ["sdpa is the reference (error 0)", *_error_notes(ok, mode)]
        ax.text(0.98, 0.98, "\n".join(notes), transform=ax.transAxes, fontsize=7,
                ha="right", va="top", color="0.25")  # fmt: skip
        ax.legend(fontsize=7, loc="upper left")
    for ax in panels:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


#: The kernel's transparent-huge-page switch (Linux); the active mode is the bracketed word.
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def transparent_hugepage_mode(setting: Path = THP_SETTING) -> str | None:
    """The kernel's transparent-huge-page mode (``always``, ``madvise`` or ``never``), or
    ``None`` where the setting cannot be read (not Linux)."""
    try:
        text = setting.read_text()
    except OSError:
        return None
    active = [word[1:-1] for word in text.split() if word.startswith("[") and word.endswith("]")]
    return active[0] if active else None


#: Size of the probe tensor of :func:`cpu_huge_pages` (16 huge pages of 2 MB).
HUGE_PAGE_PROBE_BYTES = 32 * 2**20
#: Where Linux lists each mapping of the process with its ``AnonHugePages``.
SMAPS = Path("/proc/self/smaps")


def anon_huge_kib(address: int, smaps: str) -> int | None:
    """``AnonHugePages`` (KiB) of the mapping that holds ``address`` in the text of
    ``/proc/<pid>/smaps`` (``None`` when no mapping holds it)."""
    inside = False
    for line in smaps.splitlines():
        head = line.split(maxsplit=1)[0] if line.strip() else ""
        if "-" in head and ":" not in head:  # a mapping's header: start-end perms ...
            lo, _, hi = head.partition("-")
            inside = int(lo, 16) <= address < int(hi, 16)
        elif inside and head == "AnonHugePages:":
            return int(line.split()[1])
    return None


def cpu_huge_pages() -> bool | None:
    """Whether a fresh CPU tensor of 32 MiB is backed by transparent huge pages in this
    process: the ``AnonHugePages`` of its mapping in ``/proc/self/smaps`` after it is written
    (at least half of it in huge pages; ``None`` where smaps cannot be read: not Linux). torch
    asks for huge pages for tensors of 2 MB and more when ``THP_MEM_ALLOC_ENABLE`` is set at its
    first such allocation, and the kernel grants them in its ``madvise`` or ``always`` mode.
    (A count of page faults would mislead: a block reused from memory faulted in before takes
    none.)"""
    probe = torch.empty(HUGE_PAGE_PROBE_BYTES // 4, dtype=torch.float32).fill_(0.0)
    try:
        text = SMAPS.read_text()
    except OSError:
        return None
    kib = anon_huge_kib(probe.data_ptr(), text)
    return None if kib is None else kib * 1024 >= HUGE_PAGE_PROBE_BYTES // 2


def environment() -> dict[str, Any]:
    """What the numbers were measured on, with the allocator settings that move CPU times:
    torch's ``THP_MEM_ALLOC_ENABLE`` (``None`` when unset; ``import kernelapprox`` sets it to
    ``1`` when torch is not imported yet and the user chose no value), the kernel's
    transparent-huge-page mode and whether fresh CPU tensors do get huge pages
    (:func:`cpu_huge_pages`), and whether freed memory is kept in the process
    (:func:`kernelapprox.bench.allocator.allocator_settings`)."""
    from kernelapprox.bench.allocator import allocator_settings

    env: dict[str, Any] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE"),
        "transparent_hugepage": transparent_hugepage_mode(),
        "cpu_huge_pages": cpu_huge_pages(),
        "allocator": allocator_settings(),
    }
    try:
        env["load_average"] = os.getloadavg()
    except OSError:  # pragma: no cover
        pass
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name()
    return env
