"""Deep LoRA adapter (notes §1.4)."""

from __future__ import annotations

import copy

import pytest
import torch

from kernelapprox.dynamics import DeepLoRA, inject_deep_lora

F64 = torch.float64


def _base(d_in, d_out, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(d_in, d_out, dtype=F64)


@pytest.mark.parametrize(("d_in", "d_out"), [(12, 12), (12, 7), (7, 12)])
@pytest.mark.parametrize("eps", [1e-3, 0.1])
def test_adapter_starts_within_eps_to_the_L_of_base(d_in, d_out, eps):
    layer = DeepLoRA(_base(d_in, d_out), depth=3, eps=eps, seed=1)
    x = torch.randn(5, d_in, dtype=F64)
    with torch.no_grad():
        base = layer.base(x)
        diff = torch.linalg.norm(layer(x) - base, dim=1)
    # ||Delta W(0)||_2 <= eps^L, plus the rounding of the subtraction of two O(1) outputs
    rounding = 64 * torch.finfo(F64).eps * torch.linalg.norm(base, dim=1)
    assert bool((diff <= eps**3 * torch.linalg.norm(x, dim=1) * (1 + 1e-12) + rounding).all())
    assert float(diff.max()) > 0  # the factors are really there
    assert float(torch.linalg.matrix_norm(layer.delta_weight().detach(), ord=2)) <= eps**3 * (
        1 + 1e-12
    )
    torch.testing.assert_close(layer(x), layer.base(x) + x @ layer.delta_weight().T)


def test_gradients_flow_to_factors_only():
    layer = DeepLoRA(_base(6, 4), eps=0.1, seed=2)
    layer(torch.randn(3, 6, dtype=F64)).square().sum().backward()
    assert all(f.grad is not None and float(f.grad.norm()) > 0 for f in layer.factors)
    assert layer.base.weight.grad is None and not layer.base.weight.requires_grad


@pytest.mark.parametrize("eps", [1e-3, 0.1])
def test_compression_preserves_the_first_step(eps):
    # Square layer, batch gradient dl/dDeltaW of rank <= 2 = rank/2: the first GD step of the
    # compressed adapter (outer factors frozen) changes DeltaW exactly as the full one does.
    d, lr = 12, 0.5
    full = DeepLoRA(_base(d, d), eps=eps, seed=3)
    x, y = torch.randn(2, d, dtype=F64), torch.randn(2, d, dtype=F64)

    def loss_fn(m):
        return 0.5 * (m(x) - y).square().sum()

    small = copy.deepcopy(full).compress(loss_fn, rank=4)
    assert small.compressed and small.width == 4
    before = [m.delta_weight().detach().clone() for m in (full, small)]
    for m, gamma in ((full, 1.0), (small, 0.0)):
        opt = torch.optim.SGD(m.parameter_groups(lr, gamma))
        opt.zero_grad()
        loss_fn(m).backward()
        opt.step()
    step_full = full.delta_weight().detach() - before[0]
    step_small = small.delta_weight().detach() - before[1]
    assert float(step_full.norm()) > 0
    assert float((step_full - step_small).norm() / step_full.norm()) < 1e-10


def test_compressed_outer_factors_train_with_gamma():
    layer = DeepLoRA(_base(8, 5), eps=0.1, seed=4)
    x = torch.randn(3, 8, dtype=F64)
    layer.compress(lambda m: m(x).square().sum(), rank=2)
    assert layer.left.shape == (5, 2) and layer.right.shape == (8, 2)
    groups = layer.parameter_groups(1e-2, 0.5)
    assert [g["lr"] for g in groups] == [1e-2, 5e-3]
    assert len(layer.parameter_groups(1e-2, 0.0)) == 1 and not layer.left.requires_grad


def test_compress_validates():
    layer = DeepLoRA(_base(8, 8), eps=0.1, seed=5)
    x = torch.randn(3, 8, dtype=F64)
    with pytest.raises(ValueError, match="even"):
        layer.compress(lambda m: m(x).sum(), rank=3)
    with pytest.raises(ValueError, match="full-width"):
        DeepLoRA(_base(8, 8), width=4).compress(lambda m: m(x).sum(), rank=2)
    with pytest.raises(TypeError, match=r"nn\.Linear"):
        DeepLoRA(torch.nn.Conv1d(2, 2, 1))


def test_inject_deep_lora_replaces_named_linears():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    x = torch.randn(3, 4)
    before = net(x)
    adapters = inject_deep_lora(net, ["2"], eps=1e-3, seed=0)
    assert isinstance(net[2], DeepLoRA) and set(adapters) == {"2"}
    torch.testing.assert_close(net(x), before, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"nn\.Linear"):
        inject_deep_lora(net, ["1"])
