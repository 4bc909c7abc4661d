"""Conversion of Hugging Face transformers models to feature attention, and distillation.

Everything runs on tiny randomly initialized models built from configs (no downloads)."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from kernelapprox.attention import FeatureAttention  # noqa: E402
from kernelapprox.integrations.convert import (  # noqa: E402
    ATTENTION_ATTR,
    convert,
    distill,
    feature_attentions,
    key_padding_from_mask,
    self_attention_modules,
)

VOCAB = 97


def tiny_bert(init: float = 0.2, seed: int = 0, layers: int = 2) -> torch.nn.Module:
    """A small BertModel with larger-than-default initial weights, so that attention is peaked
    (with the default 0.02 every attention row is nearly uniform and any map looks exact)."""
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        initializer_range=init,
    )
    return transformers.BertModel(config).eval()


def batch(seed: int = 0, B: int = 3, T: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (B, T), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    mask[2, 5:] = 0
    return ids, mask


class WordTokenizer:
    """A deterministic offline stand-in for a transformers tokenizer: words hashed to ids."""

    def __call__(self, texts, *, padding, truncation, max_length, return_tensors):
        rows = [
            [5 + zlib.crc32(w.encode()) % (VOCAB - 5) for w in t.split()][:max_length]
            for t in texts
        ]
        T = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), T, dtype=torch.long)
        mask = torch.zeros(len(rows), T, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return transformers.BatchEncoding({"input_ids": ids, "attention_mask": mask})


TEXTS = [" ".join(f"w{(i * 7 + j * 3) % 40}" for j in range(4 + i % 9)) for i in range(64)]


def layer0_attention_output(model, ids, mask):
    """Output of the first self-attention module (before its output projection)."""
    captured = []
    module = self_attention_modules(model)[0][1]
    handle = module.register_forward_hook(lambda m, a, out: captured.append(out[0]))
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    handle.remove()
    return captured[0]


# --------------------------------------------------------------------------- convert
def test_converted_model_keeps_weights_and_leaves_original_untouched():
    model = tiny_bert()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    impl = model.config._attn_implementation
    student = convert(model, feature_map="dct", seed=3)
    # the original: same weights, same attention implementation, no feature attention
    assert model.config._attn_implementation == impl
    assert not feature_attentions(model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    # the copy: every pretrained weight under its original name, equal and not shared
    after = student.state_dict()
    for k, v in before.items():
        assert torch.equal(after[k], v), k
        assert after[k].data_ptr() != model.state_dict()[k].data_ptr()
    added = set(after) - set(before)
    assert added and all(ATTENTION_ATTR in k for k in added)
    assert len(feature_attentions(student)) == 2


def test_converted_model_runs_with_the_original_shapes():
    model = tiny_bert()
    ids, mask = batch()
    student = convert(model, feature_map="positive", n_features=16)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask)
        out = student(input_ids=ids, attention_mask=mask)
    assert out.last_hidden_state.shape == ref.last_hidden_state.shape
    assert out.pooler_output.shape == ref.pooler_output.shape
    assert torch.isfinite(out.last_hidden_state).all()
    # the attention did change (16 features are not softmax attention)
    assert not torch.allclose(out.last_hidden_state, ref.last_hidden_state, atol=1e-3)


@pytest.mark.parametrize("feature_map", ["positive", "dct", "dct_released", "elu"])
def test_layer_output_is_feature_attention_of_the_pretrained_projections(feature_map):
    """Wiring check: the converted layer computes exactly FeatureAttention(q W_q, k W_k, v W_v)
    with the model's own projections, the 1/sqrt(d) scale and the padding mask."""
    model = tiny_bert()
    ids, mask = batch()
    student = convert(model, feature_map=feature_map, seed=5)
    got = layer0_attention_output(student, ids, mask)
    module = self_attention_modules(student)[0][1]
    with torch.no_grad():
        x = student.embeddings(input_ids=ids)
        B, T, _ = x.shape

        def heads(lin):
            return lin(x).view(B, T, 4, 8).transpose(1, 2)

        attn: FeatureAttention = getattr(module, ATTENTION_ATTR)
        want = attn(
            heads(module.query),
            heads(module.key),
            heads(module.value),
            scale=8**-0.5,
            key_padding_mask=mask == 0,
        ).transpose(1, 2)
    torch.testing.assert_close(got, want.reshape(B, T, 32), rtol=1e-5, atol=1e-6)


