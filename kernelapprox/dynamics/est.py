r"""Evolving subnetwork training (EST): a random subnetwork per step, rates growing in stages.

Li, Chen, Ma, Wu, Zhu & Yu, *Evolving Subnetwork Training for Large Language Models*, ICML 2024
(arXiv 2406.06962), Sec. 3; facts and reconstructions in ``shared/reference/model_compression.md``
§1 and ``lowrank_dynamics.md`` §3 (the paper has no released code).

Sampling (:class:`SubnetworkSampler`), at step :math:`t` with rates :math:`(p_H, p_M, p_L)`:

* in each layer, a set :math:`I_H` of :math:`k_H = \max(1, \lfloor N_H p_H + \tfrac12\rfloor)`
  heads, uniformly without replacement, and likewise :math:`k_M` of the :math:`N_M` MLP neurons;
  the sums over kept heads / neurons are multiplied by :math:`c_H = N_H / k_H`,
  :math:`c_M = N_M / k_M`;
* a set :math:`I_L` of :math:`k_L \ge 1` of the :math:`N_L` layers; a skipped layer is not
  computed and passes its input through. The paper does not say whether kept layers are
  rescaled: ``layer_scale="inverse"`` multiplies both residual updates of a kept layer by
  :math:`N_L / k_L`, ``"none"`` leaves them as they are (a bias-variance choice; see below).

Why :math:`N / k` and not :math:`1 / p`: under uniform sampling of :math:`k` of :math:`N` units
without replacement each unit is kept with probability exactly :math:`k / N`, so

.. math:: \mathbb{E}\Big[\tfrac{N}{k} \sum_{i \in I} f_i\Big] = \sum_{i=1}^N f_i,

and the rescaled head sum (neuron sum) is unbiased for the full one. When :math:`N p` is not an
integer, :math:`k / N \ne p` and the factor :math:`1/p` would leave a bias of
:math:`(k/N)/p - 1` (e.g. :math:`N = 6`, :math:`p = 0.3`: :math:`k = 2`, :math:`1/p = 3.33`,
:math:`N/k = 3`, a 11 % bias). For a layer :math:`x \mapsto x + f(x)` the same argument makes
``"inverse"`` unbiased for one layer. Unbiasedness holds per sublayer given its input (the MHA,
the MLP; claim ``est_unbiased``): a block whose MLP reads the sampled attention output is already
biased, and no rescaling makes a stack of non-linear blocks unbiased (claim
``est_stacked_bias``).

The subnetwork of step :math:`t` is a function of ``(seed, t)`` only: each draw uses its own
``torch.Generator`` seeded from ``SeedSequence(seed)`` with spawn key ``(t, kind, layer)``. All
ranks of a data-parallel run therefore compute the same subnetwork without communication, and
the head set of a layer does not depend on which layers were drawn.

The sampler knows only the sizes :math:`(N_L, N_H, N_M)`: it returns a model-agnostic
:class:`~kernelapprox.lm.model.Subnetwork` (per layer ``None`` or the kept indices and scales),
which :class:`~kernelapprox.lm.model.Decoder` runs natively and
:class:`~kernelapprox.dynamics.est_hf.HFSubnetworks` runs on Hugging Face GPT-2, Llama-style and
GPT-NeoX decoders without editing their code (weight slices through
``torch.func.functional_call``, only the kept entries of the model's layer list).

Stages (:class:`StageSchedule`): ``boundaries`` :math:`S_1 < \dots < S_K` (the step at which
each stage ends) and ``rates`` :math:`P_s = (p_H, p_M, p_L)`; stage :math:`s` covers the steps
:math:`[S_{s-1}, S_s)`. The paper's GPT-2 schedule is the preset ``"gpt2"``:
:math:`S = (20k, 70k, 150k)`, :math:`P = [(.5, .5, .5), (.5, .5, 1), (1, 1, 1)]`.

FLOPs (:func:`subnetwork_flops`, :func:`flops_saving`). Per token at sequence length :math:`T`,
a kept layer with :math:`k_H` heads of width :math:`d_h` and :math:`k_M` neurons costs in the
forward pass

.. math:: \underbrace{8 d\,k_H d_h}_{Q,K,V,O\ \text{projections}}
    + \underbrace{4 T\,k_H d_h}_{\text{scores } QK^\top \text{ and context } AV}
    + \underbrace{4 d\,k_M}_{\text{MLP}}

FLOPs (a multiply-add is 2 FLOPs; the full :math:`T \times T` score matrix is counted, as a
dense attention kernel computes it; ``scores="causal"`` halves it, ``"none"`` drops it), and the
LM head :math:`2 d V`. Training counts forward + backward as 3 x forward. Embedding lookups,
layer norms, softmax and GELU are not counted (no matrix products). Every term of a block
scales with :math:`k_H` or :math:`k_M` (the score part per head, like the projections), so a
stage at :math:`p_H = p_M = p` with :math:`p_L` costs :math:`p\,p_L` of the blocks, and the
GPT-2 schedule saves

.. math:: 1 - \frac{20 \cdot \tfrac14 + 50 \cdot \tfrac12 + 80 \cdot 1}{150} = \frac{4}{15}
    = 26.7\,\%

of the block FLOPs, the paper's figure. The LM head is never sampled; counting it (GPT-2 small,
:math:`d = 768`, :math:`V = 50257`, 12 layers, :math:`T = 1024`) the saving is
:math:`19.44\,\%` (:math:`18.9\,\%` with causal-halved scores, :math:`18.3\,\%` without
scores). The paper's 26.7 % is therefore the transformer-block-only count: any FLOPs outside the
blocks lower it.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from kernelapprox._validation import as_seed_sequence, check_choice, check_positive_int
from kernelapprox.lm.model import DecoderConfig, LayerSlice, Subnetwork

LAYER_SCALES = ("inverse", "none")
SCORE_CONVENTIONS = ("full", "causal", "none")
Rates = tuple[float, float, float]

#: GPT-2 small (the paper's GPT-2 setting): 12 layers, d = 768, 12 heads, MLP 3072, T = 1024.
GPT2_SMALL = DecoderConfig(
    vocab_size=50257, context=1024, n_layers=12, d_model=768, n_heads=12, d_mlp=3072
)


def kept_count(n: int, rate: float, name: str = "rate") -> int:
    r"""Number of units kept at ``rate``: :math:`\max(1, \lfloor n\,p + \tfrac12 \rfloor)`.

    Round half up (not Python's half-to-even), never fewer than one unit. ``p`` is the rate
    as written, the shortest decimal that reads back as the float (``repr``), in exact
    arithmetic: the float product ``25 * 0.58`` is ``14.499999999999998`` (the float
    ``0.58`` lies below 58/100) and would keep 14 units, not the 15 of ``14.5`` rounded up.
    """
    n = check_positive_int(n, "n")
    rate = Fraction(repr(check_rate(rate, name)))
    return max(1, min(n, int(n * rate + Fraction(1, 2))))


def check_rate(value: Any, name: str) -> float:
    """``value`` as a float in ``(0, 1]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1], got {value!r}")
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be a number in (0, 1], got {value}")
    return value


