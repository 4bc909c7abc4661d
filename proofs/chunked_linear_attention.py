r"""Chunked causal linear attention computes exactly the masked quadratic form.

Statement
---------
For feature-mapped queries and keys $Q, K \in \mathbb{R}^{T \times m}$, values
$V \in \mathbb{R}^{T \times e}$, an initial state $S_0 \in \mathbb{R}^{m \times e}$ and any chunk
size $c \ge 1$, the chunked algorithm
$$O_{[n]} = Q_{[n]} S_{n-1} + \big(Q_{[n]} K_{[n]}^\top \odot M\big) V_{[n]},\qquad
S_n = S_{n-1} + K_{[n]}^\top V_{[n]}$$
(chunks $[n]$ of length $L_n \le c$; $M_{ij} = [j \le i]$) returns the masked quadratic form
and the recurrent state:
$$o_t = q_t S_0 + \sum_{s \le t} (q_t^\top k_s)\, v_s,\qquad S_{T} = S_0 + \sum_{s} k_s^\top v_s.$$
Appending a column of ones to $V$ gives the normaliser $q_t^\top (z_0 + \sum_{s \le t} k_s)$, so
the normalised output is exact too, and `kernelapprox.attention.feature_attention` computes it.

Source
------
Katharopoulos et al., "Transformers are RNNs", ICML 2020 (causal linear attention); the
chunkwise form of flash-linear-attention (`fla/ops/simple_gla/chunk.py`) and RetNet
(Sun et al., 2023), here without their decay.

Method
------
Both algorithms are written in sympy with symbolic $Q, K, V, S_0$ (entries all distinct
symbols, $m = e = 2$, $V$ augmented with ones) for $T \in \{4, 5\}$ and chunk sizes $1, 2, 3$
and $T + 1$; every entry of the output difference and of the final-state difference must expand
to exactly 0. Then the package: `feature_attention` (torch path, float64) with the package's
positive map ($m = 4$, $d = 3$, $T = 6$), an initial state whose log-scale the keys overtake (so
the running rescaling is exercised), causal at chunk sizes $1, 2, 3, T + 1$ and non-causal, and
with an initial state of log-scale 750 that dominates every key (it must not overflow), and
once with a gradient required (the autograd path instead of the in-place one),
must match the derived quadratic form evaluated on the map's features, normalised, and the
final state, to $10^{-12}$ relative.
(The package has no decay $\gamma$, so none is modelled.)
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch

from ._core import Claim, Verdict, docstring_section
from ._symbolic import AGREEMENT_RTOL
from ._torch import single_threaded

#: Seed of the package comparison (inputs, the positive map's frequencies, the initial state).
SEED = 20200629


def quadratic_form(
    q: sp.Matrix, k: sp.Matrix, v: sp.Matrix, s0: sp.Matrix, *, causal: bool = True
) -> tuple[sp.Matrix, sp.Matrix]:
    """The (causally masked) quadratic form and the final recurrent state."""
    n_tokens = q.rows
    out = sp.zeros(n_tokens, v.cols)
    for t in range(n_tokens):
        row = q[t, :] * s0
        for s in range(t + 1 if causal else n_tokens):
            row += (q[t, :].dot(k[s, :])) * v[s, :]
        out[t, :] = row
    state = s0
    for s in range(n_tokens):
        state += k[s, :].T * v[s, :]
    return out, state


def chunked(
    q: sp.Matrix, k: sp.Matrix, v: sp.Matrix, s0: sp.Matrix, chunk: int
) -> tuple[sp.Matrix, sp.Matrix]:
    """The chunkwise algorithm: inter-chunk term from the carried state, intra-chunk mask."""
    n_tokens = q.rows
    out = sp.zeros(n_tokens, v.cols)
    state = s0
    for start in range(0, n_tokens, chunk):
        stop = min(start + chunk, n_tokens)
        length = stop - start
        qc, kc, vc = q[start:stop, :], k[start:stop, :], v[start:stop, :]
        mask = sp.Matrix(length, length, lambda i, j: 1 if j <= i else 0)
        scores = (qc * kc.T).multiply_elementwise(mask)
        out[start:stop, :] = qc * state + scores * vc
        state = state + kc.T * vc
    return out, state


def _relative_gap(actual: np.ndarray, expected: np.ndarray) -> float:
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape or not np.all(np.isfinite(actual)):
        return float("inf")
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def package_gaps() -> dict[str, float]:
    """``feature_attention`` against the derived quadratic form on the package map's features.

    The derivation is evaluated on numbers: ``Q = phi(q)``, ``K = phi(k)`` from the package's
    positive map, ``V`` with a column of ones, and ``S_0 = exp(r_0) [kv_0, z_0]`` from the
    initial :class:`~kernelapprox.attention.AttentionState`; its normalised output and its
    final state must match the package's.
    """
    from kernelapprox import features, kernels
    from kernelapprox.attention import AttentionState, feature_attention

    n_tokens, dim, m, value_dim = 6, 3, 4, 2
    g = torch.Generator().manual_seed(SEED)

    def draw(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    q, k = 0.8 * draw(1, n_tokens, 1, dim), 1.2 * draw(1, n_tokens, 1, dim)
    v = draw(1, n_tokens, 1, value_dim)
    fm = features.make("positive", kernels.Softmax(1.0), m, dim=dim, seed=SEED)
    kv0 = torch.rand(1, 1, m, value_dim, generator=g, dtype=torch.float64)
    z0 = 0.5 + torch.rand(1, 1, m, generator=g, dtype=torch.float64)
    log0 = torch.full((1, 1), -0.4, dtype=torch.float64)  # below the keys' log-scales

    phi_q = sp.Matrix(fm(q[0, :, 0, :]).numpy())
    phi_k = sp.Matrix(fm(k[0, :, 0, :]).numpy())
    v_aug = sp.Matrix(v[0, :, 0, :].numpy()).row_join(sp.ones(n_tokens, 1))
    # an initial state far above every key (log-scale 750: exp(750) overflows float64) must
    # dominate without overflow; sympy's Floats hold the derivation's exact numbers
    dominant = torch.full((1, 1), 750.0, dtype=torch.float64)
    cases = [(True, c, log0, False) for c in (1, 2, 3, n_tokens + 1)] + [
        (False, n_tokens + 1, log0, False), (True, 2, dominant, False),
        (False, n_tokens + 1, dominant, False), (True, 2, log0, True),
    ]  # fmt: skip
    gaps = {}
    for causal, chunk, log_start, grad in cases:
        state0 = AttentionState(kv0, z0, log_start)
        base = sp.Matrix(np.column_stack([kv0[0, 0].numpy(), z0[0, 0].numpy()]))
        s0 = sp.exp(sp.Float(log_start.item(), 30)) * base
        out, state = quadratic_form(phi_q, phi_k, v_aug, s0, causal=causal)
        ratio = sp.Matrix(n_tokens, value_dim, lambda i, j, out=out: out[i, j] / out[i, value_dim])
        expected = np.array(ratio.evalf(20).tolist(), dtype=np.float64)
        # with a gradient the autograd path (not the in-place one) runs
        qg = q.clone().requires_grad_(True) if grad else q
        o, final = feature_attention(
            qg, k, v, fm, causal=causal, scale=1.0, initial_state=state0,
            output_final_state=True, chunk_size=chunk,
        )  # fmt: skip
        o, final = o.detach(), AttentionState(*(x.detach() for x in final))
        label = f"causal chunk {chunk}" if causal else "non-causal"
        label += ", dominant initial state" if log_start is dominant else ""
        label += ", with gradient" if grad else ""
        gaps[f"{label} output"] = _relative_gap(o[0, :, 0, :].numpy(), expected)
        if causal:
            # compare relative to exp(log_start): the true state itself may exceed float64
            rel = torch.exp(final.log_scale - log_start)[0, 0]
            got = torch.cat([final.kv[0, 0], final.z[0, 0][:, None]], dim=1)
            want = state * sp.exp(-sp.Float(log_start.item(), 30))
            want = np.array(want.evalf(20).tolist(), dtype=np.float64)
            gaps[f"{label} final state"] = _relative_gap((rel * got).numpy(), want)
    return gaps


#: The Triton kernels compute in float32 (unit roundoff u = 2^-24) from inputs rounded to
#: float32; the derivation gets the same rounded numbers, so only the computation counts: a
#: feature, a product and a sum of at most T + 1 terms of F features per entry, i.e. a relative
#: error of a few (F + T + 1) u = 25 u here. 64 u leaves room for the quotient.
TRITON_RTOL = 64 * 2.0**-24

_TRITON_SCRIPT = """
import json, sys
import torch
from kernelapprox import features, kernels
import kernelapprox.attention.triton.attention as backend
from kernelapprox.attention.triton import triton_feature_attention
def no_fallback(*args, **kwargs):  # these inputs are moderate: the kernels must answer
    raise RuntimeError("the kernels' denominators sent the call to the torch path")
