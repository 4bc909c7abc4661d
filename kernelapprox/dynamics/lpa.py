r"""Low-dimensional projected attention (LPA; Lv et al., EMNLP 2024, arXiv 2411.02063).

Official code TsinghuaC3I/LPA (notes ``lowrank_dynamics.md`` §2). Each of the four attention
projections becomes two stacked linear maps through dimension :math:`r`, with no nonlinearity:

* :math:`q, k, v`: ``Linear(d_model -> r)`` then ``Linear(r -> n_heads * head_dim)``;
* :math:`o`: ``Linear(n_heads * head_dim -> r)`` then ``Linear(r -> d_model)``.

The :math:`r`-dimensional down projection is shared by all heads; the FFN stays full rank.
Per token and layer the projections cost :math:`4\,d\,(h d_h)` multiply-accumulates (MACs) in a
vanilla block and :math:`4\,r\,(d + h d_h)` in LPA. Consequences checked by
:func:`lpa_rank_check`: :math:`\operatorname{rank}(W_B W_A) \le r` for every projection and the
per-head bilinear form :math:`W_{Q,h}^\top W_{K,h}` has rank :math:`\le \min(r, d_h)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from kernelapprox._validation import check_bool, check_choice, check_positive_int


class LowRankLinear(torch.nn.Module):
    r"""Two stacked linear maps :math:`x \mapsto B(Ax + a) + b` through dimension ``rank``.

    Both factors use PyTorch's default ``nn.Linear`` init (as the LPA code); ``bias_down`` /
    ``bias_up`` place the biases (setting 1 of the paper: bias on the down map of q/k/v and on
    the up map of o).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        *,
        bias_down: bool = False,
        bias_up: bool = False,
        dtype: torch.dtype | None = None,
    ) -> None:
        bias_down = check_bool(bias_down, "bias_down")
        bias_up = check_bool(bias_up, "bias_up")
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features")
        self.out_features = check_positive_int(out_features, "out_features")
        self.rank = check_positive_int(rank, "rank")
        self.down = torch.nn.Linear(in_features, rank, bias=bias_down, dtype=dtype)
        self.up = torch.nn.Linear(rank, out_features, bias=bias_up, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))

    def weight(self) -> torch.Tensor:
        r"""The effective dense matrix :math:`W_B W_A` (rank :math:`\le r`)."""
        return self.up.weight @ self.down.weight

    @torch.no_grad()
    def fit_dense_(self, weight: torch.Tensor) -> float:
        r"""Set the factors to the best rank-``rank`` approximation of ``weight``; return the
        relative Frobenius residual.

        Least squares over :math:`(W_A, W_B)` of :math:`\|W_B W_A - W\|_F` is solved by the
        truncated SVD (Eckart-Young): :math:`W_B = U_r\Sigma_r^{1/2}`,
        :math:`W_A = \Sigma_r^{1/2}V_r^\top` (zero-padded when ``rank`` exceeds
        ``min(in, out)``). Biases are set to zero. The residual is 0 whenever
        ``rank >= min(in_features, out_features)``: LPA loses no expressivity there.
        """
        weight = torch.as_tensor(weight, dtype=self.up.weight.dtype)
        if weight.shape != (self.out_features, self.in_features):
            raise ValueError(
                f"weight must have shape {(self.out_features, self.in_features)}, got "
                f"{tuple(weight.shape)}"
            )
        u, s, vh = torch.linalg.svd(weight, full_matrices=False)
        k = min(self.rank, s.shape[0])
        root = s[:k].sqrt()
        self.up.weight.zero_()
        self.down.weight.zero_()
        self.up.weight[:, :k] = u[:, :k] * root
        self.down.weight[:k] = root[:, None] * vh[:k]
        for lin in (self.up, self.down):
            if lin.bias is not None:
                lin.bias.zero_()
        return float(torch.linalg.norm(self.weight() - weight) / torch.linalg.norm(weight))


