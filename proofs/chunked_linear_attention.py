r"""Chunked causal linear attention computes exactly the masked quadratic form.

Statement
---------
For feature-mapped queries and keys $Q, K \in \mathbb{R}^{T \times m}$, values
$V \in \mathbb{R}^{T \times e}$, an initial state $S_0 \in \mathbb{R}^{m \times e}$, a decay
$\gamma$ ($\gamma = 1$: plain linear attention) and any chunk size $c \ge 1$, the chunked algorithm
$$O_{[n]} = \Gamma_{\mathrm{in}} Q_{[n]} S_{n-1} + \big(Q_{[n]} K_{[n]}^\top \odot M^{\gamma}\big)
V_{[n]},\qquad S_n = \gamma^{L_n} S_{n-1} + K_{[n]}^\top \Gamma_{\mathrm{out}} V_{[n]}$$
(chunks $[n]$ of length $L_n \le c$; $M^{\gamma}_{ij} = \gamma^{i-j}[j \le i]$,
$\Gamma_{\mathrm{in}} = \mathrm{diag}(\gamma^{i+1})$, $\Gamma_{\mathrm{out}} =
\mathrm{diag}(\gamma^{L_n-1-j})$) returns the masked quadratic form and the recurrent state:
$$o_t = \gamma^{t+1} q_t S_0 + \sum_{s \le t} \gamma^{t-s} (q_t^\top k_s)\, v_s,\qquad
S_{T} = \gamma^{T} S_0 + \sum_{s} \gamma^{T-1-s} k_s^\top v_s.$$
Appending a column of ones to $V$ gives the normaliser $q_t^\top \sum_{s \le t} k_s$, so the
normalised output is exact too.

Source
------
Katharopoulos et al., "Transformers are RNNs", ICML 2020 (causal linear attention); the
chunkwise form of flash-linear-attention (`fla/ops/simple_gla/chunk.py`) and RetNet
(Sun et al., 2023); DiJiang's released decay $\gamma^{n-m}$.

Method
------
Both algorithms are written in sympy with symbolic $Q, K, V, S_0$ (entries all distinct
symbols, $m = e = 2$, $V$ augmented with ones) for $T \in \{4, 5\}$, chunk sizes $1, 2, 3$ and
$T + 1$, with $\gamma = 1$ and with symbolic $\gamma$; every entry of the output difference and
of the final-state difference must expand to exactly 0.
"""

from __future__ import annotations

import sympy as sp

from ._core import Claim, Verdict, docstring_section


def quadratic_form(
    q: sp.Matrix, k: sp.Matrix, v: sp.Matrix, s0: sp.Matrix, gamma: sp.Expr
) -> tuple[sp.Matrix, sp.Matrix]:
    """The masked quadratic form and the final recurrent state."""
    n_tokens = q.rows
    out = sp.zeros(n_tokens, v.cols)
    for t in range(n_tokens):
        row = gamma ** (t + 1) * q[t, :] * s0
        for s in range(t + 1):
            row += gamma ** (t - s) * (q[t, :].dot(k[s, :])) * v[s, :]
        out[t, :] = row
    state = gamma**n_tokens * s0
    for s in range(n_tokens):
        state += gamma ** (n_tokens - 1 - s) * k[s, :].T * v[s, :]
    return out, state


def chunked(
    q: sp.Matrix, k: sp.Matrix, v: sp.Matrix, s0: sp.Matrix, gamma: sp.Expr, chunk: int
) -> tuple[sp.Matrix, sp.Matrix]:
    """The chunkwise algorithm: inter-chunk term from the carried state, intra-chunk mask."""
    n_tokens = q.rows
    out = sp.zeros(n_tokens, v.cols)
    state = s0
    for start in range(0, n_tokens, chunk):
        stop = min(start + chunk, n_tokens)
        length = stop - start
        qc, kc, vc = q[start:stop, :], k[start:stop, :], v[start:stop, :]
        mask = sp.Matrix(length, length, lambda i, j: gamma ** (i - j) if j <= i else 0)
        decay_in = sp.diag(*[gamma ** (i + 1) for i in range(length)])
        decay_out = sp.diag(*[gamma ** (length - 1 - j) for j in range(length)])
        scores = (qc * kc.T).multiply_elementwise(mask)
        out[start:stop, :] = decay_in * qc * state + scores * vc
        state = gamma**length * state + kc.T * decay_out * vc
    return out, state


def _symbols(name: str, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i}_{j}", real=True))


def run(*, thorough: bool = False) -> Verdict:
    lengths = (4, 5, 6) if thorough else (4, 5)
    feature_dim, value_dim = 2, 2
    gammas = {"gamma=1": sp.Integer(1), "symbolic gamma": sp.Symbol("gamma", positive=True)}
    cases, bad = 0, []
    for n_tokens in lengths:
        q = _symbols("q", n_tokens, feature_dim)
        k = _symbols("k", n_tokens, feature_dim)
        v = _symbols("v", n_tokens, value_dim).row_join(sp.ones(n_tokens, 1))
        s0 = _symbols("S", feature_dim, value_dim + 1)
        for label, gamma in gammas.items():
            reference = quadratic_form(q, k, v, s0, gamma)
            for chunk in (1, 2, 3, n_tokens + 1):
                result = chunked(q, k, v, s0, gamma, chunk)
                cases += 1
                for what, a, b in zip(("output", "state"), result, reference, strict=True):
                    diff = (a - b).applyfunc(sp.expand)
                    if not diff.is_zero_matrix:
                        bad.append(f"T={n_tokens} chunk={chunk} {label} {what}")
    return Verdict.decide(
        not bad,
        f"outputs (with normaliser column) and final states agree exactly in {cases} cases "
        f"(T in {list(lengths)}, chunk sizes 1, 2, 3, T+1, gamma = 1 and symbolic)"
        if not bad
        else f"nonzero difference in {len(bad)} cases: {', '.join(bad[:3])}",
        cases=cases,
        nonzero=bad,
    )


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
    verifies=("kernelapprox.attention",),
)
