r"""Salience of structured blocks (attention heads, MLP neurons, hidden dimensions) from hooks.

A *site* is a tensor :math:`H` of shape ``(..., C)`` inside the network whose last axis holds
channels: the concatenated head outputs (the input of the attention output projection; a head
is a group of :math:`d_h` consecutive channels), the MLP activations (the input of the second
MLP matrix; a neuron is one channel) or the residual stream after a layer (a hidden dimension is
one channel). A forward hook keeps :math:`H`, a tensor hook on it receives
:math:`G = \partial L / \partial H`, and the score of a group :math:`J` of channels is, summing
over every sample and position :math:`b, t`:

.. math::

    S^{\mathrm{compressed}}_J = \sum_{j \in J} \Big(\sum_{b,t} |H_{btj}|\Big)
        \Big(\sum_{b,t} |G_{btj}|\Big), \qquad
    S^{\mathrm{per\,sample}}_J = \Big|\sum_{j \in J} \sum_{b,t} H_{btj} G_{btj}\Big|, \qquad
    S^{\mathrm{taylor}}_J = -\sum_{j \in J} \sum_{b,t} H_{btj} G_{btj}.

The compressed form is APT's (Zhao, Hajishirzi & Cao, "APT: Adaptive Pruning and Tuning
Pretrained Language Models for Efficient Training and Inference", ICML 2024, Sec. 4.1): a
product of two sums, which needs no per-sample product of activations and gradients. With a
mask :math:`m_J` multiplying the group (:math:`H_{\cdot J} \to m_J H_{\cdot J}`),
:math:`\partial L / \partial m_J |_{m=1} = \sum_{j \in J} \sum_{b,t} H_{btj} G_{btj}`, so the
per-sample form is :math:`|\partial L / \partial m_J|` and the Taylor form is the first-order
estimate of the loss change :math:`L(m_J = 0) - L(m_J = 1)` when the group is removed (signed:
a negative value predicts that removing the group lowers the loss). By the triangle inequality
and :math:`\sum_t |h_t g_t| \le (\sum_t |h_t|)(\sum_t |g_t|)`,

.. math::

    S^{\mathrm{per\,sample}}_J \le \sum_{j \in J} \sum_{b,t} |H_{btj} G_{btj}|
        \le S^{\mathrm{compressed}}_J

(claim ``apt_salience_bound`` in ``proofs/``).

Optional outlier term (APT's outlier-aware salience, used for LLaMA): each channel adds
:math:`\sqrt{\max(\kappa_j, 0)}`, :math:`\kappa_j` the excess kurtosis of :math:`H_{\cdot j}`
over the samples and positions, summed over the group's channels. Scores are smoothed across
steps by APT's exponential moving average :math:`S \leftarrow \beta S + (1 - \beta) S_\text{new}`
with :math:`\beta = 0.85` (the first step sets :math:`S = S_\text{new}`).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

#: The salience forms (see the module docstring).
FORMS: tuple[str, ...] = ("compressed", "per_sample", "taylor")
#: What a site's groups are.
KINDS: tuple[str, ...] = ("head", "neuron", "hidden", "adapter")
#: The key of the hidden-dimension mask among the site masks
#: (:mod:`~kernelapprox.compression.pruning.hidden`).
HIDDEN = "hidden"


def _check_form(form: Any) -> str:
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
    return form


def _check_group_size(group_size: Any, channels: int | None = None) -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, numbers.Integral):
        raise TypeError(f"group_size must be an int, got {group_size!r}")
    group_size = int(group_size)
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if channels is not None and channels % group_size:
        raise ValueError(
            f"group_size must divide the number of channels, got group_size={group_size} for "
            f"{channels} channels"
        )
    return group_size


def _check_pair(h: Any, g: Any) -> None:
    if not isinstance(h, torch.Tensor) or not isinstance(g, torch.Tensor):
        raise TypeError("h and g must be torch tensors")
    if h.shape != g.shape:
        raise ValueError(
            f"h and g must have the same shape, got {tuple(h.shape)} and {tuple(g.shape)}"
        )
    if h.ndim < 1 or h.shape[-1] == 0:
        raise ValueError("h must have at least one channel on its last axis")


def _moments(h: torch.Tensor) -> torch.Tensor:
    """Raw sums ``(n, sum h, sum h^2, sum h^3, sum h^4)`` per channel, shape ``(5, C)``."""
    flat = h.reshape(-1, h.shape[-1]).to(torch.float64)
    n = torch.full((flat.shape[1],), float(flat.shape[0]), dtype=torch.float64, device=h.device)
    return torch.stack([n, *(flat.pow(k).sum(0) for k in (1, 2, 3, 4))])


def excess_kurtosis(moments: torch.Tensor) -> torch.Tensor:
    r"""Excess kurtosis :math:`\mu_4 / \mu_2^2 - 3` per channel from raw sums ``(5, C)``.

    A constant channel (:math:`\mu_2 = 0`) gets 0, chosen by selection (never 0/0).
    """
    n, s1, s2, s3, s4 = moments
    mean = s1 / n
    m2 = s2 / n - mean**2
    m4 = s4 / n - 4 * mean * s3 / n + 6 * mean**2 * s2 / n - 3 * mean**4
    ok = m2 > 1e-300
    return torch.where(ok, m4 / torch.where(ok, m2, 1.0) ** 2 - 3.0, torch.zeros_like(m2))


def _group_sum(x: torch.Tensor, group_size: int) -> torch.Tensor:
    return x.reshape(-1, group_size).sum(-1)


def group_salience(
    h: torch.Tensor,
    g: torch.Tensor,
    group_size: int = 1,
    *,
    form: str = "compressed",
    kurtosis: bool = False,
) -> torch.Tensor:
    r"""Salience of each group of ``group_size`` consecutive channels, shape ``(C // group_size,)``.

    Parameters
    ----------
    h, g : torch.Tensor
        The site's activations :math:`H` and their gradients :math:`G = \partial L/\partial H`,
        the same shape ``(..., C)``; every axis but the last is summed over.
    group_size : int
        Channels per group (:math:`d_h` for heads, 1 for neurons and hidden dimensions).
    form : {"compressed", "per_sample", "taylor"}
        The formula (module docstring; APT's is ``"compressed"``).
    kurtosis : bool
        Add APT's outlier term :math:`\sum_{j \in J} \sqrt{\max(\kappa_j, 0)}`.

    Returns
    -------
    torch.Tensor
        float64 scores.

    Examples
    --------
    >>> h = torch.tensor([[1.0, -2.0], [3.0, 1.0]]); g = torch.tensor([[1.0, 1.0], [-1.0, 2.0]])
    >>> group_salience(h, g, form="compressed").tolist()  # (1+3)(1+1), (2+1)(1+2)
    [8.0, 9.0]
    >>> group_salience(h, g, form="per_sample").tolist()  # |1 - 3|, |-2 + 2|
    [2.0, 0.0]
    """
    _check_pair(h, g)
    form = _check_form(form)
    group_size = _check_group_size(group_size, h.shape[-1])
    acc = _Accumulator(h.shape[-1], form, kurtosis, h.device)
    acc.add(h, g)
    return acc.score(group_size)


class _Accumulator:
    """Sums over the calls of one step, per channel, in float64."""

    def __init__(self, channels: int, form: str, kurtosis: bool, device: Any) -> None:
        self.form, self.kurtosis = form, kurtosis
        zeros = torch.zeros(channels, dtype=torch.float64, device=device)
        self.abs_h, self.abs_g, self.hg = zeros.clone(), zeros.clone(), zeros.clone()
        self.moments = torch.zeros(5, channels, dtype=torch.float64, device=device)
        self.calls = 0

    def add(self, h: torch.Tensor, g: torch.Tensor) -> None:
        h64 = h.detach().reshape(-1, h.shape[-1]).to(torch.float64)
        g64 = g.detach().reshape(-1, g.shape[-1]).to(torch.float64)
        if h64.shape[1] != self.hg.shape[0]:
            raise ValueError(
                f"a site changed its number of channels within a step: {self.hg.shape[0]} "
                f"then {h64.shape[1]}"
            )
        if self.form == "compressed":
            self.abs_h += h64.abs().sum(0)
            self.abs_g += g64.abs().sum(0)
        else:
            self.hg += (h64 * g64).sum(0)
        if self.kurtosis:
            self.moments += _moments(h64)
        self.calls += 1

    def score(self, group_size: int) -> torch.Tensor:
        if self.form == "compressed":
            s = _group_sum(self.abs_h * self.abs_g, group_size)
        elif self.form == "per_sample":
            s = _group_sum(self.hg, group_size).abs()
        else:
            s = -_group_sum(self.hg, group_size)
        if self.kurtosis:
            s = s + _group_sum(excess_kurtosis(self.moments).clamp_min(0).sqrt(), group_size)
        return s


@dataclass(frozen=True)
class Site:
    """A place in a network whose last axis holds prunable channels.

    Attributes
    ----------
    name : str
        Unique name (``"layers.3.heads"``).
    module : torch.nn.Module
        The module whose output (``where="output"``) or first input (``where="input"``) is the
        site tensor :math:`H`.
    where : {"output", "input"}
        Which side of ``module`` :math:`H` is on.
    kind : {"head", "neuron", "hidden", "adapter"}
        What a group is (``"adapter"``: one rank of a low-rank adapter's bottleneck).
    group_size : int
        Channels per group.
    n_groups : int
        Number of groups (heads, neurons, hidden dimensions) at the site.
    params_per_group : int
        Parameters a group owns (removed with it); 0 when the site is scored only.
    layer : int
        Index of the layer the site belongs to.
    """

    name: str
    module: nn.Module
    where: str
    kind: str
    group_size: int
    n_groups: int
    params_per_group: int
    layer: int

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(self.module).__name__}")
        if self.where not in ("output", "input"):
            raise ValueError(f"where must be 'output' or 'input', got {self.where!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        _check_group_size(self.group_size)
        for name in ("n_groups", "params_per_group", "layer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")

    @property
    def channels(self) -> int:
        """``n_groups * group_size``."""
        return self.n_groups * self.group_size


def add_site_hook(site: Site, fn: Any) -> torch.utils.hooks.RemovableHandle:
    """Register ``fn(tensor) -> tensor | None`` on the site tensor: a forward hook on the module's
    output, or a forward pre-hook on its first input; a returned tensor replaces :math:`H`."""
    if site.where == "output":

        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            if isinstance(output, tuple):
                new = fn(output[0])
                return None if new is None else (new, *output[1:])
            return fn(output)

        return site.module.register_forward_hook(hook)

    def pre_hook(module: nn.Module, args: tuple) -> Any:
        new = fn(args[0])
        return None if new is None else (new, *args[1:])

    return site.module.register_forward_pre_hook(pre_hook)


def _check_sites(sites: Any) -> tuple[Site, ...]:
    sites = tuple(sites)
    if not sites:
        raise ValueError("sites must hold at least one Site")
    names = set()
    for s in sites:
        if not isinstance(s, Site):
            raise TypeError(f"sites must hold Site objects, got {type(s).__name__}")
        if s.name in names:
            raise ValueError(f"sites must have unique names, {s.name!r} repeats")
        names.add(s.name)
    return sites


class SalienceTracker:
    r"""Accumulate the salience of every site's groups over backward passes, smoothed by an EMA.

    Use as a context manager (hooks are removed on exit). Each forward pass through a site keeps
    :math:`H`; the backward pass delivers :math:`G`; :meth:`step` closes the current step (all
    forward/backward passes since the last call, e.g. the micro-batches of one optimizer step)
    and folds its scores into the moving average :math:`S \leftarrow \beta S + (1-\beta)
    S_\text{new}`. A site that saw no backward pass in a step keeps its average.

    Parameters
    ----------
    sites : iterable of Site
        Where to score.
    form : {"compressed", "per_sample", "taylor"}
        See :func:`group_salience`.
    beta : float
        EMA factor in [0, 1) (APT: 0.85; 0 keeps only the last step).
    kurtosis : bool
        Add APT's outlier term.

    Examples
    --------
    >>> from kernelapprox.lm import Decoder, DecoderConfig
    >>> from kernelapprox.compression.pruning import decoder_sites
    >>> model = Decoder(DecoderConfig(n_layers=1, d_model=8, n_heads=2, d_mlp=16, context=4))
    >>> idx = torch.zeros(1, 4, dtype=torch.long)
    >>> with SalienceTracker(decoder_sites(model)) as tracker:
    ...     model.loss(idx, idx).backward()
    ...     scores = tracker.step()
    >>> tracker.scores["layers.0.heads"].shape
    torch.Size([2])
    """

    def __init__(
        self,
        sites: Iterable[Site],
        *,
        form: str = "compressed",
        beta: float = 0.85,
        kurtosis: bool = False,
    ) -> None:
        self.sites = _check_sites(sites)
        self.form = _check_form(form)
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
            raise TypeError(f"beta must be a real number, got {beta!r}")
        if not (0.0 <= float(beta) < 1.0):
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        if not isinstance(kurtosis, bool):
            raise TypeError(f"kurtosis must be a bool, got {kurtosis!r}")
        self.beta, self.kurtosis = float(beta), kurtosis
        self.scores: dict[str, torch.Tensor] = {}
        self.steps = 0
        self._acc: dict[str, _Accumulator] = {}
        self._handles: list[Any] = []
        # site tensors of this step's forward passes, waiting for their gradients; the tensor
        # hook holds only the key, so that a hook that autograd keeps alive keeps no activation
        self._pending: dict[int, tuple[Site, torch.Tensor]] = {}
        self._next_key = 0

    def __enter__(self) -> SalienceTracker:
        self.attach()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    def attach(self) -> None:
        """Register the hooks (done by ``with``)."""
        if self._handles:
            return
        for site in self.sites:
            self._handles.append(add_site_hook(site, self._forward_fn(site)))

    def detach(self) -> None:
        """Remove the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._pending.clear()

    def _forward_fn(self, site: Site) -> Any:
        def forward(h: torch.Tensor) -> None:
            if not torch.is_grad_enabled() or not h.requires_grad:
                return None
            key = self._next_key
            self._next_key += 1
            self._pending[key] = (site, h.detach())
            h.register_hook(lambda g: self._backward(key, g))
            return None

        return forward

    def _backward(self, key: int, g: torch.Tensor) -> None:
        entry = self._pending.pop(key, None)
        if entry is None:  # its forward pass was folded or dropped by step() or detach()
            return
        site, h = entry
        acc = self._acc.get(site.name)
        if acc is None:
            acc = self._acc[site.name] = _Accumulator(
                h.shape[-1], self.form, self.kurtosis, h.device
            )
        acc.add(h, g)

    def step(self) -> dict[str, torch.Tensor]:
        """Fold the scores accumulated since the last call into the moving average; returns
        :attr:`scores` (site name -> float64 tensor of shape ``(n_groups,)``). Site tensors of
        forward passes whose backward has not run are dropped."""
        self._pending.clear()
        for site in self.sites:
            acc = self._acc.pop(site.name, None)
            if acc is None:
                continue
            new = acc.score(site.group_size)
            old = self.scores.get(site.name)
            if old is None or old.shape != new.shape:
                self.scores[site.name] = new
            else:
                self.scores[site.name] = self.beta * old + (1.0 - self.beta) * new
        self.steps += 1
        return self.scores


def scores_vector(scores: dict[str, torch.Tensor], sites: Sequence[Site]) -> torch.Tensor:
    """Concatenate ``scores`` in the order of ``sites`` (missing sites raise ``KeyError``)."""
    return torch.cat([scores[s.name].reshape(-1) for s in sites])