def test_padding_tokens_do_not_change_other_tokens():
    model = tiny_bert()
    student = convert(model, feature_map="positive", n_features=32, seed=1)
    ids, mask = batch()
    other = ids.clone()
    other[mask == 0] = (other[mask == 0] + 11) % VOCAB  # change only padded positions
    with torch.no_grad():
        a = student(input_ids=ids, attention_mask=mask).last_hidden_state
        b = student(input_ids=other, attention_mask=mask).last_hidden_state
    keep = mask.bool()
    torch.testing.assert_close(a[keep], b[keep], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(a[~keep], b[~keep])  # padded positions themselves did change
    # and a sequence padded in a batch equals the same sequence alone
    with torch.no_grad():
        alone = student(input_ids=ids[1:2, :8], attention_mask=mask[1:2, :8]).last_hidden_state
    torch.testing.assert_close(a[1, :8], alone[0], rtol=1e-5, atol=1e-5)


def test_error_falls_with_the_number_of_features():
    """Layer-0 attention output vs exact softmax attention (same inputs): the positive map is
    unbiased with variance ~ 1/m, so the relative error at m = 1024 must be well below the one
    at m = 16 (expected ratio sqrt(64) = 8 asymptotically; asserted > 3, averaged over 4
    seeds). Weights of scale 0.1 keep |q|, |k| moderate: with larger ones the variance of the
    positive features is so heavy-tailed that m = 1024 is still pre-asymptotic."""
    model = tiny_bert(init=0.1)
    ids, mask = batch()
    exact = layer0_attention_output(model, ids, mask)
    keep = mask.bool()

    def error(m):
        errs = []
        for seed in range(4):
            got = layer0_attention_output(convert(model, n_features=m, seed=seed), ids, mask)
            errs.append(((got - exact)[keep].norm() / exact[keep].norm()).item())
        return np.mean(errs)

    small, large = error(16), error(1024)
    assert large < small / 3, (small, large)
    # and at the model output, more features bring the student closer too
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask).last_hidden_state[keep]
        far = convert(model, n_features=16, seed=0)(input_ids=ids, attention_mask=mask)
        near = convert(model, n_features=1024, seed=0)(input_ids=ids, attention_mask=mask)
    err_far = (far.last_hidden_state[keep] - ref).norm() / ref.norm()
    err_near = (near.last_hidden_state[keep] - ref).norm() / ref.norm()
    assert err_near < err_far


def test_key_padding_from_mask_rejects_masks_it_cannot_express():
    keep = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    keep[0, 0, 0, 3] = False  # one query may not see key 3, the others may
    with pytest.raises(ValueError, match="key-padding"):
        key_padding_from_mask(keep, causal=False, q_len=4, k_len=4)
    causal = torch.tril(torch.ones(4, 4, dtype=torch.bool))[None, None]
    assert key_padding_from_mask(causal, causal=True, q_len=4, k_len=4) is None
    with pytest.raises(ValueError, match="key-padding"):
        key_padding_from_mask(causal, causal=False, q_len=4, k_len=4)
    additive = torch.zeros(2, 1, 3, 3)
    additive[1, :, :, 2] = torch.finfo(torch.float32).min
    pad = key_padding_from_mask(additive, causal=False, q_len=3, k_len=3)
    assert pad.tolist() == [[False, False, False], [False, False, True]]


def test_convert_rejects_models_without_attention_interface():
    with pytest.raises(ValueError, match="AttentionInterface"):
        convert(torch.nn.Linear(3, 3))
    with pytest.raises(ValueError, match="n_features"):
        convert(tiny_bert(), n_features=0)


