"""Choose APT's options on a validation split carved out of the training docstrings (opt-in).

The test docstrings are never read: of the ``--n-train`` training docstrings that
``kernelapprox compress apt`` would use for a seed, the first ``n_train - n_val`` train and the
last ``n_val`` are the validation set (the modules' docstrings, split as
:func:`kernelapprox.compression.pruning.train.load_task` draws them). Each variant trains APT
(and, with ``--full``, full fine-tuning) from the same weights and batches and reports its
validation accuracy (one JSON line per run). With two or more seeds, the last line compares
each method's variants with its first, paired by seed: the mean difference of validation
accuracy with its 95 % paired t interval
(:func:`kernelapprox.compression.pruning.paired.paired_difference`). The variant chosen here
is then measured once on the test split by the command.

Defaults: 60 steps of 64 tokens (the command's earlier defaults, under which the recorded
validation runs and the long paired run of ``docs/results/apt.md`` were made).

Run: ``python benchmarks/apt_validation.py [--seeds 0,1] [--variants qv,qv+ffn]
[--lrs 2e-3,4e-3] [--distills 0,1] [--prune-hidden no,yes] [--mask-fades 0,14]
[--prune-ends 0.7,0.5]
[--full [--full-lrs 5e-5,1e-4]] [--steps N] [--max-length N]``: every adapter set at every
learning rate and distillation weight for APT, without and with hidden dimensions pruned, at
every mask fade (none with ``--variants none``), every ``--full-lrs`` for full fine-tuning;
each method's variants are compared with its first.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys


def validation_data(config, n_val: int, *, teacher_split: bool = False):
    """``(base, data)`` of :func:`~kernelapprox.compression.pruning.train.prepare`, with the
    last ``n_val`` training examples as the evaluation ("test") split; ``teacher_split``
    also loads the split on which self-distillation judges its teacher (the ``n_eval``
    pool docstrings after the training ones: disjoint from both, and the training subsample
    is the same with it or without)."""
    from kernelapprox.compression.pruning.train import prepare

    distill = 1.0 if teacher_split else config.distill
    base, data = prepare(dataclasses.replace(config, n_test=1, distill=distill))
    n = data["train_ids"].shape[0]
    if not 0 < n_val < n:
        raise ValueError(f"n_val must be in (0, {n}), got {n_val}")
    for key in ("ids", "att", "y", "ref"):
        full = data[f"train_{key}"]
        data[f"train_{key}"], data[f"test_{key}"] = full[: n - n_val], full[n - n_val :]
    return base, data


def compare_variants(rows: list[dict]) -> dict[str, dict]:
    """Each method's validation accuracy of every variant minus that method's first variant,
    paired by seed over the seeds that ran both (none with fewer than two such seeds); keys
    ``"method variant"``."""
    from kernelapprox.compression.pruning.paired import paired_difference

    out = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        acc = {(r["seed"], r["variant"]): r["accuracy"] for r in rows if r["method"] == method}
        variants = list(dict.fromkeys(v for _, v in acc))
        for v in variants[1:]:
            seeds = sorted(s for s, w in acc if w == v and (s, variants[0]) in acc)
            if len(seeds) >= 2:
                out[f"{method} {v}"] = paired_difference(
                    [acc[(s, v)] for s in seeds], [acc[(s, variants[0])] for s in seeds]
                )
    return out


def variants(
    adapts: list[str],
    lrs: list[float],
    full_lrs: list[float] | None,
    distills: list[float] = (0.0,),  # type: ignore[assignment]
    hiddens: list[bool] = (False,),  # type: ignore[assignment]
    fades: list[int] = (0,),  # type: ignore[assignment]
    ends: list[float] = (0.7,),  # type: ignore[assignment]
) -> list[tuple[str, str, dict]]:
    """``(method, name, config changes)`` of every run of one seed: full fine-tuning at each
    of ``full_lrs`` (none without ``--full``), then APT at each adapter set, learning rate and
    distillation weight, without and with hidden dimensions pruned (``hiddens``), at each mask
    fade (``fades``) and end of the pruning schedule (``ends``). A name is ``adapt``, followed
    by `` lr=...`` where there are several learning rates, `` distill=...`` where there are
    several weights, `` hidden`` where hidden dimensions are pruned, `` fade=...`` where there
    are several fades and `` end=...`` where there are several ends."""
    from kernelapprox.compression.pruning.train import ADAPTER_SETS

    runs = [("full", f"lr={lr:g}", {"lr_full": lr}) for lr in full_lrs or ()]
    for adapt, lr, distill, hidden, fade, end in itertools.product(
        adapts, lrs, distills, hiddens, fades, ends
    ):
        name = adapt + (f" lr={lr:g}" if len(lrs) > 1 else "")
        name += f" distill={distill:g}" if len(distills) > 1 else ""
        name += " hidden" if hidden else ""
        name += f" fade={fade}" if len(fades) > 1 else ""
        name += f" end={end:g}" if len(ends) > 1 else ""
        changes = {
            "adapted": ADAPTER_SETS[adapt],
            "lr": lr,
            "distill": distill,
            "prune_hidden": hidden,
            "mask_fade": fade,
            "prune_end": end,
        }
        runs.append(("apt", name, changes))
    return runs


def _seed(text: str) -> int:
    """A seed, for ``comma_list``: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise ValueError(f"seed {value} < 0")
    return value


