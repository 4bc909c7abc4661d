"""``kernelapprox dynamics est``: full training and evolving subnetwork training side by side.

Trains the small byte-level decoder of :mod:`kernelapprox.lm` twice from the same
initialization on the same batches, once in full and once with EST (Li et al., ICML 2024,
arXiv 2406.06962) under a stage schedule scaled to ``--steps``
(:func:`kernelapprox.dynamics.est.compare_training`), ``--seeds`` times with intervals over
seeds (:func:`~kernelapprox.dynamics.est.compare_over_seeds`), or with ``--draws R`` one
full run and ``R`` EST runs on the same init and batches that differ only in their subnetworks
(:func:`~kernelapprox.dynamics.est.compare_subnetwork_draws`: paired gaps, intervals over the
draws). Prints the FLOPs saving
(blocks only and with the LM head), final validation losses, the gap at equal steps and at
equal FLOPs and both wall times; ``--out`` also gets ``results.json`` and ``est.png``
(validation loss against steps and against FLOPs).

Measured once (seed 0, ``--threads 1`` on a shared, heavily loaded 2-core machine): the
default (600 steps, 4 layers, d = 64) ran in about 2.5 minutes; block FLOPs saving 26.7 %
(24.9 % with the head), validation loss 2.385 (full) vs 2.759 (EST), a 15.7 % gap at equal
steps and 12.0 % at equal FLOPs; wall time 65.6 s vs 59.0 s (10 % saved: this small model is
overhead-bound). Such a short run is far from the paper's regime; see
``benchmarks/est_wall_clock.py`` for the wall-clock target.

``--schedule`` is a preset name (``gpt2``, ``full``) or JSON such as
``'{"boundaries": [100, 300], "rates": [[0.5, 0.5, 1], [1, 1, 1]]}'``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options only ``dynamics est`` uses (``--steps``, ``--seed``, ``--lr``, ``--format``,
    ``--out`` are the dynamics command's own)."""
    parser.add_argument(
        "--schedule", default="gpt2", help="est: preset (gpt2, full) or JSON boundaries/rates"
    )
    parser.add_argument(
        "--layer-scale",
        default="inverse",
        choices=("inverse", "none"),
        help="est: rescale kept layers by N_L/k_L (inverse) or not",
    )
    parser.add_argument(
        "--seeds", type=int, default=1, help="est: independent replications (intervals over seeds)"
    )
    parser.add_argument(
        "--draws",
        type=int,
        default=None,
        help="est: one init and data order, one full run and this many EST runs that differ "
        "only in their subnetworks (paired gaps, intervals over draws; not with --seeds)",
    )


def parse_schedule(text: str) -> Any:
    """A :class:`~kernelapprox.dynamics.est.StageSchedule` from a preset name or JSON."""
    from kernelapprox.dynamics.est import SCHEDULES, StageSchedule

    if text in SCHEDULES:
        return SCHEDULES[text]
    try:
        spec = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(
            f"--schedule must be one of {', '.join(SCHEDULES)} or JSON with 'boundaries' and "
            f"'rates', got {text!r}"
        ) from None
    if not isinstance(spec, dict) or set(spec) != {"boundaries", "rates"}:
        raise ValueError("--schedule JSON must be an object with keys 'boundaries' and 'rates'")
    try:
        return StageSchedule(tuple(spec["boundaries"]), tuple(map(tuple, spec["rates"])))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--schedule: {exc}") from None


def _training_options(args: argparse.Namespace, progress: bool) -> dict[str, Any]:
    """The keywords that :func:`~kernelapprox.dynamics.est.compare_over_seeds` and
    :func:`~kernelapprox.dynamics.est.compare_subnetwork_draws` both take from the command
    line (600 steps and ``lr = 3e-3`` where ``--steps`` and ``--lr`` are not given)."""
    return {
        "schedule": parse_schedule(args.schedule),
        "steps": 600 if args.steps is None else args.steps,
        "lr": 3e-3 if args.lr is None else args.lr,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "layer_scale": args.layer_scale,
        "progress": progress,
    }


