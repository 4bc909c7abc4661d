"""Opt-in benchmark: full-width vs compressed deep matrix completion, wall time to a target error.

Yaras et al., ICML 2024 report ~43 s (full) vs ~6 s (compressed), about 7x, at d = 1000
(notes ``shared/reference/lowrank_dynamics.md`` §1.5). This script measures, for each d, the
wall time and iterations each model needs to reach relative error ``--tol`` on the unobserved
entries, and their ratio, on ``--threads`` CPU threads (default 2).

Settings (mean loss, L = 3, eps = 1e-3, plain GD, float64):
  d = 100: r = 5, p = 0.3, lr = 300, gamma = 0.01   (reference setting)
  d = 200: r = 3, p = 0.2, lr = 800, gamma = 0.1    (reference setting)
  d = 1000: r = 5, p = 0.2, lr = 5000, gamma = 0.01 (reference setting, the published run)
  other d: ``kernelapprox.dynamics.completion_setting`` (r = 5, p = 0.2, gamma = 0.01 and a
            step scaled from the d = 100 setting: lr = 2565 at d = 500)

The full model at d = 1000 costs about 6 d^3 flops per step, so on 2 cores a full run takes
about half an hour (about 19000 steps; docs/results/benchmarks.md); ``--probe-steps N``
instead times N steps of each model and reports the per-step ratio (no convergence). Usage::

    PYTHONPATH=. python benchmarks/dynamics_completion.py --dims 100,200
    PYTHONPATH=. python benchmarks/dynamics_completion.py --dims 1000 --probe-steps 20
"""

from __future__ import annotations

import argparse
import json

import torch

from kernelapprox.bench.timing import interleaved_times
from kernelapprox.dynamics import (
    DeepFactorization,
    completion_problem,
    completion_setting,
    compress,
    run_completion,
    train,
)


def setting_for(dim: int) -> dict:
    s = completion_setting(dim)
    return {"rank": s.rank, "fraction": s.fraction, "lr": s.lr, "gamma": s.gamma}


def probe(dim: int, steps: int, seed: int) -> dict:
    """Seconds per GD step of each model (after one warm-up step), no convergence."""
    s = setting_for(dim)
    objective = completion_problem(dim, s["rank"], s["fraction"], seed=seed)
    out = {}
    for name in ("full", "compressed"):
        model = DeepFactorization(dim, depth=3, eps=1e-3, seed=seed)
        if name == "compressed":
            model = compress(model, objective, rank=s["rank"])
        train(model, objective, lr=s["lr"], steps=3, gamma=s["gamma"])  # warm-up

        def run(model=model) -> None:
            train(model, objective, lr=s["lr"], steps=steps, gamma=s["gamma"])

        out[name] = interleaved_times({name: run}, 1, warm_up=False)[name][0] / steps
    return {"dim": dim, "seconds_per_step": out, "ratio": out["full"] / out["compressed"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dims", default="100,200,500,1000")
    parser.add_argument("--tol", type=float, default=1e-3)
    parser.add_argument("--max-steps", type=int, default=60000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-steps", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--output", default=None, help="append each finished row to this JSON-lines file"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dims = [int(d) for d in args.dims.split(",")]
    rows = []
    for dim in dims:
        if args.probe_steps:
            rows.append(probe(dim, args.probe_steps, args.seed))
            continue
        s = setting_for(dim)
        # warm-up (thread pools, first autograd call) so that neither model pays for it
        run_completion(dim=dim, **s, max_steps=3, models=("full", "compressed"), seed=args.seed)
        res = run_completion(
            dim=dim,
            **s,
            depth=3,
            eps=1e-3,
            tol=args.tol,
            max_steps=args.max_steps,
            check_every=10,
            models=("full", "compressed"),
            seed=args.seed,
        )
        row = {"dim": dim, **s}
        for name in ("full", "compressed"):
            r = res[name]
            row[name] = {
                k: r[k]
                for k in ("iterations", "converged", "wall_seconds", "relative_recovery_error")
            }
        row["ratio"] = res["full"]["wall_seconds"] / res["compressed"]["wall_seconds"]
        row["threads"] = args.threads
        rows.append(row)
        if args.output:  # a finished row is never lost if a later (longer) dimension is stopped
            with open(args.output, "a") as fh:
                fh.write(json.dumps(row) + "\n")
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"threads={args.threads} tol={args.tol:g}")
    for row in rows:
        if "seconds_per_step" in row:
            sp = row["seconds_per_step"]
            print(
                f"d={row['dim']:>5}  s/step full {sp['full']:.4g}  compressed "
                f"{sp['compressed']:.4g}  ratio {row['ratio']:.1f}x  (probe, no convergence)"
            )
            continue
        f, c = row["full"], row["compressed"]
        print(
            f"d={row['dim']:>5}  full {f['wall_seconds']:7.2f} s ({f['iterations']} it, "
            f"err {f['relative_recovery_error']:.1e})  compressed {c['wall_seconds']:7.2f} s "
            f"({c['iterations']} it, err {c['relative_recovery_error']:.1e})  "
            f"ratio {row['ratio']:.1f}x"
        )


if __name__ == "__main__":
    main()