backend.feature_attention = no_fallback
data = json.load(sys.stdin)
fm = features.make("positive", kernels.Softmax(1.0), data["m"], dim=data["dim"], seed=data["seed"])
q, k, v = (torch.tensor(data[name], dtype=torch.float32) for name in "qkv")
outputs = {}
for causal in (True, False):
    o = triton_feature_attention(q, k, v, fm, causal=causal, scale=1.0, chunk_size=16)
    outputs["causal" if causal else "non-causal"] = o.double().tolist()
print(json.dumps(outputs))
"""


def triton_gaps() -> tuple[dict[str, float], str]:
    """The Triton kernels (``triton_feature_attention``, float32) against the derivation.

    Without a GPU the kernels run in Triton's interpreter, which must be chosen before they
    are compiled (``TRITON_INTERPRET=1``), so they run in a child process: two chunks of 16
    (T = 20), causal and non-causal. The inputs are moderate, so the kernels must answer
    themselves: the child refuses the torch path the kernels hand a call to when their
    denominators underflow. Returns the gaps and a note; without ``triton`` no gap,
    and the note says so (the claim then rests on the torch path alone).
    """
    import importlib.util
    import json
    import os
    import subprocess
    import sys

    from kernelapprox import features, kernels

    if importlib.util.find_spec("triton") is None:
        return {}, "Triton path not checked: triton is not installed"
    n_tokens, dim, m, value_dim = 20, 3, 4, 2
    g = torch.Generator().manual_seed(SEED + 1)
    q, k = (
        0.8 * torch.randn(1, n_tokens, 1, dim, generator=g),
        torch.randn(1, n_tokens, 1, dim, generator=g),
    )
    v = torch.randn(1, n_tokens, 1, value_dim, generator=g)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    data = {"m": m, "dim": dim, "seed": SEED, "q": q.tolist(), "k": k.tolist(), "v": v.tolist()}
    run = subprocess.run(
        [sys.executable, "-c", _TRITON_SCRIPT], input=json.dumps(data), env=env,
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if run.returncode != 0:
        tail = run.stderr.strip().splitlines()[-1:] or ["no message"]
        return {"Triton path": float("inf")}, f"Triton path failed: {tail[0]}"
    outputs = json.loads(run.stdout)
    fm = features.make("positive", kernels.Softmax(1.0), m, dim=dim, seed=SEED)
    phi_q = sp.Matrix(fm(q[0, :, 0, :].double()).numpy())
    phi_k = sp.Matrix(fm(k[0, :, 0, :].double()).numpy())
    v_aug = sp.Matrix(v[0, :, 0, :].double().numpy()).row_join(sp.ones(n_tokens, 1))
    gaps = {}
    for label, got in outputs.items():
        out, _ = quadratic_form(
            phi_q, phi_k, v_aug, sp.zeros(m, value_dim + 1), causal=label == "causal"
        )
        ratio = sp.Matrix(n_tokens, value_dim, lambda i, j, out=out: out[i, j] / out[i, value_dim])
        expected = np.array(ratio.evalf(20).tolist(), dtype=np.float64)
        gaps[f"Triton {label}"] = _relative_gap(np.asarray(got)[0, :, 0, :], expected)
    where = "a GPU" if torch.cuda.is_available() else "the interpreter"
    return gaps, f"Triton kernels in {where} (float32, T = 20, chunks of 16)"


def _symbols(name: str, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}_{j}", real=True))


def run(*, thorough: bool = False) -> Verdict:
    lengths = (4, 5, 6) if thorough else (4, 5)
    feature_dim, value_dim = 2, 2
    cases, bad = 0, []
    for n_tokens in lengths:
        q = _symbols("q", n_tokens, feature_dim)
        k = _symbols("k", n_tokens, feature_dim)
        v = _symbols("v", n_tokens, value_dim).row_join(sp.ones(n_tokens, 1))
        s0 = _symbols("S", feature_dim, value_dim + 1)
        reference = quadratic_form(q, k, v, s0)
        for chunk in (1, 2, 3, n_tokens + 1):
            result = chunked(q, k, v, s0, chunk)
            cases += 1
            for what, a, b in zip(("output", "state"), result, reference, strict=True):
                diff = (a - b).applyfunc(sp.expand)
                if not diff.is_zero_matrix:
                    bad.append(f"T={n_tokens} chunk={chunk} {what}")
    gaps = single_threaded(package_gaps)()
    off = {k: v for k, v in gaps.items() if not v <= AGREEMENT_RTOL}
    triton, triton_note = triton_gaps()
    off.update({k: v for k, v in triton.items() if not v <= TRITON_RTOL})
    if bad:
        summary = f"nonzero difference in {len(bad)} cases: {', '.join(bad[:3])}"
    elif off:
        summary = "feature_attention differs from the derivation: " + "; ".join(
            f"{k} {v:.2e}" for k, v in off.items()
        )
        if triton_note.startswith("Triton path failed"):
            summary += f" ({triton_note})"
    else:
        summary = (
            f"outputs (with normaliser column) and final states agree exactly in {cases} "
            f"cases (T in {list(lengths)}, chunk sizes 1, 2, 3, T+1); feature_attention "
            f"matches the derivation to {max(gaps.values()):.1e} relative ({len(gaps)} checks, "
            "causal chunk sizes 1, 2, 3, 7 and non-causal, rescaled and dominant initial state); "
            + (
                f"{triton_note} to {max(triton.values()):.1e} relative (tolerance 64 u)"
                if triton
                else triton_note
            )
        )
    return Verdict.decide(
        not bad and not off, summary, cases=cases, nonzero=bad, package_gaps=gaps,
        triton_gaps=triton,
    )  # fmt: skip


CLAIM = Claim(
    name="chunked_linear_attention",
    title="Chunked causal linear attention equals the masked quadratic form",
    statement=docstring_section(__doc__, "Statement"),
    source="Katharopoulos et al. (ICML 2020); fla chunk algorithm; RetNet",
    method="symbolic",
    expected="holds",
    family="attention",
    run=run,
    module=__name__,
    verifies=(
        "kernelapprox.attention.functional.feature_attention",
        "kernelapprox.attention.functional._causal_chunked",
        "kernelapprox.attention.functional._add_keys",
    ),
)
