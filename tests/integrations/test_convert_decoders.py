"""Converted causal decoders (GPT-2, Llama with grouped-query attention): generation with the
key/value cache equals full recomputation token by token.

DiJiang's released code decodes wrongly with its cache (the new token attends only to key 0,
see shared/reference/dijiang.md section 2.4); here each cached step must reproduce the
logits of running the whole prefix again."""

from __future__ import annotations

from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")

# transformers >= 5.24 deprecates ``past_key_values=`` (FutureWarning): the tests pass the cache
# with the keyword the installed version takes (integrations.cache.cache_kwargs), and must stay
# silent
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")

from kernelapprox.integrations.cache import (  # noqa: E402
    FeatureStateCache,
    cache_kwargs,
    output_cache,
)
from kernelapprox.integrations.convert import convert, feature_attentions  # noqa: E402

VOCAB = 16


def pattern_batch(g: torch.Generator, B: int = 16, T: int = 24) -> torch.Tensor:
    """Sequences ``s, s + k, s + 2k, ...`` mod VOCAB: learnable from the context."""
    start = torch.randint(0, VOCAB, (B, 1), generator=g)
    step = torch.randint(1, 4, (B, 1), generator=g)
    return (start + step * torch.arange(T)) % VOCAB


def train_from_scratch(model: torch.nn.Module, steps: int = 60) -> list[float]:
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    model.train()
    for _ in range(steps):
        ids = pattern_batch(g)
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


#: Width 32, MLP 64, 2 layers of 4 heads, 64 positions: Llama's and GPT-NeoX's config names.
SIZES = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=64,
)


def tiny(kind: str) -> torch.nn.Module:
    """A randomly initialized decoder (seed 0) of :data:`SIZES`: ``gpt2`` (no dropout),
    ``llama`` (grouped-query attention, 2 key/value heads) or ``gpt_neox``."""
    torch.manual_seed(0)
    if kind == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=VOCAB,
            n_positions=64,
            n_embd=32,
            n_layer=2,
            n_head=4,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
        return transformers.GPT2LMHeadModel(config)
    if kind == "llama":
        config = transformers.LlamaConfig(vocab_size=VOCAB, num_key_value_heads=2, **SIZES)
        return transformers.LlamaForCausalLM(config)
    if kind == "gpt_neox":
        return transformers.GPTNeoXForCausalLM(
            transformers.GPTNeoXConfig(vocab_size=VOCAB, **SIZES)
        )
    raise ValueError(f"kind must be gpt2, llama or gpt_neox, got {kind!r}")


def decode(
    model: torch.nn.Module, ids: torch.Tensor, new_tokens: int, **kwargs: Any
) -> torch.Tensor:
    """``model.generate`` without sampling (pad token 0): prompt and ``new_tokens`` tokens."""
    return model.generate(ids, max_new_tokens=new_tokens, do_sample=False, pad_token_id=0, **kwargs)


def assert_step_equals_prefix(
    model: torch.nn.Module, tokens: torch.Tensor, t: int, cache: Any
) -> Any:
    """Token ``t`` alone with ``cache`` gives the last logits of running ``tokens[:, : t + 1]``
    without a cache; returns the cached step's output."""
    step = model(input_ids=tokens[:, t : t + 1], use_cache=True, **cache_kwargs(model, cache))
    whole = model(input_ids=tokens[:, : t + 1], use_cache=False).logits[:, -1]
    torch.testing.assert_close(step.logits[:, -1], whole, rtol=1e-4, atol=1e-4)
    return step


def assert_state_cache_decodes_as_without(
    model: torch.nn.Module, prompt: torch.Tensor, new_tokens: int
) -> tuple[torch.Tensor, FeatureStateCache]:
    """Decoding with a fresh :class:`FeatureStateCache` gives the tokens of decoding without a
    cache; returns those tokens and the cache."""
    full = decode(model, prompt, new_tokens, use_cache=False)
    cache = FeatureStateCache()
    cached = decode(model, prompt, new_tokens, **cache_kwargs(model, cache))
    assert torch.equal(cached, full)
    return cached, cache


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def trained(request):
    model = tiny(request.param)
    losses = train_from_scratch(model)
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5])  # it did learn something
    return model.eval()


@pytest.fixture
def student(trained):
    """``trained`` with positive random-feature attention, 64 features."""
    return convert(trained, feature_map="positive", n_features=64, seed=0).eval()


