"""An offline English-and-code corpus: the docstrings of installed scientific packages.

The corpus needs no download: it is built from the docstrings of modules that every
installation of kernelapprox has (numpy and scipy are dependencies). It is deterministic for a
given set of installed versions:

* the modules are visited in sorted order, their public members in sorted order;
* a document is the cleaned docstring (:func:`inspect.getdoc`) of a module or of a public
  callable, kept when it has at least ``min_chars`` characters; duplicates (re-exported
  functions) are kept once and the documents are sorted;
* the split is fixed and independent of the order of collection: a document belongs to the
  validation set when the CRC-32 of its UTF-8 text is ``0 mod heldout_mod`` (default 10, so
  about 10 % of the documents), otherwise to the training set.

Docstrings change between package versions, so :class:`Corpus` records the versions and a
SHA-256 fingerprint of the text; two runs with the same fingerprint saw the same data.
``kernelapprox convert`` builds a sentence corpus from docstrings in the same spirit (its own
filter keeps single prose sentences); it could reuse :func:`docstring_documents`.

Batches are drawn by :func:`random_windows` as a function of ``(seed, step)`` only, so two
training runs with the same seed see the same data in the same order.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from kernelapprox._validation import as_seed_sequence, check_positive_int
from kernelapprox.lm.tokenizer import ByteTokenizer

#: Modules whose docstrings make the default corpus (dependencies of kernelapprox), sorted.
DEFAULT_MODULES: tuple[str, ...] = (
    "numpy",
    "numpy.fft",
    "numpy.linalg",
    "numpy.random",
    "scipy.integrate",
    "scipy.interpolate",
    "scipy.linalg",
    "scipy.optimize",
    "scipy.signal",
    "scipy.special",
    "scipy.stats",
)

#: Separator between documents in the concatenated text.
SEPARATOR = "\n\n"


def docstring_documents(
    modules: Sequence[str] = DEFAULT_MODULES, *, min_chars: int = 40
) -> list[str]:
    """The distinct docstrings of ``modules`` and their public callables, sorted.

    Parameters
    ----------
    modules : sequence of str
        Importable module names; they are visited in sorted order. A module that cannot be
        imported raises ``ValueError`` (a silently smaller corpus would change results).
    min_chars : int
        Shorter docstrings are dropped.
    """
    if isinstance(modules, str) or not all(isinstance(m, str) for m in modules):
        raise TypeError("modules must be a sequence of module names (str)")
    if not modules:
        raise ValueError("modules must name at least one module")
    min_chars = check_positive_int(min_chars, "min_chars")
    found: set[str] = set()
    for module in _import_all(modules).values():
        docs = [inspect.getdoc(module) or ""]
        for attr in sorted(dir(module)):
            if attr.startswith("_"):
                continue
            try:
                obj = getattr(module, attr)
            except Exception:  # lazily imported attributes may fail
                continue
            if callable(obj):
                docs.append(inspect.getdoc(obj) or "")
        for doc in docs:
            doc = _stable_text(doc)
            if len(doc) >= min_chars:
                found.add(doc)
    return sorted(found)


def _import_all(modules: Sequence[str]) -> dict[str, Any]:
    """Import every one of ``modules`` (sorted) before any docstring is read: importing scipy
    edits docstrings of numpy functions it re-exports (``numpy.sinc`` gains an Array-API
    note), so reading numpy before or after scipy's import would give two corpora."""
    loaded = {}
    for name in sorted(set(modules)):
        try:
            loaded[name] = importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"modules: cannot import {name!r} ({exc})") from None
    return loaded


#: A displayed set of strings, ``{'b', 'a'}``: Python prints its items in hash order, which
#: changes from process to process (scipy's deprecation notes list argument names so).
_STRING_SET = re.compile(r"\{'[^'{}]*'(?:, '[^'{}]*')+\}")


def _stable_text(doc: str) -> str:
    """``doc`` without what changes from one process to the next: lines of example output
    marked ``# may vary`` (scipy.stats draws them at import time, from the global random
    state) are dropped and displayed string sets are sorted; trailing spaces are stripped."""
    lines = [line.rstrip() for line in doc.strip().splitlines()]
    lines = [line for line in lines if not line.endswith("# may vary")]
    text = "\n".join(lines)
    return _STRING_SET.sub(
        lambda m: "{" + ", ".join(sorted(m.group(0)[1:-1].split(", "))) + "}", text
    )


def labelled_docstrings(
    modules: Sequence[str] = DEFAULT_MODULES, *, min_chars: int = 40
) -> list[tuple[str, str]]:
    """``(docstring, module)`` pairs: a classification task (which module a docstring is from).

    Each module's documents are :func:`docstring_documents` of that module alone, read after
    all of ``modules`` are imported; a document found in more than one module (a re-exported
    function) is dropped, since its label would be ambiguous. Sorted by (module, document).
    The same in every call of every process with the same installed packages.
    """
    if isinstance(modules, str) or not all(isinstance(m, str) for m in modules):
        raise TypeError("modules must be a sequence of module names (str)")
    # all of them first (see _import_all): module by module, numpy's docstrings were read
    # before scipy's import edited them, in the first call of a process only, so the first
    # call kept numpy.sinc twice (as two texts) and later calls dropped it as re-exported
    _import_all(modules)
    per_module = {name: docstring_documents([name], min_chars=min_chars) for name in modules}
    seen: dict[str, int] = {}
    for docs in per_module.values():
        for doc in docs:
            seen[doc] = seen.get(doc, 0) + 1
    pairs = sorted((name, doc) for name, docs in per_module.items() for doc in docs)
    return [(doc, name) for name, doc in pairs if seen[doc] == 1]