class LowRankProjectedAttention(torch.nn.Module):
    r"""Multi-head self-attention whose Q, K, V, O projections pass through dimension ``rank``.

    Parameters
    ----------
    d_model : int
        Model width :math:`d`.
    n_heads : int
        Heads :math:`h`.
    rank : int
        :math:`r`, shared by all heads (320 in setting 1, 128 in setting 2).
    head_dim : int, optional
        :math:`d_h`; default ``d_model // n_heads``.
    bias : bool
        Setting-1 biases (down maps of q/k/v, up map of o); ``False`` as in setting 2.
    causal : bool
        Causal mask in ``scaled_dot_product_attention``.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        rank: int,
        head_dim: int | None = None,
        bias: bool = False,
        causal: bool = True,
        dtype: torch.dtype | None = None,
    ) -> None:
        bias = check_bool(bias, "bias")
        causal = check_bool(causal, "causal")
        super().__init__()
        self.d_model = check_positive_int(d_model, "d_model")
        self.n_heads = check_positive_int(n_heads, "n_heads")
        if head_dim is None:
            if d_model % n_heads:
                raise ValueError(
                    f"d_model ({d_model}) must be divisible by n_heads ({n_heads}) unless "
                    "head_dim is given"
                )
            head_dim = d_model // n_heads
        self.head_dim = check_positive_int(head_dim, "head_dim")
        self.rank = check_positive_int(rank, "rank")
        self.causal = bool(causal)
        inner = self.n_heads * self.head_dim
        self.q_proj = LowRankLinear(d_model, inner, rank, bias_down=bias, dtype=dtype)
        self.k_proj = LowRankLinear(d_model, inner, rank, bias_down=bias, dtype=dtype)
        self.v_proj = LowRankLinear(d_model, inner, rank, bias_down=bias, dtype=dtype)
        self.o_proj = LowRankLinear(inner, d_model, rank, bias_up=bias, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of shape ``(batch, seq, d_model)`` -> same shape."""
        b, n, _ = x.shape
        h, dh = self.n_heads, self.head_dim

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, h, dh).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, h * dh))

    def parameter_count(self) -> int:
        """Number of parameters (equals :func:`attention_parameter_count` with this config)."""
        return sum(p.numel() for p in self.parameters())

    def projection_macs_per_token(self) -> int:
        r""":math:`4\,r\,(d + h d_h)` multiply-accumulates per token for the four projections."""
        return projection_macs_per_token(self.d_model, self.n_heads * self.head_dim, rank=self.rank)


def projection_macs_per_token(d_model: int, inner: int, *, rank: int | None = None) -> int:
    r"""MACs per token of the Q, K, V, O projections: :math:`4 d\,(h d_h)` dense, or
    :math:`4 r (d + h d_h)` with LPA rank ``rank`` (notes §2.3)."""
    if rank is None:
        return 4 * d_model * inner
    return 4 * rank * (d_model + inner)


def attention_parameter_count(
    d_model: int, inner: int, *, rank: int | None = None, bias: bool = False
) -> int:
    """Parameters of the four attention projections, dense (``rank=None``) or LPA.

    ``bias`` follows setting 1: dense q/k/v/o all biased; LPA biases on the down maps of q/k/v
    (``rank`` each) and on the up map of o (``d_model``).
    """
    bias = check_bool(bias, "bias")
    if rank is None:
        return 4 * d_model * inner + (3 * inner + d_model if bias else 0)
    weights = 3 * rank * (d_model + inner) + rank * (inner + d_model)
    return weights + (3 * rank + d_model if bias else 0)


@dataclass(frozen=True)
class TransformerConfig:
    """A decoder-only language model, enough to count its parameters (notes §2.1)."""

    d_model: int
    n_layers: int
    n_heads: int
    head_dim: int
    ffn_dim: int
    ffn: str  # "swiglu" or "relu"
    vocab: int
    norm: str  # "rmsnorm" or "layernorm"
    bias: bool
    learned_positions: int = 0
    tied_head: bool = False


#: The two LPA settings of TsinghuaC3I/LPA with the Llama-2 tokenizer (vocab 32001).
LPA_SETTINGS: dict[str, tuple[TransformerConfig, int]] = {
    "setting1": (
        TransformerConfig(1024, 24, 8, 128, 4096, "relu", 32001, "layernorm", True, 1024),
        320,
    ),
    "setting2": (TransformerConfig(768, 12, 12, 64, 2048, "swiglu", 32001, "rmsnorm", False), 128),
}


def transformer_parameter_count(config: TransformerConfig, *, attn_rank: int | None = None) -> int:
    """Total parameters of ``config``, with LPA attention of rank ``attn_rank`` if given.

    Counts token embeddings, learned positions, per layer the attention projections
    (:func:`attention_parameter_count`), the FFN (SwiGLU: 3 matrices; ReLU: 2 with biases when
    ``bias``) and two norms (LayerNorm: weight and bias; RMSNorm: weight), a final norm and an
    untied LM head unless ``tied_head``.
    """
    check_choice(config.ffn, "ffn", ("swiglu", "relu"))
    check_choice(config.norm, "norm", ("rmsnorm", "layernorm"))
    d, inner = config.d_model, config.n_heads * config.head_dim
    norm = (2 if config.norm == "layernorm" else 1) * d
    attn = attention_parameter_count(d, inner, rank=attn_rank, bias=config.bias)
    if config.ffn == "swiglu":
        ffn = 3 * d * config.ffn_dim
    else:
        ffn = 2 * d * config.ffn_dim + ((config.ffn_dim + d) if config.bias else 0)
    per_layer = attn + ffn + 2 * norm
    embed = config.vocab * d + config.learned_positions * d
    head = 0 if config.tied_head else config.vocab * d
    return config.n_layers * per_layer + embed + norm + head


