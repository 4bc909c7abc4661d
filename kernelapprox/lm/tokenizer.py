"""A byte-level tokenizer: the token of a byte is its value, so the vocabulary is 256 and
nothing is downloaded.

Text is encoded as UTF-8 and every byte becomes one token in ``0..255``; decoding reverses it
(invalid UTF-8 from a model's samples is replaced, never an error). This is the tokenizer of
the small decoder of :mod:`kernelapprox.lm.model` used by the EST, APT and Any-Precision work.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

#: Number of distinct tokens: one per byte value.
VOCAB_SIZE = 256


class ByteTokenizer:
    """UTF-8 bytes as tokens (vocabulary ``0..255``).

    Examples
    --------
    >>> tok = ByteTokenizer()
    >>> tok.encode("héllo").tolist()
    [104, 195, 169, 108, 108, 111]
    >>> tok.decode(tok.encode("héllo"))
    'héllo'
    """

    vocab_size: int = VOCAB_SIZE

    def encode(self, text: str) -> torch.Tensor:
        """The tokens of ``text``: a 1-D ``torch.long`` tensor of its UTF-8 bytes."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        data = bytearray(text.encode("utf-8"))
        if not data:
            return torch.zeros(0, dtype=torch.long)
        return torch.frombuffer(data, dtype=torch.uint8).to(torch.long)

    def decode(self, tokens: torch.Tensor | Iterable[int]) -> str:
        """The text of ``tokens`` (invalid UTF-8 sequences become U+FFFD)."""
        values = tokens.tolist() if isinstance(tokens, torch.Tensor) else list(tokens)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < VOCAB_SIZE:
                raise ValueError(f"tokens must be integers in [0, {VOCAB_SIZE}), got {v!r}")
        return bytes(values).decode("utf-8", errors="replace")