def is_validation(document: str, heldout_mod: int = 10) -> bool:
    """Whether ``document`` is held out: ``crc32(utf8(document)) % heldout_mod == 0``."""
    return zlib.crc32(document.encode("utf-8")) % heldout_mod == 0


@dataclass(frozen=True)
class Corpus:
    """A fixed train/validation split of a text corpus.

    Attributes
    ----------
    train, validation : str
        The documents of each part, in sorted order, joined by :data:`SEPARATOR`.
    n_train_documents, n_validation_documents : int
        How many documents each part holds.
    modules : tuple of str
        The modules the documents came from.
    versions : dict
        ``{package: version}`` of the top-level packages of ``modules``.
    fingerprint : str
        SHA-256 of ``train + "\\0" + validation``: equal fingerprints, equal data.
    """

    train: str
    validation: str
    n_train_documents: int
    n_validation_documents: int
    modules: tuple[str, ...]
    versions: dict[str, str]
    fingerprint: str

    def tokens(self, part: str = "train") -> torch.Tensor:
        """The byte tokens (:class:`~kernelapprox.lm.tokenizer.ByteTokenizer`) of ``part``."""
        if part not in ("train", "validation"):
            raise ValueError(f"part must be 'train' or 'validation', got {part!r}")
        return ByteTokenizer().encode(self.train if part == "train" else self.validation)


@lru_cache(maxsize=4)
def _build(modules: tuple[str, ...], min_chars: int, heldout_mod: int) -> Corpus:
    docs = docstring_documents(modules, min_chars=min_chars)
    train = [d for d in docs if not is_validation(d, heldout_mod)]
    validation = [d for d in docs if is_validation(d, heldout_mod)]
    if not train or not validation:
        raise ValueError(
            f"modules: the corpus of {list(modules)} has {len(train)} training and "
            f"{len(validation)} validation documents; both must be non-empty"
        )
    versions: dict[str, str] = {}
    for top in sorted({m.split(".")[0] for m in modules}):
        versions[top] = str(getattr(importlib.import_module(top), "__version__", "unknown"))
    train_text, validation_text = SEPARATOR.join(train), SEPARATOR.join(validation)
    digest = hashlib.sha256(f"{train_text}\0{validation_text}".encode()).hexdigest()
    return Corpus(
        train=train_text,
        validation=validation_text,
        n_train_documents=len(train),
        n_validation_documents=len(validation),
        modules=tuple(sorted(set(modules))),
        versions=versions,
        fingerprint=digest,
    )


def docstring_corpus(
    modules: Sequence[str] = DEFAULT_MODULES, *, min_chars: int = 40, heldout_mod: int = 10
) -> Corpus:
    """The docstring corpus of ``modules`` with its fixed split (cached per process).

    Parameters
    ----------
    modules : sequence of str
        See :func:`docstring_documents`.
    min_chars : int
        Shorter docstrings are dropped.
    heldout_mod : int
        A document is held out when ``crc32(text) % heldout_mod == 0`` (>= 2).
    """
    if isinstance(modules, str) or not all(isinstance(m, str) for m in modules):
        raise TypeError("modules must be a sequence of module names (str)")
    heldout_mod = check_positive_int(heldout_mod, "heldout_mod", minimum=2)
    return _build(
        tuple(sorted(set(modules))), check_positive_int(min_chars, "min_chars"), heldout_mod
    )


def _step_generator(seed: Any, step: int) -> torch.Generator:
    """A generator that depends only on ``(seed, step)`` (spawn key ``(step,)``)."""
    root = as_seed_sequence(seed)
    child = np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, step))
    return torch.Generator().manual_seed(int(child.generate_state(1, dtype=np.uint64)[0]))


def random_windows(
    tokens: torch.Tensor, batch_size: int, context: int, *, seed: Any, step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets of ``batch_size`` random windows of length ``context``.

    The window starts are uniform on ``[0, len(tokens) - context - 1]`` and depend only on
    ``(seed, step)``: two runs with the same seed see the same batches in the same order.

    Returns
    -------
    (x, y) : tensors of shape ``(batch_size, context)``; ``y[:, t] = tokens[start + t + 1]``.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    context = check_positive_int(context, "context")
    step = check_positive_int(step, "step", minimum=0)
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 1:
        raise TypeError("tokens must be a 1-D torch tensor of token ids")
    if tokens.numel() < context + 2:
        raise ValueError(
            f"tokens must hold at least context + 2 = {context + 2} tokens, got {tokens.numel()}"
        )
    gen = _step_generator(seed, step)
    starts = torch.randint(0, tokens.numel() - context, (batch_size,), generator=gen)
    offsets = starts[:, None] + torch.arange(context + 1)
    windows = tokens[offsets]
    return windows[:, :-1], windows[:, 1:]


def evenly_spaced_windows(
    tokens: torch.Tensor, n_windows: int, context: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_windows`` fixed windows with evenly spaced starts (a deterministic validation set).

    Returns ``(x, y)`` as :func:`random_windows`.
    """
    n_windows = check_positive_int(n_windows, "n_windows")
    context = check_positive_int(context, "context")
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 1:
        raise TypeError("tokens must be a 1-D torch tensor of token ids")
    if tokens.numel() < context + 2:
        raise ValueError(
            f"tokens must hold at least context + 2 = {context + 2} tokens, got {tokens.numel()}"
        )
    starts = torch.linspace(0, tokens.numel() - context - 1, n_windows).long()
    windows = tokens[starts[:, None] + torch.arange(context + 1)]
    return windows[:, :-1], windows[:, 1:]
