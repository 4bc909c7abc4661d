"""``kernelapprox dynamics [theorem|completion|depth|est]``: the training-dynamics experiments.

* ``theorem`` -- :func:`~kernelapprox.dynamics.verify_invariant_subspace`: invariance of the
  :math:`d-2r` complement, leakage, full vs compressed trajectory, Adam/masked controls.
* ``completion`` -- :func:`~kernelapprox.dynamics.run_completion`: full vs compressed
  (:math:`\\gamma>0`) vs frozen (:math:`\\gamma=0`) matrix completion; ``--dim 100`` and
  ``--dim 200`` use the two reference settings unless overridden.
* ``depth`` -- :func:`~kernelapprox.dynamics.depth_width_sweep`: depth 2 vs 3 over widths.
* ``est`` -- :func:`~kernelapprox.dynamics.est.compare_training`: full vs evolving subnetwork
  training of a small decoder (``--schedule``, ``--layer-scale``; :mod:`.dynamics_est`).

Prints a table (or ``--format json``) and writes plots and ``results.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kernelapprox.cli import SUMMARIES
from kernelapprox.cli._common import add_common_options, comma_list, positive_int

EXPERIMENTS = ("theorem", "completion", "depth", "est")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "dynamics",
        help=SUMMARIES["dynamics"],
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "experiment",
        nargs="?",
        default="theorem",
        choices=EXPERIMENTS,
        help="the experiment to run (default: %(default)s)",
    )
    p.add_argument("--dim", type=int, default=None, help="d (theorem 30, completion 100)")
    p.add_argument("--rank", type=int, default=None, help="target rank r")
    p.add_argument("--depth", type=int, default=None, help="number of factors L (3)")
    p.add_argument("--eps", type=float, default=None, help="init scale (theorem 1e-2, else 1e-3)")
    p.add_argument("--lr", type=float, default=None, help="step size in the loss's reduction")
    p.add_argument("--steps", type=int, default=None, help="(maximal) number of updates")
    p.add_argument(
        "--optimizer",
        default="gd",
        choices=("gd", "momentum", "adam"),
        help="gradient descent, heavy-ball momentum or Adam (default: %(default)s)",
    )
    p.add_argument("--fraction", type=float, default=None, help="observed fraction p")
    p.add_argument("--gamma", type=float, default=None, help="outer-factor lr factor")
    p.add_argument("--tol", type=float, default=1e-3, help="completion: target rel. error")
    p.add_argument(
        "--widths",
        type=comma_list(positive_int, "positive integers"),
        default="10,50,100",
        help="depth: comma-separated widths",
    )
    p.add_argument(
        "--reduction",
        default=None,
        choices=("mean", "sum"),
        help="theorem: the loss summed or averaged over entries (default: sum)",
    )
    p.add_argument(
        "--weight-decay", type=float, default=0.0, help="weight decay (default: %(default)s)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    add_common_options(p, writes="results.json and the plots")
    from kernelapprox.cli.dynamics_est import add_arguments as add_est_arguments

    add_est_arguments(p)
    p.set_defaults(func=run)


def _pick(value: Any, default: Any) -> Any:
    return default if value is None else value


def _folder(out: Path) -> Path:
    """``--out``, created when the first file is written (a failed run leaves nothing)."""
    out.mkdir(parents=True, exist_ok=True)
    return out


def run(args: argparse.Namespace) -> int:
    from kernelapprox._io import atomic_write, check_out_dir, json_text

    args.out = check_out_dir(args.out)
    progress = not args.no_progress
    if args.threads is not None:
        import torch

        if args.threads < 1:
            raise ValueError(f"--threads must be an integer >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.experiment == "theorem":
        payload, table = _theorem(args, progress)
    elif args.experiment == "completion":
        payload, table = _completion(args, progress)
    elif args.experiment == "est":
        from kernelapprox.cli.dynamics_est import run_est

        payload, table = run_est(args, progress)
    else:
        payload, table = _depth(args, progress)
    if args.out is not None:
        atomic_write(_folder(args.out) / "results.json", json_text(payload) + "\n")
    if args.format == "json":
        print(json_text(payload))
    else:
        print(table)
    return 0


def _theorem(args: argparse.Namespace, progress: bool) -> tuple[dict[str, Any], str]:
    from kernelapprox.dynamics.theorem import verify_invariant_subspace

    result = verify_invariant_subspace(
        dim=_pick(args.dim, 30),
        rank=_pick(args.rank, 3),
        depth=_pick(args.depth, 3),
        eps=_pick(args.eps, 1e-2),
        lr=_pick(args.lr, 0.3 if args.optimizer != "adam" else 1e-3),
        steps=_pick(args.steps, 500),
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        reduction=_pick(args.reduction, "sum"),
        seed=args.seed,
        keep_history=args.out is not None,
        progress=progress,
    )
    history = result.pop("history", None)
    if args.out is not None and history is not None:
        from kernelapprox.dynamics.plots import plot_theorem

        plot_theorem({**result, "history": history}, _folder(args.out))
    result.pop("seconds", None)
    payload = {"experiment": "theorem", **result}
    rows = [
        ("invariance_error", "max |sigma - rho(t)| over the d-2r closest singular values"),
        ("min_invariant_count", "min #singular values within 1e-10 of rho(t) (>= d-2r)"),
        ("n_invariant", "d - 2r"),
        ("complement_residual", "max ||W_l U_l2 - rho U_(l+1)2||_F"),
        ("leakage", "max relative leakage out of the invariant complement"),
        ("largest_complement_angle", "largest angle W_l U_l2 vs its t=0 value (rad)"),
        ("subspace_cosine", "cos(largest angle) span(V_11) vs span(V_phi, O^T U_phi)"),
        ("trajectory_gap", "max rel. |E_full - (E_comp + rho^L U_perp V_perp^T)|"),
        ("trajectory_gap_without_complement", "final rel. |E_full - E_comp|"),
        ("complement_gap_predicted", "rho^L sqrt(d-2r) / |E_full| (final)"),
        ("final_relative_fit", "|E_full - Phi| / |Phi|"),
        ("rho_final", "rho(T)"),
        ("adam_leakage", "negative control: Adam leakage (> 1e-2 expected)"),
        ("masked_leakage", "negative control: masked-loss leakage (> 1e-8 expected)"),
        ("masked_bulk_ratio_min", "masked: min bulk singular value / eps"),
        ("masked_bulk_ratio_max", "masked: max bulk singular value / eps"),
    ]
    head = (
        f"invariant-subspace theorem: d={result['dim']} r={result['rank']} L={result['depth']} "
        f"eps={result['eps']:g} lr={result['lr']:g} steps={result['steps']} "
        f"optimizer={result['optimizer']}"
    )
    return payload, _table(head, [(k, result.get(k), d) for k, d in rows])


def _table(head: str, rows: list[tuple[str, Any, str]]) -> str:
    lines = [head, "-" * len(head)]
    width = max(len(k) for k, _, _ in rows)
    for key, value, desc in rows:
        if isinstance(value, float):
            text = f"{value:.3e}"
        else:
            text = str(value)
        lines.append(f"{key:<{width}}  {text:>11}  {desc}")
    return "\n".join(lines)


def _completion(args: argparse.Namespace, progress: bool) -> tuple[dict[str, Any], str]:
    from kernelapprox.dynamics.completion import completion_setting, run_completion

    dim = _pick(args.dim, 100)
    ref = completion_setting(dim)
    setting = {
        "dim": dim,
        "rank": _pick(args.rank, ref.rank),
        "fraction": _pick(args.fraction, ref.fraction),
        "depth": _pick(args.depth, ref.depth),
        "eps": _pick(args.eps, ref.eps),
        "lr": _pick(args.lr, ref.lr),
        "gamma": _pick(args.gamma, ref.gamma),
        "max_steps": _pick(args.steps, 30000),
        "tol": args.tol,
        "optimizer": args.optimizer,
        "seed": args.seed,
    }
    results = run_completion(**setting, progress=progress)
    if args.out is not None:
        from kernelapprox.dynamics.plots import plot_completion

        plot_completion(results, _folder(args.out), setting)
    keys = (
        "iterations",
        "converged",
        "wall_seconds",
        "relative_recovery_error",
        "recovery_error",
        "train_loss",
        "width",
        "parameters",
        "gamma",
        "diverged",
    )
    models = {
        name: {k: res[k] for k in (*keys, "end_to_end_gap_to_full") if k in res}
        for name, res in results.items()
    }
    payload = {"experiment": "completion", "setting": setting, "models": models}
    head = (
        f"matrix completion: d={dim} r={setting['rank']} p={setting['fraction']} "
        f"L={setting['depth']} eps={setting['eps']:g} lr={setting['lr']:g} (mean loss) "
        f"gamma={setting['gamma']:g} tol={setting['tol']:g}"
    )
    lines = [head, "-" * len(head)]
    lines.append(
        f"{'model':<11} {'width':>5} {'iterations':>10} {'conv':>5} {'wall s':>8} "
        f"{'rel. unobserved err':>19}"
    )
    for name, m in models.items():
        lines.append(
            f"{name:<11} {m['width']:>5} {m['iterations']:>10} {m['converged']!s:>5} "
            f"{m['wall_seconds']:>8.2f} {m['relative_recovery_error']:>19.3e}"
        )
    return payload, "\n".join(lines)


def _depth(args: argparse.Namespace, progress: bool) -> tuple[dict[str, Any], str]:
    from kernelapprox.dynamics.completion import depth_width_sweep

    widths = tuple(args.widths)
    depths = (2, 3) if args.depth is None else (args.depth,)
    lrs = {2: 100.0, 3: 300.0}
    if args.lr is not None:
        lrs = {d: args.lr for d in depths}
    setting = {
        "dim": _pick(args.dim, 100),
        "rank": _pick(args.rank, 10),
        "fraction": _pick(args.fraction, 0.3),
        "widths": widths,
        "depths": depths,
        "lrs": lrs,
        "eps": _pick(args.eps, 1e-3),
        "max_steps": _pick(args.steps, 60000),
        "seed": args.seed,
    }
    rows = depth_width_sweep(**setting, progress=progress)
    if args.out is not None:
        from kernelapprox.dynamics.plots import plot_depth

        plot_depth(rows, _folder(args.out), setting)
    payload = {"experiment": "depth", "setting": setting, "rows": rows}
    head = (
        f"depth 2 vs 3 width sweep: d={setting['dim']} r={setting['rank']} "
        f"p={setting['fraction']} eps={setting['eps']:g} (train tol 1e-10, mean loss)"
    )
    lines = [head, "-" * len(head)]
    lines.append(
        f"{'depth':>5} {'width':>5} {'lr':>6} {'iterations':>10} {'conv':>5} "
        f"{'recovery err':>12} {'rel. err':>10}"
    )
    for r in rows:
        lines.append(
            f"{r['depth']:>5} {r['width']:>5} {r['lr']:>6g} {r['iterations']:>10} "
            f"{r['converged']!s:>5} {r['recovery_error']:>12.3e} "
            f"{r['relative_recovery_error']:>10.3e}"
        )
    return payload, "\n".join(lines)
