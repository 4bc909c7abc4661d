"""``kernelapprox bench``: attention speed, memory and error against peers (opt-in).

Without options it runs a short causal CPU sweep (T = 512..4096, d = 64, m = 4d, forward)
of every implementation importable here and prints a table; ``--full`` runs the full grid
(T = 512..65536, d = 64 and 128, m = d, 2d, 4d, forward, forward+backward, decode).

On a GPU (``--device cuda``, bf16 by default) the Triton kernels (``triton``) join when
``triton`` is installed; the GPU table of forward and forward+backward is, e.g.::

    kernelapprox bench --device cuda --impls triton,ours,sdpa,fla --modes fwd,fwdbwd \\
        --lengths 1024,2048,4096,8192,16384 --head-dims 64,128 --feature-multipliers 1,2,4 \\
        --memory --out results/attention_gpu
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from kernelapprox._validation import (
    check_choice,
    check_positive_float,
    check_positive_int,
)
from kernelapprox.cli import SUMMARIES
from kernelapprox.cli._common import add_common_options, comma_list, positive_float, positive_int

_ints = comma_list(positive_int, "positive integers")
_floats = comma_list(positive_float, "positive numbers")
_names = comma_list()


def _check_device(text: str) -> str:
    """``--device`` must be ``cpu`` or ``cuda`` (optionally ``cuda:N``) and present."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu, cuda or cuda:N, got {text!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available")
    return text