# --------------------------------------------------------------------------- distill
def test_distillation_reduces_the_loss_and_trains_only_the_map():
    teacher = tiny_bert()
    student = convert(teacher, feature_map="positive", n_features=8, seed=0)
    frozen = {k: v.clone() for k, v in student.state_dict().items() if ATTENTION_ATTR not in k}
    result = distill(
        teacher,
        student,
        TEXTS,
        tokenizer=WordTokenizer(),
        steps=40,
        batch_size=8,
        lr=3e-2,
        progress=False,
    )
    assert result.steps == 40 and len(result.losses) == 40
    first, last = np.mean(result.losses[:5]), np.mean(result.losses[-5:])
    assert last < 0.7 * first, (first, last)
    for k, v in student.state_dict().items():
        if k in frozen:
            assert torch.equal(v, frozen[k]), k
    assert all(p.requires_grad for p in teacher.parameters())  # the teacher's flags restored


def test_distill_all_weights_changes_pretrained_weights():
    teacher = tiny_bert(layers=1)
    student = convert(teacher, feature_map="dct", seed=0)
    w0 = student.encoder.layer[0].attention.self.query.weight.clone()
    distill(
        teacher,
        student,
        TEXTS,
        tokenizer=WordTokenizer(),
        steps=3,
        batch_size=4,
        train="all",
        progress=False,
    )
    assert not torch.equal(student.encoder.layer[0].attention.self.query.weight, w0)
    assert torch.equal(teacher.encoder.layer[0].attention.self.query.weight, w0)


def test_resume_from_checkpoint_equals_an_uninterrupted_run(tmp_path):
    teacher = tiny_bert(layers=1)
    options = dict(tokenizer=WordTokenizer(), batch_size=6, lr=1e-2, seed=7, progress=False)
    full = convert(teacher, feature_map="positive", n_features=8, seed=1)
    r_full = distill(teacher, full, TEXTS, steps=12, **options)

    part = convert(teacher, feature_map="positive", n_features=8, seed=1)
    r1 = distill(teacher, part, TEXTS, steps=5, checkpoint_dir=tmp_path, **options)
    assert r1.steps == 5 and (tmp_path / "checkpoint.pt").exists()
    fresh = convert(teacher, feature_map="positive", n_features=8, seed=1)  # a new process
    r2 = distill(teacher, fresh, TEXTS, steps=12, checkpoint_dir=tmp_path, resume=True, **options)
    assert r2.steps == 12 and len(r2.losses) == 12
    np.testing.assert_allclose(r2.losses, r_full.losses, rtol=1e-5)
    for (k, a), (_, b) in zip(full.state_dict().items(), fresh.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.parametrize(
    "change, named",
    [
        ({"lr": 5e-3}, "lr"),
        ({"seed": 8}, "seed"),
        ({"batch_size": 5}, "batch_size"),
        ({"texts": TEXTS[:-1]}, "texts"),
    ],
)
def test_resume_with_other_options_refuses_and_names_them(tmp_path, change, named):
    """The checkpoint holds its config: continuing it with other options (or other training
    texts) would silently mix two runs, so it is refused before any step."""
    teacher = tiny_bert(layers=1)
    options = dict(tokenizer=WordTokenizer(), batch_size=6, lr=1e-2, seed=7, progress=False)
    distill(
        teacher,
        convert(teacher, feature_map="positive", n_features=8, seed=1),
        TEXTS,
        steps=2,
        checkpoint_dir=tmp_path,
        **options,
    )
    stored = (tmp_path / "checkpoint.pt").read_bytes()
    texts = change.pop("texts", TEXTS)
    student = convert(teacher, feature_map="positive", n_features=8, seed=1)
    with pytest.raises(ValueError, match=rf"other options: .*\b{named}\b"):
        distill(
            teacher,
            student,
            texts,
            steps=4,
            checkpoint_dir=tmp_path,
            resume=True,
            **{**options, **change},
        )
    assert (tmp_path / "checkpoint.pt").read_bytes() == stored
    assert json.loads((tmp_path / "progress.json").read_text())["step"] == 2


def test_distill_validates_its_input():
    teacher = tiny_bert(layers=1)
    student = convert(teacher, seed=0)
    tok = WordTokenizer()
    with pytest.raises(ValueError, match="train"):
        distill(teacher, student, TEXTS, tokenizer=tok, train="some")
    with pytest.raises(ValueError, match="texts"):
        distill(teacher, student, [], tokenizer=tok)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        distill(teacher, student, TEXTS, tokenizer=tok, resume=True)
    with pytest.raises(ValueError, match="convert"):
        distill(teacher, teacher, TEXTS, tokenizer=tok)