def _step_seed(root: np.random.SeedSequence, *key: int) -> torch.Generator:
    child = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, *key))
    return torch.Generator().manual_seed(int(child.generate_state(1, dtype=np.uint64)[0]))


def _shared_across_ranks(root: np.random.SeedSequence) -> np.random.SeedSequence:
    """``root``, or rank 0's fresh entropy inside an initialized multi-rank process group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return root
    box = [root.entropy]
    dist.broadcast_object_list(box, src=0)  # picklable ints: any backend, CPU or GPU
    return np.random.SeedSequence(box[0])


def _draw(n: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """``k`` of ``range(n)`` uniformly without replacement, sorted."""
    return torch.randperm(n, generator=gen)[:k].sort().values


@dataclass(frozen=True)
class SubnetworkSampler:
    """Draws the EST subnetwork of each step (see the module docstring).

    Parameters
    ----------
    n_layers, n_heads, n_neurons : int
        :math:`N_L`, :math:`N_H` (per layer), :math:`N_M` (MLP width).
    seed : int, SeedSequence or None
        Root seed; the subnetwork of step ``t`` depends only on ``(seed, t)``. ``None`` (the
        default, the package's rule for objects that draw for the caller, see
        :data:`~kernelapprox._validation.SeedLike`) draws fresh entropy once, at construction;
        inside an initialized ``torch.distributed`` group of several ranks that entropy is
        rank 0's, broadcast to every rank (construct the sampler on all ranks), so the ranks
        still draw the same subnetworks. Generators are refused: they are streams, and a
        step's subnetwork must not depend on what was drawn before.
    layer_scale : {"inverse", "none"}
        Residual updates of kept layers multiplied by :math:`N_L / k_L`, or not.

    Examples
    --------
    >>> sampler = SubnetworkSampler(n_layers=4, n_heads=4, n_neurons=16, seed=0)
    >>> sub = sampler.sample(0, (0.5, 0.5, 0.5))
    >>> sum(part is not None for part in sub.layers)
    2
    """

    n_layers: int
    n_heads: int
    n_neurons: int
    seed: Any = None
    layer_scale: str = "inverse"

    def __post_init__(self) -> None:
        for name in ("n_layers", "n_heads", "n_neurons"):
            check_positive_int(getattr(self, name), name)
        check_choice(self.layer_scale, "layer_scale", LAYER_SCALES)
        if isinstance(self.seed, (torch.Generator, np.random.Generator)):
            raise TypeError(
                "seed must be None, an int or a numpy SeedSequence, got "
                f"{type(self.seed).__name__}: the subnetwork of a step must depend on "
                "(seed, step) only, the same on every rank"
            )
        root = as_seed_sequence(self.seed)
        if self.seed is None:
            root = _shared_across_ranks(root)
        object.__setattr__(self, "_root", root)

    @classmethod
    def for_config(
        cls, config: DecoderConfig, *, seed: Any = None, layer_scale: str = "inverse"
    ) -> SubnetworkSampler:
        """A sampler for a :class:`~kernelapprox.lm.model.DecoderConfig`."""
        if not isinstance(config, DecoderConfig):
            raise TypeError(f"config must be a DecoderConfig, got {type(config).__name__}")
        return cls(config.n_layers, config.n_heads, config.d_mlp, seed, layer_scale)

    def sizes(self, rates: Sequence[float]) -> tuple[int, int, int]:
        """``(k_H, k_M, k_L)`` at ``rates = (p_H, p_M, p_L)``."""
        p_h, p_m, p_l = _check_rates(rates, "rates")
        return (
            kept_count(self.n_heads, p_h, "p_heads"),
            kept_count(self.n_neurons, p_m, "p_neurons"),
            kept_count(self.n_layers, p_l, "p_layers"),
        )

    def sample(self, step: int, rates: Sequence[float]) -> Subnetwork:
        """The subnetwork of ``step`` at ``rates = (p_H, p_M, p_L)``.

        A dimension kept whole (``k = N``) is not sliced and has scale 1, so rates
        ``(1, 1, 1)`` give exactly the full model.
        """
        step = check_positive_int(step, "step", minimum=0)
        k_h, k_m, k_l = self.sizes(rates)
        root: np.random.SeedSequence = self._root  # type: ignore[attr-defined]
        if k_l < self.n_layers:
            kept_layers = set(_draw(self.n_layers, k_l, _step_seed(root, step, 0, 0)).tolist())
        else:
            kept_layers = set(range(self.n_layers))
        s_l = self.n_layers / k_l if self.layer_scale == "inverse" else 1.0
        layers: list[LayerSlice | None] = []
        for layer in range(self.n_layers):
            if layer not in kept_layers:
                layers.append(None)
                continue
            heads = neurons = None
            if k_h < self.n_heads:
                heads = _draw(self.n_heads, k_h, _step_seed(root, step, 1, layer))
            if k_m < self.n_neurons:
                neurons = _draw(self.n_neurons, k_m, _step_seed(root, step, 2, layer))
            layers.append(LayerSlice(heads, neurons, self.n_heads / k_h, self.n_neurons / k_m, s_l))
        return Subnetwork(tuple(layers))

    def at(self, step: int, schedule: StageSchedule) -> Subnetwork:
        """The subnetwork of ``step`` at the rates ``schedule`` gives that step."""
        if not isinstance(schedule, StageSchedule):
            raise TypeError(f"schedule must be a StageSchedule, got {type(schedule).__name__}")
        return self.sample(step, schedule.rates_at(step))


def _check_rates(rates: Any, name: str) -> Rates:
    if isinstance(rates, str) or not isinstance(rates, Sequence) or len(rates) != 3:
        raise TypeError(f"{name} must be a triple (p_heads, p_neurons, p_layers), got {rates!r}")
    p_h, p_m, p_l = (
        check_rate(v, f"{name} ({label})")
        for v, label in zip(rates, ("p_heads", "p_neurons", "p_layers"), strict=True)
    )
    return p_h, p_m, p_l


@dataclass(frozen=True)
class StageSchedule:
    """Stage boundaries and the rates ``(p_H, p_M, p_L)`` of each stage.

    Parameters
    ----------
    boundaries : sequence of int
        Strictly increasing steps :math:`S_1 < \\dots < S_K`; stage ``s`` covers
        ``[S_{s-1}, S_s)`` (``S_0 = 0``). Steps at or after :math:`S_K` use the last rates.
    rates : sequence of (p_H, p_M, p_L)
        One triple per stage, each rate in ``(0, 1]``.

    Examples
    --------
    >>> StageSchedule.preset("gpt2").scaled(300).boundaries
    (40, 140, 300)
    """

    boundaries: tuple[int, ...]
    rates: tuple[Rates, ...]

    def __post_init__(self) -> None:
        b = self.boundaries
        if isinstance(b, (str, bytes)) or not isinstance(b, Sequence) or not b:
            raise TypeError(f"boundaries must be a non-empty sequence of ints, got {b!r}")
        for v in b:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"boundaries must be integers >= 1, got {list(b)}")
        if any(later <= earlier for earlier, later in itertools.pairwise(b)):
            raise ValueError(f"boundaries must be strictly increasing, got {list(b)}")
        r = self.rates
        if isinstance(r, (str, bytes)) or not isinstance(r, Sequence):
            raise TypeError(f"rates must be a sequence of (p_H, p_M, p_L) triples, got {r!r}")
        if len(r) != len(b):
            raise ValueError(
                f"rates must have one triple per stage: {len(b)} boundaries, {len(r)} rates"
            )
        rates = tuple(_check_rates(triple, f"rates[{i}]") for i, triple in enumerate(r))
        object.__setattr__(self, "boundaries", tuple(int(v) for v in b))
        object.__setattr__(self, "rates", rates)

    @classmethod
    def preset(cls, name: str) -> StageSchedule:
        """A named schedule: ``"gpt2"`` (the paper's GPT-2 setting) or ``"full"``."""
        check_choice(name, "name", tuple(SCHEDULES))
        return SCHEDULES[name]

    @property
    def total_steps(self) -> int:
        """The last boundary :math:`S_K`."""
        return self.boundaries[-1]

    @property
    def stage_lengths(self) -> tuple[int, ...]:
        """:math:`S_s - S_{s-1}` for each stage."""
        return tuple(
            b - a for a, b in zip((0, *self.boundaries[:-1]), self.boundaries, strict=True)
        )

    def stage(self, step: int) -> int:
        """Index of the stage that contains ``step`` (the last stage after :math:`S_K`)."""
        step = check_positive_int(step, "step", minimum=0)
        for i, end in enumerate(self.boundaries):
            if step < end:
                return i
        return len(self.boundaries) - 1

    def rates_at(self, step: int) -> Rates:
        """``(p_H, p_M, p_L)`` at ``step``."""
        return self.rates[self.stage(step)]

    def scaled(self, total_steps: int) -> StageSchedule:
        """The same stages scaled to ``total_steps``: :math:`S_s \\to \\lfloor S_s N / S_K
        + \\tfrac12 \\rfloor` (exact integer arithmetic), the last boundary becoming ``N``.

        Raises ``ValueError`` naming ``total_steps`` when it is too small to keep every stage
        non-empty.
        """
        total = check_positive_int(total_steps, "total_steps")
        last = self.total_steps
        new = tuple((2 * b * total + last) // (2 * last) for b in self.boundaries)
        if new[0] < 1 or any(later <= earlier for earlier, later in itertools.pairwise(new)):
            raise ValueError(
                f"total_steps={total} is too small for a schedule of {len(new)} stages "
                f"(scaled boundaries {list(new)} are not strictly increasing from >= 1)"
            )
        return StageSchedule(new, self.rates)


#: Named schedules; ``"gpt2"`` is Li et al.'s GPT-2 setting (reconstructed, see the notes).
SCHEDULES: dict[str, StageSchedule] = {
    "gpt2": StageSchedule(
        (20_000, 70_000, 150_000), ((0.5, 0.5, 0.5), (0.5, 0.5, 1.0), (1.0, 1.0, 1.0))
    ),
    "full": StageSchedule((1,), ((1.0, 1.0, 1.0),)),
}


# --- FLOPs ------------------------------------------------------------------------------------


def layer_forward_flops(
    d_model: Any, context: Any, head_width: Any, neurons: Any, *, scores: str = "full"
) -> Any:
    r"""Forward FLOPs per token of one layer: :math:`8 d w + c\,T w + 4 d k_M`.

    ``head_width`` is :math:`w = k_H d_h`, ``c`` is 4 (``scores="full"``), 2 (``"causal"``) or
    0 (``"none"``). Plain arithmetic: works on ints, ``Fraction`` and sympy symbols alike.
    """
    c = {"full": 4, "causal": 2, "none": 0}[check_choice(scores, "scores", SCORE_CONVENTIONS)]
    return 8 * d_model * head_width + c * context * head_width + 4 * d_model * neurons


def head_forward_flops(d_model: Any, vocab_size: Any) -> Any:
    r"""Forward FLOPs per token of the LM head, :math:`2 d V`."""
    return 2 * d_model * vocab_size


def subnetwork_flops(
    config: DecoderConfig,
    rates: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    include_head: bool = False,
    scores: str = "full",
) -> int:
    r"""Training (forward + backward = 3 x forward) FLOPs per token of a sampled subnetwork.

    .. math:: 3\,\big[k_L\,(8 d\,k_H d_h + 4 T\,k_H d_h + 4 d\,k_M) + [\text{head}]\,2 d V\big]

    with the kept sizes :math:`k_H, k_M, k_L` of :meth:`SubnetworkSampler.sizes` and
    :math:`T` = ``config.context``.
    """
    if not isinstance(config, DecoderConfig):
        raise TypeError(f"config must be a DecoderConfig, got {type(config).__name__}")
    # only the sizes are used: a fixed seed, no entropy drawn (nor broadcast under distributed)
    sampler = SubnetworkSampler.for_config(config, seed=0)
    k_h, k_m, k_l = sampler.sizes(rates)
    layer = layer_forward_flops(
        config.d_model, config.context, k_h * config.head_dim, k_m, scores=scores
    )
    total = k_l * layer
    if include_head:
        total += head_forward_flops(config.d_model, config.vocab_size)
    return 3 * total


def schedule_flops(
    config: DecoderConfig,
    schedule: StageSchedule,
    *,
    include_head: bool = False,
    scores: str = "full",
) -> int:
    """Training FLOPs per token position summed over the steps of ``schedule``."""
    if not isinstance(schedule, StageSchedule):
        raise TypeError(f"schedule must be a StageSchedule, got {type(schedule).__name__}")
    return sum(
        n * subnetwork_flops(config, r, include_head=include_head, scores=scores)
        for n, r in zip(schedule.stage_lengths, schedule.rates, strict=True)
    )


def flops_saving(
    config: DecoderConfig,
    schedule: StageSchedule,
    *,
    include_head: bool = False,
    scores: str = "full",
) -> Fraction:
    r"""Exact fraction of training FLOPs saved by ``schedule`` against full training,
    :math:`1 - \sum_s n_s C(P_s) / (S_K\,C(1, 1, 1))`.

    Examples
    --------
    >>> flops_saving(GPT2_SMALL, StageSchedule.preset("gpt2"))
    Fraction(4, 15)
    >>> round(float(flops_saving(GPT2_SMALL, StageSchedule.preset("gpt2"), include_head=True)), 4)
    0.1944
    """
    est = schedule_flops(config, schedule, include_head=include_head, scores=scores)
    full = schedule.total_steps * subnetwork_flops(config, include_head=include_head, scores=scores)
    return 1 - Fraction(est, full)


# --- training: full and EST side by side --------------------------------------------------------

#: The default model of :func:`compare_training`: trains in minutes on 2 CPU cores.
DEFAULT_LM = DecoderConfig(context=64, n_layers=4, d_model=64, n_heads=4, d_mlp=256)


def _interpolate(x: Sequence[float], y: Sequence[float], at: float) -> float:
    """Linear interpolation of ``y(x)`` at ``at`` (``x`` increasing; clamped at the ends)."""
    return float(np.interp(at, np.asarray(x, dtype=float), np.asarray(y, dtype=float)))


def compare_training(
    *,
    config: DecoderConfig = DEFAULT_LM,
    schedule: StageSchedule | str = "gpt2",
    steps: int = 600,
    batch_size: int = 16,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    warmup: int = 20,
    seed: Any = 0,
    layer_scale: str = "inverse",
    eval_every: int = 50,
    eval_windows: int = 64,
    tokens: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    r"""Train the full decoder and its EST counterpart from the same init on the same batches.

    Both runs use AdamW (:math:`\beta = (0.9, 0.95)`, the ``fused`` update), a
    linear warm-up over ``warmup`` steps then a linear decay to 0 (the paper's GPT-2 recipe uses
    linear decay), and the byte-level
    docstring corpus (:func:`kernelapprox.lm.docstring_corpus`) unless ``tokens`` gives
    ``(train, validation)`` token tensors. The batch of step ``t`` is
    ``random_windows(train, ..., seed=data_seed, step=t)`` for both runs; the EST run draws
    ``SubnetworkSampler(..., seed=sampler_seed).at(t, schedule.scaled(steps))``, where
    ``data_seed``, ``sampler_seed`` and the init seed are spawned from ``seed``. The steps of the
    two runs alternate, so that the machine's load affects both wall times alike; evaluation is
    not timed. Validation loss is the full model's mean next-token loss on ``eval_windows``
    evenly spaced validation windows, every ``eval_every`` steps and at the end.

    Parameters whose slice is not sampled receive a zero gradient (``index_select``), so AdamW
    still moves them by their momentum; parameters of skipped layers get no gradient at all
    (``None``) and are left untouched. This is the plain reading of the paper; no source says
    more.

    Returns
    -------
    dict
        ``flops_saving`` (blocks only) and ``flops_saving_with_head`` of the scaled schedule,
        ``val_loss_full``, ``val_loss_est`` (final), ``loss_gap`` (``est / full - 1`` at equal
        steps), ``val_loss_full_at_est_flops`` and ``loss_gap_at_equal_flops`` (the full
        run's validation curve interpolated at the EST run's total FLOPs, head included),
        ``wall_s_full``, ``wall_s_est``, ``wall_saving``, ``history`` (one row per evaluation:
        step, cumulative training FLOPs of each run, validation loss of each run), and the
        setting.
    """
    init_seed, data_seed, sampler_seed = _spawn_seeds(seed, 3)
    setting = _TrainingSetting.check(
        config, schedule, steps, batch_size, lr, weight_decay, warmup, layer_scale, eval_every,
        eval_windows, tokens,
    )  # fmt: skip
    trained = _train_side_by_side(setting, init_seed, data_seed, [sampler_seed], progress)
    run = _summarize(setting, trained["histories"][0], trained["wall_full"], trained["wall_est"][0])
    return {
        **run,
        "seed": seed if isinstance(seed, int) else str(seed),
        **setting.describe(),
        "history": trained["histories"][0],
    }


#: Per-draw numbers of :func:`compare_subnetwork_draws` (the gaps of each EST run against the
#: one full run).
DRAW_METRICS = ("val_loss_est", "loss_gap", "loss_gap_at_equal_flops", "wall_saving")


def compare_subnetwork_draws(
    *,
    draws: int = 8,
    config: DecoderConfig = DEFAULT_LM,
    schedule: StageSchedule | str = "gpt2",
    steps: int = 600,
    batch_size: int = 16,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    warmup: int = 20,
    seed: Any = 0,
    layer_scale: str = "inverse",
    eval_every: int = 50,
    eval_windows: int = 64,
    tokens: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    r"""One full run and ``draws`` EST runs that differ only in their subnetworks.

    Common random numbers: every run starts from the same initialization and sees the same
    batches in the same order (both spawned from ``seed`` as in :func:`compare_training`); EST
    run :math:`r` draws its subnetworks with the :math:`r`-th child of the sampler seed. The
    full run is deterministic given init and data, so it is trained once, and the paired
    gaps :math:`g_r = L^{\mathrm{EST}}_r / L^{\mathrm{full}} - 1` are independent and
    identically distributed given the init and the data order: their Student-t interval
    (:func:`~kernelapprox.estimators.replications.replication_interval`) is an interval for
    the expected gap *at this initialization and data order*, the randomness of EST itself.
    It says nothing about other initializations or data orders (replicate ``seed`` for
    that: :func:`compare_over_seeds`), but its standard error is free of their variance.

    Returns
    -------
    dict
        ``val_loss_full`` (the one full run), per-draw lists ``draws_<key>`` for the keys of
        :data:`DRAW_METRICS`, ``intervals[key]`` over draws, ``wall_s_full`` and the mean
        ``wall_s_est``, the FLOPs savings and the setting.
    """
    from kernelapprox.estimators.replications import replication_interval

    draws = check_positive_int(draws, "draws")
    init_seed, data_seed, sampler_seed = _spawn_seeds(seed, 3)
    setting = _TrainingSetting.check(
        config, schedule, steps, batch_size, lr, weight_decay, warmup, layer_scale, eval_every,
        eval_windows, tokens,
    )  # fmt: skip
    sampler_seeds = _spawn_seeds(sampler_seed, draws)
    trained = _train_side_by_side(setting, init_seed, data_seed, sampler_seeds, progress)
    runs = [
        _summarize(setting, history, trained["wall_full"], wall)
        for history, wall in zip(trained["histories"], trained["wall_est"], strict=True)
    ]
    first = runs[0]
    return {
        "flops_saving": first["flops_saving"],
        "flops_saving_with_head": first["flops_saving_with_head"],
        "val_loss_full": first["val_loss_full"],
        "val_loss_full_at_est_flops": first["val_loss_full_at_est_flops"],
        "wall_s_full": trained["wall_full"],
        "wall_s_est": float(np.mean(trained["wall_est"])),
        **{f"draws_{key}": [run[key] for run in runs] for key in DRAW_METRICS},
        "intervals": {
            key: replication_interval([run[key] for run in runs]).as_dict() for key in DRAW_METRICS
        },
        "draws": draws,
        "seed": seed if isinstance(seed, int) else str(seed),
        **setting.describe(),
        "history_full": [
            {k: row[k] for k in ("step", "flops_full", "val_loss_full")}
            for row in trained["histories"][0]
        ],
    }


def _spawn_seeds(seed: Any, n: int) -> list[np.random.SeedSequence]:
    from kernelapprox._validation import spawn

    return spawn(seed, n)


@dataclass(frozen=True)
class _TrainingSetting:
    """The checked setting shared by :func:`compare_training` and its replications."""

    config: DecoderConfig
    scaled: StageSchedule
    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup: int
    layer_scale: str
    eval_every: int
    eval_windows: int
    train_tokens: torch.Tensor
    val_tokens: torch.Tensor
    corpus_info: dict[str, Any]

    @classmethod
    def check(
        cls,
        config: Any,
        schedule: Any,
        steps: Any,
        batch_size: Any,
        lr: Any,
        weight_decay: Any,
        warmup: Any,
        layer_scale: Any,
        eval_every: Any,
        eval_windows: Any,
        tokens: Any,
    ) -> _TrainingSetting:
        from kernelapprox._validation import check_nonnegative_float, check_positive_float
        from kernelapprox.lm.corpus import docstring_corpus

        if not isinstance(config, DecoderConfig):
            raise TypeError(f"config must be a DecoderConfig, got {type(config).__name__}")
        if isinstance(schedule, str):
            schedule = StageSchedule.preset(schedule)
        if not isinstance(schedule, StageSchedule):
            raise TypeError(f"schedule must be a StageSchedule or a preset name, got {schedule!r}")
        steps = check_positive_int(steps, "steps")
        check_choice(layer_scale, "layer_scale", LAYER_SCALES)
        corpus_info: dict[str, Any] = {}
        if tokens is None:
            corpus = docstring_corpus()
            train_tokens, val_tokens = corpus.tokens("train"), corpus.tokens("validation")
            corpus_info = {"fingerprint": corpus.fingerprint, "versions": corpus.versions}
        else:
            train_tokens, val_tokens = tokens
        return cls(
            config=config,
            scaled=schedule.scaled(steps),
            steps=steps,
            batch_size=check_positive_int(batch_size, "batch_size"),
            lr=check_positive_float(lr, "lr"),
            weight_decay=check_nonnegative_float(weight_decay, "weight_decay"),
            warmup=check_positive_int(warmup, "warmup", minimum=0),
            layer_scale=layer_scale,
            eval_every=check_positive_int(eval_every, "eval_every"),
            eval_windows=check_positive_int(eval_windows, "eval_windows"),
            train_tokens=train_tokens,
            val_tokens=val_tokens,
            corpus_info=corpus_info,
        )

    def describe(self) -> dict[str, Any]:
        """The setting as plain JSON values."""
        return {
            "steps": self.steps,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "layer_scale": self.layer_scale,
            "schedule": {
                "boundaries": list(self.scaled.boundaries),
                "rates": [list(r) for r in self.scaled.rates],
            },
            "config": dict(self.config.__dict__),
            "corpus": self.corpus_info,
        }


def _train_side_by_side(
    setting: _TrainingSetting,
    init_seed: np.random.SeedSequence,
    data_seed: np.random.SeedSequence,
    sampler_seeds: Sequence[np.random.SeedSequence],
    progress: bool,
) -> dict[str, Any]:
    """Train one full model and one EST model per sampler seed (see :func:`compare_training`).

    Returns ``histories`` (one per EST run, each row with the full run's numbers too),
    ``wall_full`` and ``wall_est`` (one per EST run), in seconds.
    """
    import copy
    import time

    from kernelapprox.lm.corpus import evenly_spaced_windows, random_windows
    from kernelapprox.lm.model import Decoder

    s = setting
    config, steps = s.config, s.steps
    val_x, val_y = evenly_spaced_windows(s.val_tokens, s.eval_windows, config.context)
    full_model = Decoder(config, seed=init_seed)
    samplers = [
        SubnetworkSampler.for_config(config, seed=child, layer_scale=s.layer_scale)
        for child in sampler_seeds
    ]
    est_models = [copy.deepcopy(full_model) for _ in samplers]

    def optimizer(model: torch.nn.Module) -> tuple[Any, Any]:
        # fused: one kernel updates every tensor; torch's CPU default loops over the tensors
        # in Python, 10 % of a small model's step, and does not shrink with the subnetwork
        # (benchmarks/est_wall_clock.py: 14 ms loop, 10 ms foreach, 3 ms fused on DEFAULT_LM)
        opt = torch.optim.AdamW(
            model.parameters(), lr=s.lr, betas=(0.9, 0.95), weight_decay=s.weight_decay, fused=True
        )

        def factor(t: int) -> float:
            if t < s.warmup:
                return (t + 1) / s.warmup
            return max(0.0, (steps - t) / max(1, steps - s.warmup))

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)

    # (model, optimizer, lr schedule, sampler or None for the full run); index 0 is the full run
    runs = [(full_model, *optimizer(full_model), None)]
    runs += [(m, *optimizer(m), sampler) for m, sampler in zip(est_models, samplers, strict=True)]
    wall = [0.0] * len(runs)
    flops_full = flops_est = 0
    tokens_per_step = s.batch_size * config.context
    full_step_flops = subnetwork_flops(config, include_head=True) * tokens_per_step

    @torch.no_grad()
    def evaluate(model: torch.nn.Module) -> float:
        model.eval()
        loss = float(model.loss(val_x, val_y))
        model.train()
        return loss

    def row(step: int) -> list[dict[str, Any]]:
        full = evaluate(full_model)
        return [
            {
                "step": step,
                "flops_full": flops_full,
                "flops_est": flops_est,
                "val_loss_full": full,
                "val_loss_est": evaluate(model),
            }
            for model in est_models
        ]

    histories: list[list[dict[str, Any]]] = [[r] for r in row(0)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="full vs EST", leave=False, mininterval=0.5)
    for t in range(steps):
        x, y = random_windows(s.train_tokens, s.batch_size, config.context, seed=data_seed, step=t)
        rates = s.scaled.rates_at(t)
        for i, (model, opt, sched, sampler) in enumerate(runs):
            start = time.perf_counter()
            sub = None if sampler is None else sampler.sample(t, rates)
            opt.zero_grad(set_to_none=True)
            loss = model.loss(x, y, sub)
            loss.backward()
            opt.step()
            sched.step()
            wall[i] += time.perf_counter() - start
            if not torch.isfinite(loss):
                name = "full" if sampler is None else "est"
                raise FloatingPointError(
                    f"{name} training diverged at step {t} (loss {float(loss)}); lower lr"
                )
        flops_full += full_step_flops
        flops_est += subnetwork_flops(config, rates, include_head=True) * tokens_per_step
        if (t + 1) % s.eval_every == 0 or t + 1 == steps:
            for history, r in zip(histories, row(t + 1), strict=True):
                history.append(r)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return {"histories": histories, "wall_full": wall[0], "wall_est": wall[1:]}


def _summarize(
    setting: _TrainingSetting, history: list[dict[str, Any]], wall_full: float, wall_est: float
) -> dict[str, Any]:
    """The numbers :func:`compare_training` reports for one EST run against the full run."""
    last = history[-1]
    at_equal_flops = _interpolate(
        [h["flops_full"] for h in history],
        [h["val_loss_full"] for h in history],
        last["flops_est"],
    )
    return {
        "flops_saving": float(flops_saving(setting.config, setting.scaled)),
        "flops_saving_with_head": float(
            flops_saving(setting.config, setting.scaled, include_head=True)
        ),
        "measured_flops_saving_with_head": 1 - last["flops_est"] / last["flops_full"],
        "val_loss_full": last["val_loss_full"],
        "val_loss_est": last["val_loss_est"],
        "loss_gap": last["val_loss_est"] / last["val_loss_full"] - 1,
        "val_loss_full_at_est_flops": at_equal_flops,
        "loss_gap_at_equal_flops": last["val_loss_est"] / at_equal_flops - 1,
        "wall_s_full": wall_full,
        "wall_s_est": wall_est,
        "wall_saving": 1 - wall_est / wall_full,
    }


#: Per-run numbers of :func:`compare_training` that :func:`compare_over_seeds` summarizes.
SEED_METRICS = (
    "val_loss_full",
    "val_loss_est",
    "loss_gap",
    "val_loss_full_at_est_flops",
    "loss_gap_at_equal_flops",
    "wall_s_full",
    "wall_s_est",
    "wall_saving",
)


def compare_over_seeds(*, seeds: int = 1, seed: Any = 0, **kwargs: Any) -> dict[str, Any]:
    """:func:`compare_training` over ``seeds`` independent replications, with intervals.

    Replication ``r`` runs with the ``r``-th child of ``SeedSequence(seed)`` (``spawn``), so
    init, batches and subnetworks all change between replications. The keys of
    :data:`SEED_METRICS` hold the mean over replications, ``intervals[key]`` the Student-t 95 %
    interval (:func:`kernelapprox.estimators.replications.replication_interval`; ``nan`` for one
    replication), ``runs`` each replication's full result; the FLOPs savings and the setting
    are those of the runs (equal for all).
    """
    from kernelapprox._validation import spawn
    from kernelapprox.estimators.replications import replication_interval

    seeds = check_positive_int(seeds, "seeds")
    if "seed" in kwargs:
        raise TypeError("pass seed once")
    runs = [compare_training(seed=child, **kwargs) for child in spawn(seed, seeds)]
    intervals = {
        key: replication_interval([run[key] for run in runs]).as_dict() for key in SEED_METRICS
    }
    first = runs[0]
    out = {k: v for k, v in first.items() if k not in (*SEED_METRICS, "history", "seed")}
    out.update({key: intervals[key]["value"] for key in SEED_METRICS})
    out.update(
        {
            "seed": seed if isinstance(seed, int) else str(seed),
            "seeds": seeds,
            "intervals": intervals,
            "runs": runs,
        }
    )
    return out
