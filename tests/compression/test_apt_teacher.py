"""APT's self-distillation teacher: refreshed when the evaluation loss improves, frozen as the
student computed at that moment (masks and adapters included)."""

from __future__ import annotations

import math

import pytest
import torch

from kernelapprox.compression.pruning import MaskHooks, bert_sites
from kernelapprox.compression.pruning.schedule import pruning_steps
from tests.compression.test_apt_cli import _tiny_task
from tests.compression.test_pruning_bert import _tiny_bert

transformers = pytest.importorskip("transformers")
train = pytest.importorskip("kernelapprox.compression.pruning.train")


def _student(seed=0):
    """A tiny float64 BERT encoder with a head and adapters whose B is not zero."""
    backbone, _, _ = _tiny_bert(seed)
    model = train.Encoder(backbone, 3, seed).double()
    adapters = train.add_adapters(model.backbone, train.ADAPTED, 2, seed=seed)
    gen = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for a in adapters.values():
            a.lora_b.copy_(torch.randn(a.lora_b.shape, generator=gen, dtype=torch.float64))
    ids = torch.randint(0, 50, (3, 7), generator=gen)
    attention = torch.ones(3, 7, dtype=torch.long)
    attention[2, 4:] = 0
    return model, adapters, ids, attention


MASKS = {
    "layers.0.heads": torch.tensor([True, False, True, True]),
    "layers.1.heads": torch.tensor([False, True, False, True]),
    "layers.0.neurons": torch.arange(24) % 2 == 0,
    "layers.1.neurons": torch.arange(24) >= 10,
}


def test_frozen_student_computes_what_the_masked_student_computes_and_stays():
    model, adapters, ids, attention = _student()
    sites = bert_sites(model.backbone)
    hooks = MaskHooks(sites, MASKS)
    with torch.no_grad(), hooks:
        model.eval()
        logits, pooled = model(ids, attention)
        teacher = train.frozen_student(model, MASKS)
        t_logits, t_pooled = teacher(ids, attention)
        torch.testing.assert_close(t_logits, logits, rtol=0, atol=1e-12)
        torch.testing.assert_close(t_pooled, pooled, rtol=0, atol=1e-12)
        # the student moves on: other masks, other adapter weights; the teacher does not
        hooks.update({name: ~m for name, m in MASKS.items()})
        for a in adapters.values():
            a.lora_b.mul_(-3.0)
        assert not torch.allclose(model(ids, attention)[0], logits)
        torch.testing.assert_close(teacher(ids, attention)[0], t_logits, rtol=0, atol=0)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert train._encoder_params(teacher) < train._encoder_params(model)  # physically pruned


def test_best_teacher_refreshes_only_on_a_lower_loss():
    model = _student(seed=1)[0]
    keeper = train.BestTeacher()
    losses = [1.0, 0.8, 0.8, 0.9, math.nan, 0.5, 0.7]
    teachers = []
    for step, loss in enumerate(losses):
        keeper.offer(step, model, {}, loss)
        teachers.append(keeper.model)
    assert [c["refreshed"] for c in keeper.checks] == [True, True, False, False, False, True, False]
    assert [c["step"] for c in keeper.checks] == list(range(7))
    assert keeper.best == 0.5
    assert teachers[1] is teachers[2] is teachers[3] is teachers[4] is not teachers[0]
    assert teachers[5] is teachers[6] is not teachers[4]


def test_check_steps_cover_warm_up_updates_and_the_rest():
    updates = pruning_steps(6, 42)
    steps = train.teacher_check_steps(60, 6, 42, updates)
    assert steps[0] == 5 and set(updates) <= set(steps)
    assert [s for s in steps if s > 42] == [46, 50, 54, 58]
    assert steps == sorted(set(steps)) and steps[-1] < 60
    assert train.teacher_check_steps(10, 1, 7, pruning_steps(1, 7))[0] == 0


def test_fit_refreshes_the_teacher_by_the_running_minimum(monkeypatch):
    monkeypatch.setattr(train, "load_task", _tiny_task)
    config = train.APTConfig(
        model="tiny-bert", steps=20, n_train=16, n_test=8, n_eval=12, max_length=16,
        batch_size=4, distill=1.0, seed=2,
    )  # fmt: skip
    base, data = train.prepare(config)
    assert data["eval_ids"].shape[0] == 12 and data["fingerprint"]["n_eval"] == 12
    _, result = train.fit_method("apt", config, base, data)
    checks = result["teacher_checks"]
    t_warm, t_end = config.window
    assert [c["step"] for c in checks] == train.teacher_check_steps(
        20, t_warm, t_end, pruning_steps(t_warm, t_end)
    )
    best, expected = math.inf, []
    for c in checks:
        expected.append(c["eval_loss"] < best)
        best = min(best, c["eval_loss"])
    assert [c["refreshed"] for c in checks] == expected and expected[0]
    assert all(math.isfinite(c["eval_loss"]) for c in checks)
    _, plain = train.fit_method(
        "apt", train.APTConfig(**{**config.__dict__, "distill": 0.0}), base, data
    )
    assert "teacher_checks" not in plain


def test_eval_split_is_outside_train_and_test_and_leaves_train_alone():
    pytest.importorskip("numpy")
    plain = train.load_task(train.APTConfig(n_train=64, n_test=16, seed=5))
    distilled = train.load_task(
        train.APTConfig(n_train=64, n_test=16, n_eval=32, distill=0.5, seed=5)
    )
    assert "eval" not in plain and len(distilled["eval"][0]) == 32
    for split in ("train", "test"):
        assert distilled[split][0] == plain[split][0]
        assert torch.equal(distilled[split][1], plain[split][1])
    used = set(plain["train"][0]) | set(plain["test"][0])
    assert not used & set(distilled["eval"][0])
    fp, fp_plain = train.task_fingerprint(distilled), train.task_fingerprint(plain)
    assert fp["crc32"] == fp_plain["crc32"] and "eval_crc32" in fp and "eval_crc32" not in fp_plain
    with pytest.raises(ValueError, match="n_eval"):
        train.load_task(train.APTConfig(n_train=1400, n_eval=100, distill=1.0))