def _heading(title: str, result: dict[str, Any], replication: str) -> list[str]:
    """The report's first line (model, steps, schedule, seed, then ``replication``), underlined."""
    cfg = result["config"]
    head = (
        f"{title}: {cfg['n_layers']} layers, d={cfg['d_model']}, "
        f"{cfg['n_heads']} heads, MLP {cfg['d_mlp']}, T={cfg['context']}; {result['steps']} "
        f"steps, schedule {result['schedule']['boundaries']} {result['schedule']['rates']}, "
        f"seed {result['seed']}{replication}"
    )
    return [head, "-" * len(head)]


def run_est(args: argparse.Namespace, progress: bool) -> tuple[dict[str, Any], str]:
    """Run the comparison for the parsed ``args``; return ``(payload, table)``."""
    from kernelapprox.dynamics.est import compare_over_seeds

    options = _training_options(args, progress)
    if getattr(args, "draws", None) is not None:
        if args.seeds != 1:
            raise ValueError("--draws replicates the subnetworks of one seed: leave --seeds at 1")
        return _run_draws(args.draws, options)
    result = compare_over_seeds(seeds=args.seeds, **options)
    if args.out is not None:
        from kernelapprox.dynamics.plots import plot_est

        plot_est(result, Path(args.out))
    payload = {"experiment": "est", **result}
    rows = [
        ("flops_saving", result["flops_saving"], "block FLOPs saved (the paper's count)"),
        ("flops_saving_with_head", result["flops_saving_with_head"], "with the LM head"),
        ("val_loss_full", result["val_loss_full"], "final validation loss, full (nats/byte)"),
        ("val_loss_est", result["val_loss_est"], "final validation loss, EST"),
        ("loss_gap", result["loss_gap"], "EST / full - 1 at equal steps"),
        (
            "loss_gap_at_equal_flops",
            result["loss_gap_at_equal_flops"],
            "EST / full - 1 at EST's FLOPs",
        ),
        ("wall_s_full", result["wall_s_full"], "training wall time, full (s)"),
        ("wall_s_est", result["wall_s_est"], "training wall time, EST (s)"),
        ("wall_saving", result["wall_saving"], "1 - wall_est / wall_full"),
    ]
    width = max(len(k) for k, _, _ in rows)
    lines = _heading("EST vs full training", result, f", {result['seeds']} replication(s)")
    for key, value, desc in rows:
        interval = result["intervals"].get(key)
        half = ""
        if interval is not None and interval["replications"] > 1:
            half = f" ±{interval['ci_high'] - interval['value']:.4f}"
        lines.append(f"{key:<{width}}  {value:>10.4f}{half:<9}  {desc}")
    if result["seeds"] > 1:
        lines.append("(mean over seeds ± 95 % Student-t half-width)")
    return payload, "\n".join(lines)


def _run_draws(draws: int, options: dict[str, Any]) -> tuple[dict, str]:
    """``--draws R``: :func:`~kernelapprox.dynamics.est.compare_subnetwork_draws`."""
    from kernelapprox.dynamics.est import compare_subnetwork_draws

    result = compare_subnetwork_draws(draws=draws, **options)
    payload = {"experiment": "est", **result}
    lines = _heading(
        "EST vs full training, paired",
        result,
        f" (one init and data order), {result['draws']} subnetwork draws",
    )
    lines.append(f"{'flops_saving':<24}  {result['flops_saving']:>10.4f}  block FLOPs saved")
    lines.append(
        f"{'flops_saving_with_head':<24}  {result['flops_saving_with_head']:>10.4f}  "
        "with the LM head"
    )
    lines.append(
        f"{'val_loss_full':<24}  {result['val_loss_full']:>10.4f}  the one full run (nats/byte)"
    )
    for key, desc in (
        ("val_loss_est", "final validation loss, EST"),
        ("loss_gap", "EST / full - 1 at equal steps"),
        ("loss_gap_at_equal_flops", "EST / full - 1 at EST's FLOPs"),
        ("wall_saving", "1 - wall_est / wall_full"),
    ):
        iv = result["intervals"][key]
        span = f"[{iv['ci_low']:.4f}, {iv['ci_high']:.4f}]" if iv["replications"] > 1 else ""
        lines.append(f"{key:<24}  {iv['value']:>10.4f}  {span:<18}  {desc}")
    lines.append("per-draw loss gaps: " + ", ".join(f"{g:.4f}" for g in result["draws_loss_gap"]))
    lines.append("(mean over draws, 95 % Student-t interval; conditional on the init and data)")
    return payload, "\n".join(lines)