def _weight(text: str) -> float:
    """A distillation weight, for ``comma_list``: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"weight {value} outside [0, 1]")
    return value


def _fade(text: str) -> int:
    """A mask fade, for ``comma_list``: steps, an integer >= 0."""
    value = int(text)
    if value < 0:
        raise ValueError(f"fade {value} < 0")
    return value


def _end(text: str) -> float:
    """An end of the pruning schedule, for ``comma_list``: a fraction of the steps in (0.1, 1]."""
    value = float(text)
    if not 0.1 < value <= 1.0:
        raise ValueError(f"end {value} outside (0.1, 1]")
    return value


def _yes_no(text: str) -> bool:
    """``yes`` or ``no``, for ``comma_list``."""
    if text not in ("yes", "no"):
        raise ValueError(f"{text!r} is neither yes nor no")
    return text == "yes"


def main(argv: list[str] | None = None) -> int:
    from kernelapprox.cli._common import comma_list, positive_float
    from kernelapprox.compression.pruning.train import APTConfig, train_method

    rates = comma_list(positive_float, "learning rates")
    seeds = comma_list(_seed, "seeds (integers >= 0)")
    defaults = APTConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=seeds, default=[0])
    p.add_argument(
        "--variants",
        type=comma_list(str, "adapter sets"),
        default=["qv", "qv+ffn"],
        help="adapter sets (--adapt) for APT; none: no APT run",
    )
    p.add_argument("--lrs", type=rates, default=[defaults.lr], help="APT's learning rates")
    p.add_argument(
        "--distills",
        type=comma_list(_weight, "distillation weights in [0, 1]"),
        default=[defaults.distill],
        help="APT's largest weights of self-distillation (--distill)",
    )
    p.add_argument(
        "--prune-hidden",
        type=comma_list(_yes_no, "yes or no"),
        default=[False],
        help="APT without (no) and with (yes) hidden dimensions pruned (--prune-hidden)",
    )
    p.add_argument(
        "--mask-fades",
        type=comma_list(_fade, "mask fades (integers >= 0)"),
        default=[defaults.mask_fade],
        help="APT's mask fades in steps (--mask-fade; 0: hard masks)",
    )
    p.add_argument(
        "--prune-ends",
        type=comma_list(_end, "fractions of the steps in (0.1, 1]"),
        default=[defaults.prune_end],
        help="where APT's pruning schedule ends, as fractions of the steps (--prune-end)",
    )
    p.add_argument("--n-val", type=int, default=128)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--max-length", type=int, default=64, help="tokens")
    p.add_argument("--full", action="store_true", help="also full fine-tuning")
    p.add_argument(
        "--full-lrs",
        type=rates,
        default=[defaults.lr_full],
        help="with --full: its learning rates",
    )
    args = p.parse_args(argv)
    adapts = [] if args.variants == ["none"] else args.variants
    runs = variants(
        adapts,
        args.lrs,
        args.full_lrs if args.full else None,
        args.distills,
        args.prune_hidden,
        args.mask_fades,
        args.prune_ends,
    )
    if not runs:
        p.error("--variants none runs nothing without --full")
    rows = []
    for seed in args.seeds:
        config = APTConfig(seed=seed, steps=args.steps, max_length=args.max_length)
        base, data = validation_data(config, args.n_val, teacher_split=max(args.distills) > 0)
        for method, name, changes in runs:
            r = train_method(method, dataclasses.replace(config, **changes), base, data)
            row = {
                "seed": seed,
                "method": method,
                "variant": name,
                **{k: r[k] for k in ("accuracy", "kept_params_fraction", "peak_mem_mb", "train_s")},
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    comparison = compare_variants(rows)
    if comparison:
        print(json.dumps({"paired_minus_first_variant": comparison}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