def _check_options(args: argparse.Namespace) -> None:
    """Every numeric option and ``--out``, before any measurement."""
    from kernelapprox._io import check_out_dir

    for option in ("batch", "heads", "repeats", "decode_tokens"):
        check_positive_int(getattr(args, option), "--" + option.replace("_", "-"))
    check_positive_int(args.error_max_length, "--error-max-length", minimum=0)
    check_positive_int(args.seed, "--seed", minimum=0)
    if args.threads is not None:
        check_positive_int(args.threads, "--threads")
    check_positive_float(args.max_seconds, "--max-seconds")
    check_positive_float(args.input_std, "--input-std")
    args.out = check_out_dir(args.out)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench",
        help=SUMMARIES["bench"],
        description=__doc__,
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--dtype",
        default=None,
        help="float32, bfloat16 or float16 (default float32 on cpu, bfloat16 on cuda)",
    )
    p.add_argument("--lengths", type=_ints, default=None, help="sequence lengths T")
    p.add_argument("--head-dims", type=_ints, default=None, help="head dimensions d")
    p.add_argument(
        "--feature-multipliers",
        type=_floats,
        default=None,
        help="numbers of features as multiples of d (default 4)",
    )
    p.add_argument("--modes", type=_names, default=None, help="fwd, fwdbwd, decode")
    p.add_argument(
        "--impls",
        type=_names,
        default=None,
        help="ours, sdpa, performer, fla, triton (default: all importable; "
        "fla and triton on cuda only)",
    )
    p.add_argument("--non-causal", action="store_true", help="non-causal attention")
    p.add_argument("--batch", type=int, default=1, help="batch size (default: %(default)s)")
    p.add_argument("--heads", type=int, default=8, help="attention heads (default: %(default)s)")
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed runs per case, the median is reported (default: %(default)s)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--allocator",
        choices=("retain", "default"),
        default="retain",
        help="retain: keep freed CPU memory in the process (glibc's mmap and trim thresholds "
        "raised, kernelapprox.bench.allocator), so that no implementation pays page faults "
        "for memory it freed a call before; default: glibc as it is (default: %(default)s)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=30.0,
        help="skip longer T for an implementation once one run takes longer",
    )
    p.add_argument(
        "--memory",
        action="store_true",
        help="measure peak memory (a fresh process per case on CPU)",
    )
    p.add_argument(
        "--error-max-length",
        type=int,
        default=16384,
        help="compute the error against exact attention up to this T",
    )
    p.add_argument(
        "--decode-tokens",
        type=int,
        default=64,
        help="decode mode: tokens generated after the context (default: %(default)s)",
    )
    p.add_argument(
        "--input-std",
        type=float,
        default=1.0,
        help="standard deviation of the entries of q and k (default: %(default)s); the "
        "positive estimator's variance grows like exp(|q|^2/sqrt(d)), so 1.0 at d = 64 is "
        "far outside its useful range and 0.25-0.5 inside it",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="the full grid: T = 512..65536, d = 64 and 128, m = d, 2d, 4d, every mode",
    )
    add_common_options(
        p, writes="results.json, results.csv, table.txt and a plot", extra_formats=("table",)
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from kernelapprox._io import json_text
    from kernelapprox.bench import attention as bench

    device = _check_device(args.device)
    _check_options(args)
    dtype = args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    check_choice(dtype, "dtype", bench.DTYPES)
    modes = args.modes or (list(bench.MODES) if args.full else ["fwd"])
    for mode in modes:
        check_choice(mode, "mode", bench.MODES)
    for impl in args.impls or []:
        check_choice(impl, "impl", bench.IMPLS)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sweep = bench.Sweep(
        lengths=args.lengths
        or ([512 * 2**i for i in range(8)] if args.full else [512, 1024, 2048, 4096]),
        head_dims=args.head_dims or ([64, 128] if args.full else [64]),
        feature_multipliers=args.feature_multipliers or ([1, 2, 4] if args.full else [4]),
        modes=modes,
        impls=args.impls,
        causal=not args.non_causal,
        batch=args.batch,
        heads=args.heads,
        dtype=dtype,
        device=device,
        repeats=args.repeats,
        max_seconds=args.max_seconds,
        memory=args.memory,
        error_max_length=args.error_max_length,
        decode_tokens=args.decode_tokens,
        input_std=args.input_std,
        seed=args.seed,
    )
    if "decode" in modes and args.decode_tokens > min(sweep.lengths):
        raise ValueError(
            f"--decode-tokens must be <= the shortest of --lengths ({min(sweep.lengths)}) "
            f"for the decode mode (it decodes from a context of T tokens), got "
            f"{args.decode_tokens}"
        )

    if args.allocator == "retain":
        from kernelapprox.bench.allocator import retain_freed_memory

        retain_freed_memory()

    def progress(row: dict[str, Any]) -> None:
        if args.format != "json" and not args.no_progress:
            t = row.get("time_ms")
            shown = f"{t:.1f} ms" if isinstance(t, float) else row.get("status")
            print(
                f"  {row['impl']:>9} {row['mode']:>6} T={row['T']:<6} d={row['head_dim']} "
                f"m={row['n_features']}: {shown}",
                file=sys.stderr,
                flush=True,
            )

    with contextlib.redirect_stdout(sys.stderr):  # peers that print keep stdout to the table
        rows = sweep.run(progress)
    summary = bench.summarize(rows)
    env = bench.environment()  # once: it probes a fresh tensor and reads /proc/self/smaps
    if args.out:
        bench.write_results(rows, args.out, env=env)
    if args.format == "json":
        print(json_text({"rows": rows, "summary": summary, "environment": env}))
        return 0
    print(bench.format_table(rows))
    print("\nspeed-up of ours/triton (peer time / our time; in brackets: the same for CPU time):")
    for r in summary["speedups"]:
        cpu = r.get("cpu_time_speedup")
        print(
            f"  {r.get('impl', 'ours'):>6} {r['mode']:>6} T={r['T']:<6} d={r['head_dim']} "
            f"m={r['n_features']} vs {r['peer']:<9} {r['speedup']:.2f}x"
            + (f" ({cpu:.2f}x)" if cpu else "")
        )
    for name, T in summary["crossover_with_sdpa"].items():
        print(f"  crossover with sdpa ({name}): {'T = ' + str(T) if T else 'not reached'}")
    return 0
