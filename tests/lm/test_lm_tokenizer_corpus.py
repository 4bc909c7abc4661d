"""Byte tokenizer and the offline docstring corpus."""

from __future__ import annotations

import zlib

import pytest
import torch

from kernelapprox.lm import (
    ByteTokenizer,
    docstring_corpus,
    docstring_documents,
    evenly_spaced_windows,
    is_validation,
    random_windows,
)


def test_tokenizer_round_trip_and_bytes() -> None:
    tok = ByteTokenizer()
    text = "Return the 2-norm: ‖x‖ ≥ 0.\n"
    ids = tok.encode(text)
    assert ids.dtype == torch.long and ids.tolist() == list(text.encode("utf-8"))
    assert tok.decode(ids) == text
    assert tok.encode("").numel() == 0
    assert tok.decode([0xE2]) == "\ufffd"  # truncated UTF-8 is replaced, not an error
    with pytest.raises(TypeError, match="text"):
        tok.encode(b"bytes")
    with pytest.raises(ValueError, match="tokens"):
        tok.decode([256])


def test_documents_are_sorted_unique_and_the_split_is_by_crc() -> None:
    docs = docstring_documents(("numpy.linalg",))
    assert docs == sorted(set(docs)) and len(docs) > 10
    assert all(len(d) >= 40 and d == d.strip() for d in docs)
    # the split is a property of each document, not of its position
    for d in docs:
        assert is_validation(d) == (zlib.crc32(d.encode()) % 10 == 0)
    with pytest.raises(ValueError, match="modules"):
        docstring_documents(("no_such_module_xyz",))
    with pytest.raises(TypeError, match="modules"):
        docstring_documents("numpy")


def test_corpus_split_is_disjoint_and_fingerprinted() -> None:
    corpus = docstring_corpus(("numpy.linalg", "numpy.fft"), heldout_mod=3)
    again = docstring_corpus(("numpy.fft", "numpy.linalg"), heldout_mod=3)
    assert again.fingerprint == corpus.fingerprint  # module order does not matter
    docs = docstring_documents(("numpy.linalg", "numpy.fft"))
    held = [d for d in docs if is_validation(d, 3)]
    assert corpus.validation == "\n\n".join(held)
    assert corpus.train == "\n\n".join(d for d in docs if not is_validation(d, 3))
    assert corpus.n_validation_documents > 0 and corpus.n_train_documents > 0
    assert set(corpus.versions) == {"numpy"}
    assert corpus.tokens("validation").tolist() == list(corpus.validation.encode())
    with pytest.raises(ValueError, match="part"):
        corpus.tokens("test")
    with pytest.raises(ValueError, match="heldout_mod"):
        docstring_corpus(("numpy.linalg",), heldout_mod=1)


def test_random_windows_depend_only_on_seed_and_step() -> None:
    tokens = torch.arange(1000)
    x, y = random_windows(tokens, 4, 16, seed=3, step=7)
    x2, y2 = random_windows(tokens, 4, 16, seed=3, step=7)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)
    assert not torch.equal(random_windows(tokens, 4, 16, seed=3, step=8)[0], x)
    assert not torch.equal(random_windows(tokens, 4, 16, seed=4, step=7)[0], x)
    with pytest.raises(ValueError, match="tokens"):
        random_windows(torch.arange(10), 2, 16, seed=0, step=0)
    with pytest.raises(ValueError, match="step"):
        random_windows(tokens, 2, 16, seed=0, step=-1)
    vx, vy = evenly_spaced_windows(tokens, 3, 16)
    assert vx[0, 0] == 0 and vy[-1, -1] == 999 and vx.shape == (3, 16)
