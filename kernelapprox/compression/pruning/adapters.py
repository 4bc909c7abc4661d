r"""Low-rank adapters that grow during training, APT's rank allocation, self-distillation.

Adapter (LoRA with a growing rank; Zhao, Hajishirzi & Cao, ICML 2024, Sec. 4.3): a frozen linear
layer :math:`W_0 x + b` plus

.. math::

    \Delta(x) = \frac{\alpha}{r}\, B A x, \qquad A \in \mathbb{R}^{r \times n_\mathrm{in}},\;
    B \in \mathbb{R}^{n_\mathrm{out} \times r}.

Growing to :math:`r' > r` appends :math:`r' - r` rows to :math:`A` (Kaiming-uniform, as LoRA
initializes :math:`A`) and as many zero columns to :math:`B`, and scales :math:`\alpha` by
:math:`r'/r`, so :math:`\alpha'/r' = \alpha/r` and :math:`B' A' = B A`: the layer's output is
unchanged at the moment of growth (claim ``apt_rank_growth``), while the new rows receive
gradients (:math:`\partial L/\partial B'_{:,new} = (\alpha/r) G (A'_{new} x)^\top \ne 0`).

Allocation (APT's rule): the total adapter parameter count grows toward a target; the adapters
are ranked by the mean salience of their bottleneck :math:`A x`, and the top half whose rank is
below :math:`r_\max` grow by the common factor

.. math::

    \rho = \frac{N_\mathrm{target} - N_\mathrm{current}}{\sum_{i \in \mathrm{top}} N_i} + 1,
    \qquad r_i' = \min(r_\max, \lfloor r_i \rho \rfloor),

(:math:`N_i` the parameters of adapter :math:`i`), so the total never exceeds the target.

Self-distillation from a frozen snapshot of the same network (APT's loss at its defaults):

.. math::

    L_\mathrm{distill} = w_\mathrm{KL}\, c\, T^2\, \mathrm{KL}\big(\mathrm{softmax}(z_t / T)
        \,\|\, \mathrm{softmax}(z_s / T)\big)
        + w_H \sum_\ell \mathrm{MSE}\big(f_\ell(h^s_\ell), h^t_\ell\big),

with :math:`w_\mathrm{KL} = 0.1`, :math:`c = 10`, :math:`w_H = 0.9`, :math:`T = 2/3`, the KL
averaged over rows and computed in at least float32 with :math:`p \log p = 0` chosen by
selection where :math:`p = 0` (APT's code met nan in bf16 distillation). The training loss is
:math:`\mu L_\mathrm{distill} + (1 - \mu) L_\mathrm{CE}`, :math:`\mu` rising linearly from 0 to
1 over the pruning window (:func:`distillation_weight`).
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kernelapprox._validation import SeedLike, as_seed_sequence
from kernelapprox.compression.pruning.salience import Site


def _check_rank(rank: Any, name: str = "rank") -> int:
    if isinstance(rank, bool) or not isinstance(rank, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {rank!r}")
    if rank < 1:
        raise ValueError(f"{name} must be >= 1, got {rank}")
    return int(rank)


def _generator(seed: SeedLike) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    state = as_seed_sequence(seed).generate_state(1, dtype="uint64")[0]
    return torch.Generator().manual_seed(int(state))


def _kaiming_rows(n: int, fan_in: int, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    # kaiming_uniform_(a=sqrt(5)) as nn.Linear and LoRA use: bound = 1 / sqrt(fan_in)
    bound = 1.0 / math.sqrt(fan_in)
    return (torch.rand(n, fan_in, generator=gen, dtype=torch.float64) * 2 - 1).mul(bound).to(dtype)


class GrowingLoRALinear(nn.Module):
    r"""A frozen ``nn.Linear`` plus a low-rank adapter whose rank can grow (module docstring).

    Parameters
    ----------
    base : nn.Linear
        The layer to adapt (its parameters are frozen).
    rank : int
        Initial rank :math:`r`.
    alpha : float or None
        :math:`\alpha` (default: ``2 * rank``).
    seed : int, SeedSequence, numpy or torch Generator, or None
        Initialization of :math:`A` (:math:`B` starts at zero); ``None`` (the default, as for
        every module that draws initial weights: :data:`kernelapprox._validation.SeedLike`)
        draws fresh entropy.

    Examples
    --------
    >>> layer = GrowingLoRALinear(nn.Linear(4, 3, dtype=torch.float64), rank=2, seed=0)
    >>> x = torch.randn(5, 4, dtype=torch.float64)
    >>> with torch.no_grad():
    ...     _ = layer.lora_b.normal_()
    >>> before = layer(x); layer.grow(5, seed=1)
    >>> bool((layer(x) - before).abs().max() < 1e-12), layer.rank
    (True, 5)
    """

    def __init__(
        self, base: nn.Linear, rank: int, *, alpha: float | None = None, seed: SeedLike = None
    ) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be a torch.nn.Linear, got {type(base).__name__}")
        rank = _check_rank(rank)
        alpha = 2.0 * rank if alpha is None else alpha
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not alpha > 0:
            raise ValueError(f"alpha must be a number > 0, got {alpha!r}")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        w = base.weight
        self.alpha = float(alpha)
        a = _kaiming_rows(rank, base.in_features, _generator(seed), w.dtype).to(w.device)
        self.lora_a = nn.Parameter(a)
        self.lora_b = nn.Parameter(
            torch.zeros(base.out_features, rank, dtype=w.dtype, device=w.device)
        )
        #: Identity on the bottleneck :math:`A x`, a site for its salience (it sees only calls of
        #: the layer, not reads of :attr:`weight`).
        self.bottleneck = nn.Identity()

    @property
    def rank(self) -> int:
        """Current rank :math:`r`."""
        return self.lora_a.shape[0]

    @property
    def scaling(self) -> float:
        r""":math:`\alpha / r`."""
        return self.alpha / self.rank

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def weight(self) -> torch.Tensor:
        r"""The effective weight :math:`W_0 + (\alpha/r) B A` (differentiable in :math:`A, B`), for
        code that reads ``layer.weight`` instead of calling the layer (the package decoder's
        attention and MLP do, to slice heads and neurons)."""
        return self.base.weight + self.scaling * (self.lora_b @ self.lora_a)

    @property
    def bias(self) -> torch.Tensor | None:
        """The frozen base bias."""
        return self.base.bias

    def adapter_params(self) -> int:
        """Parameters of the adapter, :math:`r (n_\\mathrm{in} + n_\\mathrm{out})`."""
        return self.rank * (self.in_features + self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.bottleneck(F.linear(x, self.lora_a))
        return self.base(x) + self.scaling * F.linear(z, self.lora_b)

    @torch.no_grad()
    def grow(self, new_rank: int, *, seed: SeedLike = None) -> None:
        """Grow to ``new_rank`` without changing the output (module docstring); ``seed`` draws
        the new rows of :math:`A` (``None``: fresh entropy). The parameters are replaced:
        rebuild the optimizer (or its state for them) afterwards."""
        new_rank = _check_rank(new_rank, "new_rank")
        r = self.rank
        if new_rank < r:
            raise ValueError(f"new_rank must be >= the current rank {r}, got {new_rank}")
        if new_rank == r:
            return
        a, b = self.lora_a, self.lora_b
        rows = _kaiming_rows(new_rank - r, self.in_features, _generator(seed), a.dtype).to(a.device)
        self.lora_a = nn.Parameter(torch.cat([a.detach(), rows], 0))
        zeros = torch.zeros(self.out_features, new_rank - r, dtype=b.dtype, device=b.device)
        self.lora_b = nn.Parameter(torch.cat([b.detach(), zeros], 1))
        self.alpha *= new_rank / r

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        r"""A plain ``nn.Linear`` with weight :math:`W_0 + (\alpha/r) B A` (same output)."""
        base = self.base
        out = nn.Linear(
            self.in_features,
            self.out_features,
            bias=base.bias is not None,
            dtype=base.weight.dtype,
            device=base.weight.device,
        )
        out.weight.copy_(base.weight + self.scaling * self.lora_b @ self.lora_a)
        if base.bias is not None:
            out.bias.copy_(base.bias)
        return out


def add_adapters(
    model: nn.Module,
    names: Sequence[str],
    rank: int,
    *,
    alpha: float | None = None,
    seed: SeedLike = None,
) -> dict[str, GrowingLoRALinear]:
    """Replace each ``nn.Linear`` submodule whose dotted name ends with one of ``names`` (e.g.
    ``("attn.q", "attn.v")`` or ``("attention.self.query", "attention.self.value")``) by a
    :class:`GrowingLoRALinear`; returns them by full name. Each gets its own seed
    (``SeedSequence.spawn`` of ``seed``; ``None``, the default: fresh entropy)."""
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError("names must be a sequence of strings")
    targets = [
        (full, m)
        for full, m in model.named_modules()
        if isinstance(m, nn.Linear) and any(full == n or full.endswith("." + n) for n in names)
    ]
    if not targets:
        raise ValueError(f"names matched no nn.Linear of the model: {list(names)}")
    seeds = as_seed_sequence(seed).spawn(len(targets))
    out = {}
    for (full, linear), s in zip(targets, seeds, strict=True):
        parent_name, _, attr = full.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        adapter = GrowingLoRALinear(linear, rank, alpha=alpha, seed=s)
        setattr(parent, attr, adapter)
        out[full] = adapter
    return out


def adapter_sites(adapters: dict[str, GrowingLoRALinear]) -> list[Site]:
    """One scored site per adapter: its bottleneck :math:`A x`, a group per rank (rebuild the
    sites after a growth)."""
    return [
        Site(f"{name}.bottleneck", a.bottleneck, "output", "adapter", 1, a.rank, 0, 0)
        for name, a in adapters.items()
    ]


def allocate_ranks(
    salience: Sequence[float],
    ranks: Sequence[int],
    params_per_rank: Sequence[int],
    target_params: int,
    *,
    r_max: int = 64,
) -> list[int]:
    r"""APT's top-half rule: new ranks of the adapters (module docstring).

    Parameters
    ----------
    salience : sequence of float
        Mean bottleneck salience of each adapter.
    ranks : sequence of int
        Current ranks :math:`r_i \ge 1`.
    params_per_rank : sequence of int
        Parameters per unit of rank, :math:`n_\mathrm{in} + n_\mathrm{out}`.
    target_params : int
        :math:`N_\mathrm{target}`; nothing grows when it is not above the current total.
    r_max : int
        Largest rank.

    Examples
    --------
    >>> allocate_ranks([0.9, 0.1, 0.5, 0.3], [8, 8, 8, 8], [10, 10, 10, 10], 480)
    [16, 8, 16, 8]
    """
    s = [float(v) for v in salience]
    r = [_check_rank(v, "ranks") for v in ranks]
    ppr = [_check_rank(v, "params_per_rank") for v in params_per_rank]
    r_max = _check_rank(r_max, "r_max")
    if not (len(s) == len(r) == len(ppr)) or not s:
        raise ValueError("salience, ranks and params_per_rank must have the same non-zero length")
    if not all(math.isfinite(v) for v in s):
        raise ValueError("salience must be finite")
    if isinstance(target_params, bool) or not isinstance(target_params, numbers.Integral):
        raise TypeError(f"target_params must be an int, got {target_params!r}")
    current = sum(ri * pi for ri, pi in zip(r, ppr, strict=True))
    order = sorted(range(len(s)), key=lambda i: -s[i])
    top = [i for i in order[: math.ceil(len(s) / 2)] if r[i] < r_max]
    new = list(r)
    if target_params <= current or not top:
        return new
    rho = (target_params - current) / sum(r[i] * ppr[i] for i in top) + 1.0
    for i in top:
        new[i] = max(r[i], min(r_max, math.floor(r[i] * rho)))
    return new


def distillation_weight(t: float, t_start: float, t_end: float) -> float:
    r""":math:`\mu_t`, rising linearly from 0 at ``t_start`` to 1 at ``t_end`` (clamped)."""
    if not t_end > t_start:
        raise ValueError(f"t_end must be > t_start, got t_start={t_start}, t_end={t_end}")
    return min(1.0, max(0.0, (t - t_start) / (t_end - t_start)))


def snapshot(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` in eval mode, without the hooks of ``model`` (a copied
    salience or mask hook would score or mask the teacher): the self-distillation teacher."""
    teacher = copy.deepcopy(model).eval()
    for module in teacher.modules():
        module._forward_hooks.clear()
        module._forward_pre_hooks.clear()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def kl_divergence(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    r"""Mean over rows of :math:`\mathrm{KL}(p_t \| p_s)` at temperature :math:`T`, in float32 or
    wider, the teacher detached."""
    if not isinstance(student_logits, torch.Tensor) or not isinstance(teacher_logits, torch.Tensor):
        raise TypeError("student_logits and teacher_logits must be torch tensors")
    if student_logits.shape != teacher_logits.shape or student_logits.ndim < 1:
        raise ValueError(
            f"student_logits and teacher_logits must have the same shape, got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not temperature > 0
    ):
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    dtype = torch.promote_types(student_logits.dtype, torch.float32)
    v = student_logits.shape[-1]
    log_s = F.log_softmax(student_logits.reshape(-1, v).to(dtype) / temperature, -1)
    log_t = F.log_softmax(teacher_logits.detach().reshape(-1, v).to(dtype) / temperature, -1)
    p_t = log_t.exp()
    terms = torch.where(p_t > 0, p_t * (log_t - log_s), torch.zeros((), dtype=dtype))
    return terms.sum(-1).mean()


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    student_hidden: Sequence[torch.Tensor] = (),
    teacher_hidden: Sequence[torch.Tensor] = (),
    *,
    temperature: float = 2.0 / 3.0,
    kl_weight: float = 0.1,
    kl_scale: float = 10.0,
    hidden_weight: float = 0.9,
    transforms: Sequence[Callable[[torch.Tensor], torch.Tensor]] | None = None,
) -> torch.Tensor:
    """APT's self-distillation loss :math:`L_\\mathrm{distill}` (module docstring).

    ``student_hidden[l]`` (after ``transforms[l]``, default identity) is matched to
    ``teacher_hidden[l]`` (detached) by the mean squared error.
    """
    kl = kl_divergence(student_logits, teacher_logits, temperature)
    loss = kl_weight * kl_scale * temperature**2 * kl
    if len(student_hidden) != len(teacher_hidden):
        raise ValueError(
            f"student_hidden and teacher_hidden must have the same length, got "
            f"{len(student_hidden)} and {len(teacher_hidden)}"
        )
    if transforms is not None and len(transforms) != len(student_hidden):
        raise ValueError("transforms must have one entry per hidden state")
    for i, (hs, ht) in enumerate(zip(student_hidden, teacher_hidden, strict=True)):
        if transforms is not None:
            hs = transforms[i](hs)
        if hs.shape != ht.shape:
            raise ValueError(
                f"student_hidden[{i}] must have the shape of teacher_hidden[{i}], got "
                f"{tuple(hs.shape)} and {tuple(ht.shape)}"
            )
        dtype = torch.promote_types(hs.dtype, torch.float32)
        loss = loss + hidden_weight * F.mse_loss(hs.to(dtype), ht.detach().to(dtype))
    return loss