def lpa_rank_check(
    module: LowRankProjectedAttention, *, rtol: float | None = None
) -> dict[str, Any]:
    r"""Measure the ranks LPA bounds and report them with the bounds.

    Returns a dict with ``rank`` (:math:`r`), ``projection_ranks`` (numerical rank of
    :math:`W_B W_A` for q, k, v, o; bound :math:`\min(r, d_\text{in}, d_\text{out})`),
    ``qk_head_ranks`` (rank of :math:`W_{Q,h}^\top W_{K,h}` for each head; bound
    :math:`\min(r, d_h)`), the bounds, and ``holds`` (every measured rank within its bound).
    Numerical rank: singular values above ``rtol * sigma_max`` (default
    ``max(shape) * machine eps``, as ``numpy.linalg.matrix_rank``).
    """

    def num_rank(m: torch.Tensor) -> int:
        with torch.no_grad():
            s = torch.linalg.svdvals(m.detach().double())
            if s.numel() == 0 or float(s[0]) == 0.0:
                return 0
            tol = (max(m.shape) * torch.finfo(m.dtype).eps) if rtol is None else rtol
            return int((s > tol * s[0]).sum())

    proj = {name: getattr(module, f"{name}_proj") for name in ("q", "k", "v", "o")}
    projection_ranks = {name: num_rank(p.weight()) for name, p in proj.items()}
    projection_bounds = {
        name: min(module.rank, p.in_features, p.out_features) for name, p in proj.items()
    }
    wq, wk = proj["q"].weight(), proj["k"].weight()
    dh = module.head_dim
    qk = [
        num_rank(wq[h * dh : (h + 1) * dh].T @ wk[h * dh : (h + 1) * dh])
        for h in range(module.n_heads)
    ]
    qk_bound = min(module.rank, dh)
    holds = all(projection_ranks[n] <= projection_bounds[n] for n in proj) and all(
        r <= qk_bound for r in qk
    )
    return {
        "rank": module.rank,
        "projection_ranks": projection_ranks,
        "projection_bounds": projection_bounds,
        "qk_head_ranks": qk,
        "qk_head_bound": qk_bound,
        "holds": holds,
    }


def _millions(x: int) -> float:
    return round(x / 1e6, 1)


def lpa_setting_table() -> list[dict[str, Any]]:
    """Vanilla vs LPA parameter counts and projection MACs of both settings (notes §2.1, §2.3)."""
    rows = []
    for name, (cfg, r) in LPA_SETTINGS.items():
        vanilla = transformer_parameter_count(cfg)
        lpa = transformer_parameter_count(cfg, attn_rank=r)
        inner = cfg.n_heads * cfg.head_dim
        rows.append(
            {
                "setting": name,
                "rank": r,
                "vanilla_params": vanilla,
                "lpa_params": lpa,
                "saving_params": vanilla - lpa,
                "saving_fraction": (vanilla - lpa) / vanilla,
                "vanilla_projection_macs": projection_macs_per_token(cfg.d_model, inner),
                "lpa_projection_macs": projection_macs_per_token(cfg.d_model, inner, rank=r),
                "vanilla_millions": _millions(vanilla),
                "lpa_millions": _millions(lpa),
            }
        )
    return rows


def verify_lpa_rank_bound(
    *,
    d_model: int = 64,
    n_heads: int = 4,
    rank: int = 8,
    head_dim: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    r"""Build a randomly initialised :class:`LowRankProjectedAttention` and measure its ranks.

    Returns :func:`lpa_rank_check`'s dict plus ``expressivity_residual``: the relative residual
    of fitting a random dense ``d_model x d_model`` matrix with a :class:`LowRankLinear` of
    rank ``d_model`` (0 up to rounding, notes §2.3 item 3) and ``truncated_residual`` with
    rank ``rank`` (equal to the Eckart-Young tail when ``rank < d_model``).
    """
    seed = check_positive_int(seed, "seed", minimum=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = LowRankProjectedAttention(
            d_model, n_heads, rank=rank, head_dim=head_dim, dtype=torch.float64
        )
        dense = torch.randn(d_model, d_model, dtype=torch.float64)
    out = lpa_rank_check(module)
    full = LowRankLinear(d_model, d_model, d_model, dtype=torch.float64)
    out["expressivity_residual"] = full.fit_dense_(dense)
    low = LowRankLinear(d_model, d_model, rank, dtype=torch.float64)
    out["truncated_residual"] = low.fit_dense_(dense)
    s = torch.linalg.svdvals(dense)
    out["eckart_young_residual"] = float(s[rank:].norm() / s.norm())
    return out


__all__ = [
    "LPA_SETTINGS",
    "LowRankLinear",
    "LowRankProjectedAttention",
    "TransformerConfig",
    "attention_parameter_count",
    "lpa_rank_check",
    "lpa_setting_table",
    "projection_macs_per_token",
    "transformer_parameter_count",
    "verify_lpa_rank_bound",
]
