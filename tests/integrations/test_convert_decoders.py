"""Converted causal decoders (GPT-2, Llama with grouped-query attention): generation with the
key/value cache equals full recomputation token by token.

DiJiang's released code decodes wrongly with its cache (the new token attends only to key 0,
see shared/reference/dijiang.md section 2.4); here each cached step must reproduce the
logits of running the whole prefix again."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

# transformers >= 5.24 deprecates ``past_key_values=`` (FutureWarning): the tests pass the cache
# with the keyword the installed version takes (integrations.cache.cache_kwargs), and must stay
# silent
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")

from kernelapprox.integrations.cache import cache_kwargs, output_cache  # noqa: E402
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


def tiny(kind: str) -> torch.nn.Module:
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
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(config)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def trained(request):
    model = tiny(request.param)
    losses = train_from_scratch(model)
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5])  # it did learn something
    return model.eval()


def test_cached_decoding_equals_full_recomputation(trained):
    student = convert(trained, feature_map="positive", n_features=64, seed=0).eval()
    assert len(feature_attentions(student)) == 2
    prompt = pattern_batch(torch.Generator().manual_seed(1), B=3, T=6)
    with torch.no_grad():
        cached = student.generate(
            prompt, max_new_tokens=10, do_sample=False, use_cache=True, pad_token_id=0
        )
        full = student.generate(
            prompt, max_new_tokens=10, do_sample=False, use_cache=False, pad_token_id=0
        )
        assert torch.equal(cached, full)
        # token by token: logits of each cached step == logits of the whole prefix
        out = student(input_ids=cached[:, :6], use_cache=True)
        past = output_cache(out)
        for t in range(6, cached.shape[1]):
            step = student(
                input_ids=cached[:, t : t + 1], use_cache=True, **cache_kwargs(student, past)
            )
            past = output_cache(step)
            whole = student(input_ids=cached[:, : t + 1], use_cache=False).logits[:, -1]
            torch.testing.assert_close(step.logits[:, -1], whole, rtol=1e-4, atol=1e-4)


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


def test_state_cache_decoding_equals_full_recomputation(trained):
    """With FeatureStateCache each step attends from the recurrent state (no keys stored):
    the generated tokens and every step's logits equal running the whole prefix again, and
    the cache's memory does not grow with the generated length."""
    from kernelapprox.integrations.cache import FeatureStateCache

    student = convert(trained, feature_map="positive", n_features=64, seed=0).eval()
    prompt = pattern_batch(torch.Generator().manual_seed(1), B=3, T=6)
    with torch.no_grad():
        full = student.generate(
            prompt, max_new_tokens=10, do_sample=False, use_cache=False, pad_token_id=0
        )
        cache = FeatureStateCache()
        cached = student.generate(
            prompt,
            max_new_tokens=10,
            do_sample=False,
            **cache_kwargs(student, cache),
            pad_token_id=0,
        )
        assert torch.equal(cached, full)
        assert all(layer.keys is None for layer in cache.layers)

        cache = FeatureStateCache()
        student(input_ids=cached[:, :6], **cache_kwargs(student, cache), use_cache=True)
        size_after_prompt = cache.nbytes
        assert size_after_prompt > 0
        for t in range(6, cached.shape[1]):
            step = student(
                input_ids=cached[:, t : t + 1], use_cache=True, **cache_kwargs(student, cache)
            )
            whole = student(input_ids=cached[:, : t + 1], use_cache=False).logits[:, -1]
            torch.testing.assert_close(step.logits[:, -1], whole, rtol=1e-4, atol=1e-4)
            assert cache.get_seq_length() == t + 1
        assert cache.nbytes == size_after_prompt


def test_state_cache_respects_left_padding(trained):
    """A left-padded batch decodes each row as if it were alone (padding keys never enter
    the state)."""
    from kernelapprox.integrations.cache import FeatureStateCache

    student = convert(trained, feature_map="positive", n_features=64, seed=0).eval()
    g = torch.Generator().manual_seed(3)
    short, long = pattern_batch(g, B=1, T=4), pattern_batch(g, B=1, T=7)
    ids = torch.cat((torch.cat((torch.zeros(1, 3, dtype=torch.long), short), 1), long))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    with torch.no_grad():
        batched = student.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=6,
            do_sample=False,
            **cache_kwargs(student, FeatureStateCache()),
            pad_token_id=0,
        )
        alone = student.generate(
            short,
            max_new_tokens=6,
            do_sample=False,
            **cache_kwargs(student, FeatureStateCache()),
            pad_token_id=0,
        )
    assert torch.equal(batched[0, 3:], alone[0])


def test_state_cache_refuses_an_unconverted_model(trained):
    from kernelapprox.integrations.cache import FeatureStateCache

    ids = pattern_batch(torch.Generator().manual_seed(4), B=1, T=5)
    cache = FeatureStateCache()
    with torch.no_grad():
        trained(input_ids=ids, **cache_kwargs(trained, cache), use_cache=True)
        with pytest.raises(RuntimeError, match="not consumed by feature attention"):
            trained(input_ids=ids[:, :1], **cache_kwargs(trained, cache), use_cache=True)


def test_state_cache_beam_search_runs(trained):
    from kernelapprox.integrations.cache import FeatureStateCache

    student = convert(trained, feature_map="positive", n_features=64, seed=0).eval()
    prompt = pattern_batch(torch.Generator().manual_seed(5), B=2, T=5)
    with torch.no_grad():
        beams = student.generate(
            prompt,
            max_new_tokens=5,
            num_beams=3,
            do_sample=False,
            **cache_kwargs(student, FeatureStateCache()),
            pad_token_id=0,
        )
        full = student.generate(
            prompt, max_new_tokens=5, num_beams=3, do_sample=False, use_cache=False, pad_token_id=0
        )
    assert torch.equal(beams, full)


def test_state_cache_with_gpt_neox():
    """GPT-NeoX passes the cache as ``layer_past``: the state cache still finds it."""
    from kernelapprox.integrations.cache import FeatureStateCache

    torch.manual_seed(0)
    config = transformers.GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
    )
    model = transformers.GPTNeoXForCausalLM(config).eval()
    student = convert(model, feature_map="positive", n_features=32, seed=0).eval()
    ids = pattern_batch(torch.Generator().manual_seed(6), B=2, T=6)
    with torch.no_grad():
        full = student.generate(
            ids, max_new_tokens=8, do_sample=False, use_cache=False, pad_token_id=0
        )
        cache = FeatureStateCache()
        cached = student.generate(
            ids, max_new_tokens=8, do_sample=False, **cache_kwargs(student, cache), pad_token_id=0
        )
    assert torch.equal(cached, full)
    assert cache.get_seq_length() == full.shape[1] - 1 and cache.nbytes > 0