def test_cached_decoding_equals_full_recomputation(student):
    assert len(feature_attentions(student)) == 2
    prompt = pattern_batch(torch.Generator().manual_seed(1), B=3, T=6)
    with torch.no_grad():
        cached = decode(student, prompt, 10, use_cache=True)
        full = decode(student, prompt, 10, use_cache=False)
        assert torch.equal(cached, full)
        # token by token: logits of each cached step == logits of the whole prefix
        out = student(input_ids=cached[:, :6], use_cache=True)
        past = output_cache(out)
        for t in range(6, cached.shape[1]):
            past = output_cache(assert_step_equals_prefix(student, cached, t, past))


def test_converted_decoder_is_causal(trained):
    """Changing a later token never changes an earlier position's logits."""
    student = convert(trained, feature_map="dct", seed=0).eval()
    ids = pattern_batch(torch.Generator().manual_seed(2), B=2, T=12)
    other = ids.clone()
    other[:, 8:] = (other[:, 8:] + 5) % VOCAB
    with torch.no_grad():
        a = student(input_ids=ids).logits
        b = student(input_ids=other).logits
    torch.testing.assert_close(a[:, :8], b[:, :8], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_state_cache_decoding_equals_full_recomputation(student):
    """With FeatureStateCache each step attends from the recurrent state (no keys stored):
    the generated tokens and every step's logits equal running the whole prefix again, and
    the cache's memory does not grow with the generated length."""
    prompt = pattern_batch(torch.Generator().manual_seed(1), B=3, T=6)
    with torch.no_grad():
        cached, cache = assert_state_cache_decodes_as_without(student, prompt, 10)
        assert all(layer.keys is None for layer in cache.layers)

        cache = FeatureStateCache()
        student(input_ids=cached[:, :6], **cache_kwargs(student, cache), use_cache=True)
        size_after_prompt = cache.nbytes
        assert size_after_prompt > 0
        for t in range(6, cached.shape[1]):
            assert_step_equals_prefix(student, cached, t, cache)
            assert cache.get_seq_length() == t + 1
        assert cache.nbytes == size_after_prompt


def test_state_cache_respects_left_padding(student):
    """A left-padded batch decodes each row as if it were alone (padding keys never enter
    the state)."""
    g = torch.Generator().manual_seed(3)
    short, long = pattern_batch(g, B=1, T=4), pattern_batch(g, B=1, T=7)
    ids = torch.cat((torch.cat((torch.zeros(1, 3, dtype=torch.long), short), 1), long))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    with torch.no_grad():
        batched = decode(
            student, ids, 6, attention_mask=mask, **cache_kwargs(student, FeatureStateCache())
        )
        alone = decode(student, short, 6, **cache_kwargs(student, FeatureStateCache()))
    assert torch.equal(batched[0, 3:], alone[0])


def test_state_cache_refuses_an_unconverted_model(trained):
    ids = pattern_batch(torch.Generator().manual_seed(4), B=1, T=5)
    cache = FeatureStateCache()
    with torch.no_grad():
        trained(input_ids=ids, **cache_kwargs(trained, cache), use_cache=True)
        with pytest.raises(RuntimeError, match="not consumed by feature attention"):
            trained(input_ids=ids[:, :1], **cache_kwargs(trained, cache), use_cache=True)


def test_state_cache_beam_search_runs(student):
    prompt = pattern_batch(torch.Generator().manual_seed(5), B=2, T=5)
    with torch.no_grad():
        beams = decode(
            student, prompt, 5, num_beams=3, **cache_kwargs(student, FeatureStateCache())
        )
        full = decode(student, prompt, 5, num_beams=3, use_cache=False)
    assert torch.equal(beams, full)


def test_state_cache_with_gpt_neox():
    """GPT-NeoX passes the cache as ``layer_past``: the state cache still finds it."""
    model = tiny("gpt_neox").eval()
    student = convert(model, feature_map="positive", n_features=32, seed=0).eval()
    ids = pattern_batch(torch.Generator().manual_seed(6), B=2, T=6)
    with torch.no_grad():
        cached, cache = assert_state_cache_decodes_as_without(student, ids, 8)
    assert cache.get_seq_length() == cached.shape[1] - 1 and cache.nbytes > 0
