"""assert_causal / assert_resumable on small pure-torch attention implementations.

Verdicts: the causal linear attention with a state passes both; exact causal softmax (SDPA)
passes causality; an implementation that normalizes with a whole-sequence statistic fails
causality; one that drops the state fails resumability (but is causal); full (unmasked)
softmax attention fails causality.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from kernelapprox.testing import assert_causal, assert_resumable, default_rtol
from kernelapprox.testing.strategies import attention_inputs, attention_shapes


def positive(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.elu(x) + 1.0


def causal_linear_attention(q, k, v, initial_state=None):
    """Correct: o_t = phi(q_t) S_t / phi(q_t) z_t with S_t = S_0 + sum_{s<=t} phi(k_s) v_s^T."""
    fq, fk = positive(q), positive(k)
    kv = torch.einsum("bthd,bthe->bthde", fk, v).cumsum(1)
    z = fk.cumsum(1)
    if initial_state is not None:
        kv = kv + initial_state[0][:, None]
        z = z + initial_state[1][:, None]
    num = torch.einsum("bthd,bthde->bthe", fq, kv)
    den = torch.einsum("bthd,bthd->bth", fq, z)[..., None]
    return num / den, (kv[:, -1], z[:, -1])


def whole_sequence_rms_keys(q, k, v, initial_state=None):
    """Broken: keys divided by their RMS over the whole sequence (a future statistic)."""
    k = k / k.pow(2).mean(dim=1, keepdim=True).sqrt()
    return causal_linear_attention(q, k, v, initial_state)


def whole_sequence_max_stabilizer(q, k, v, initial_state=None):
    """Broken: exp features stabilized by a maximum over all tokens. It cancels in the ratio
    mathematically, but the future still enters the arithmetic (and underflows the past)."""
    fq = torch.exp(q - q.amax(dim=-1, keepdim=True))
    fk = torch.exp(k - k.amax(dim=(1, 3), keepdim=True))
    kv = torch.einsum("bthd,bthe->bthde", fk, v).cumsum(1)
    num = torch.einsum("bthd,bthde->bthe", fq, kv)
    den = torch.einsum("bthd,bthd->bth", fq, fk.cumsum(1))[..., None]
    return num / den, (kv[:, -1], fk.sum(1))


def drops_state(q, k, v, initial_state=None):
    """Broken resumption: ignores initial_state (causal, but every segment restarts)."""
    return causal_linear_attention(q, k, v, None)


def full_softmax(q, k, v):
    """Not causal: softmax attention without the mask, layout (B, T, H, D)."""
    scores = torch.einsum("bthd,bshd->bhts", q, k) / q.shape[-1] ** 0.5
    return torch.einsum("bhts,bshe->bthe", scores.softmax(-1), v)


def inputs(B=2, T=11, H=3, D=5, dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(B, T, H, D, generator=gen, dtype=torch.float64).to(dtype) for _ in "qkv"
    )


def test_correct_causal_linear_attention_passes_both():
    q, k, v = inputs()
    assert_causal(causal_linear_attention, q, k, v)
    assert_resumable(causal_linear_attention, q, k, v)
    assert_resumable(causal_linear_attention, q, k, v, split=(2, 3, 9))


@pytest.mark.parametrize("fn", [whole_sequence_rms_keys, whole_sequence_max_stabilizer])
def test_whole_sequence_statistics_leak_the_future(fn):
    q, k, v = inputs()
    with pytest.raises(AssertionError, match="assert_causal: the output at time step"):
        assert_causal(fn, q, k, v)


def test_max_stabilizer_agrees_mathematically_but_still_fails():
    """The global-max version equals the unstabilized exp features up to rounding on the
    unperturbed input, so only a causality check (not an output comparison) exposes it."""
    q, k, v = inputs()
    fq, fk = torch.exp(q), torch.exp(k)
    kv = torch.einsum("bthd,bthe->bthde", fk, v).cumsum(1)
    ref = (
        torch.einsum("bthd,bthde->bthe", fq, kv)
        / torch.einsum("bthd,bthd->bth", fq, fk.cumsum(1))[..., None]
    )
    torch.testing.assert_close(whole_sequence_max_stabilizer(q, k, v)[0], ref)
    with pytest.raises(AssertionError, match="assert_causal: the output at time step 0 changed"):
        assert_causal(whole_sequence_max_stabilizer, q, k, v, exact=False)


def test_dropping_the_state_is_causal_but_not_resumable():
    q, k, v = inputs()
    assert_causal(drops_state, q, k, v)
    with pytest.raises(AssertionError, match=r"schedule \[5\]: the output at time step 5"):
        assert_resumable(drops_state, q, k, v, split=5)


def test_full_softmax_is_not_causal_and_sdpa_causal_is():
    q, k, v = inputs()
    with pytest.raises(AssertionError, match="assert_causal"):
        assert_causal(full_softmax, q, k, v)
    # SDPA's own layout is (B, H, T, D): name the time axis
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))

    def sdpa(q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    assert_causal(sdpa, qt, kt, vt, time_axis=2)
    with pytest.raises(AssertionError, match="assert_causal: the output at time step 0 changed"):
        assert_causal(
            lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v),
            qt,
            kt,
            vt,
            time_axis=2,
        )


def test_time_axis_for_a_bhtd_implementation():
    q, k, v = (x.transpose(1, 2).contiguous() for x in inputs())

    def bhtd(q, k, v, initial_state=None):
        out, state = causal_linear_attention(
            *(x.transpose(1, 2) for x in (q, k, v)), initial_state=initial_state
        )
        return out.transpose(1, 2), state

    assert_causal(bhtd, q, k, v, time_axis=2)
    assert_resumable(bhtd, q, k, v, time_axis=2)
    # the wrong axis: heads are mixed with time
    with pytest.raises(AssertionError, match=r"assert_resumable: schedule \[1\]: the output"):
        assert_resumable(bhtd, q, k, v, time_axis=1, split=1)


def test_state_mismatch_is_reported():
    def bad_state(q, k, v, initial_state=None):
        """The token counter restarts on every segment (outputs are unaffected)."""
        out, (kv, z) = causal_linear_attention(q, k, v, initial_state and initial_state[:2])
        return out, (kv, z, torch.tensor(float(q.shape[1])))

    q, k, v = inputs()
    with pytest.raises(AssertionError, match=r"final state\[2\] differs"):
        assert_resumable(bad_state, q, k, v, split=4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_uses_dtype_tolerances(dtype):
    q, k, v = inputs(dtype=dtype, T=17)
    assert_causal(causal_linear_attention, q, k, v)
    assert_resumable(causal_linear_attention, q, k, v)
    assert default_rtol(dtype) > default_rtol(torch.float64)


@given(qkv=attention_inputs(shapes=attention_shapes(min_tokens=2, max_tokens=40, max_head_dim=9)))
def test_property_correct_implementation_passes(qkv):
    q, k, v = qkv
    assert_causal(causal_linear_attention, q, k, v, scales=(1.0,))
    assert_resumable(causal_linear_attention, q, k, v)


@given(
    qkv=attention_inputs(shapes=attention_shapes(min_tokens=3, max_tokens=33, max_head_dim=9)),
    data=st.data(),
)
def test_property_dropped_state_always_detected(qkv, data):
    q, k, v = qkv
    s = data.draw(st.integers(1, q.shape[1] - 1))
    with pytest.raises(AssertionError, match=rf"assert_resumable: schedule \[{s}\]: the output"):
        assert_resumable(drops_state, q, k, v, split=s)


def test_validation():
    q, k, v = inputs()
    with pytest.raises(ValueError, match="same length on the time axis"):
        assert_causal(causal_linear_attention, q, k[:, :5], v)
    with pytest.raises(ValueError, match="at least 2 time steps"):
        assert_causal(causal_linear_attention, q[:, :1], k[:, :1], v[:, :1])
    with pytest.raises(ValueError, match="splits"):
        assert_causal(causal_linear_attention, q, k, v, splits=[0])
    with pytest.raises(ValueError, match="increasing"):
        assert_resumable(causal_linear_attention, q, k, v, split=(5, 3))
    with pytest.raises(TypeError, match="pair"):
        assert_resumable(lambda q, k, v, initial_state=None: v, q, k, v)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        assert_causal(causal_linear_attention, q.numpy(), k, v)
    with pytest.raises(ValueError, match="time_axis"):
        assert_causal(causal_linear_attention, q, k, v, time_axis=7)
