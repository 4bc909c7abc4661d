r"""Assertions on attention implementations: causality and resumability.

Layout
------
``q``, ``k``, ``v`` and the output are torch tensors laid out ``(B, T, H, D)`` (batch, time,
heads, head dim; the layout of flash-linear-attention and of
:func:`kernelapprox.attention.feature_attention` with ``layout="bthd"``). Any other layout
works by naming its time axis with ``time_axis`` (e.g. ``time_axis=2`` for ``(B, H, T, D)``,
the layout of :func:`torch.nn.functional.scaled_dot_product_attention`). ``q`` and ``k``
must share the time length of ``v``; the output must have that time length on the same axis.

Protocols
---------
``assert_causal``: ``attention_fn(q, k, v) -> output`` (a returned tuple is allowed; its first
element is the output).

``assert_resumable``: ``attention_fn(q, k, v, initial_state=None) -> (output, final_state)``,
where ``final_state`` is whatever the function needs to continue the sequence (a tensor, or a
tuple/list/dict of tensors) and ``initial_state=None`` means "start of the sequence".
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch

from kernelapprox._validation import as_seed_sequence

__all__ = [
    "TOLERANCES",
    "AttentionTolerance",
    "assert_causal",
    "assert_resumable",
    "default_rtol",
    "unit_roundoff",
]


def unit_roundoff(dtype: torch.dtype) -> float:
    """The unit roundoff ``u = 2^-p`` of a floating dtype (half its machine epsilon).

    ``2^-53`` (float64), ``2^-24`` (float32), ``2^-11`` (float16), ``2^-8`` (bfloat16):
    round to nearest has relative error at most ``u`` (Higham, *Accuracy and Stability of
    Numerical Algorithms*, 2nd ed., 2002, Thm. 2.2).

    Examples
    --------
    >>> import torch
    >>> unit_roundoff(torch.bfloat16) == 2.0**-8
    True
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    return float(torch.finfo(dtype).eps) / 2.0


class AttentionTolerance(NamedTuple):
    """Relative tolerances of attention outputs computed in one dtype (see :data:`TOLERANCES`).

    Attributes
    ----------
    oracle : float
        Relative RMS error ``||a - e|| / ||e||`` allowed between an implementation that
        accumulates in float32 (float64 for float64 inputs) and the float64 oracle fed the
        *same* rounded inputs (flash-linear-attention's criterion); the package's attention
        tests use it.
    rerun : float
        Largest entrywise difference, relative to the largest entry, allowed between two
        evaluations of one implementation in this dtype that differ only in the order of
        their arithmetic (segments resumed from a state vs one pass; chunked vs recurrent);
        :func:`default_rtol`, hence :func:`assert_resumable` and
        ``assert_causal(exact=False)``, use it. The implementation may compute entirely in
        the dtype, so this is a worst-case (max-norm) bound, not an RMS one.
    """

    oracle: float
    rerun: float


#: The tolerance table of attention outputs per dtype: used by :func:`default_rtol`
#: (``rerun``) and by the package's attention tests (``oracle``,
#: ``tests/attention/attention_helpers.py``). In units of :func:`unit_roundoff` ``u``:
#:
#: * float64 (``u = 1.1e-16``): ``oracle = rerun = 1e-10`` (about ``1e6 u``). A float64
#:   result is checked against float64 arithmetic: rounding accounts for ``~sqrt(n) u``
#:   with ``n`` a few hundred terms (``< 1e-14``), so anything near ``1e-10`` is a bug, not
#:   rounding; the room is for ratios whose denominators cancel (maps with signed features,
#:   for which a test may loosen it explicitly).
#: * float32 (``u = 6.0e-8``): ``oracle = 5e-6 = 84 u``. The error of an ``n``-term float32
#:   sum grows like ``sqrt(n) u`` (probabilistic bound; Higham & Mary, SIAM J. Sci. Comput.
#:   41, 2019); the largest case of the tests sums ``n = F + T = 266 + 63`` terms, where
#:   ``sqrt(n) = 18``: the tolerance is ``4.6 sqrt(n) u``; measured ``15 u`` (relative RMS of
#:   output and gradients, ``test_low_precision_inputs_within_the_dtype_tolerance``).
#:   ``rerun = 1e-4 = 1.7e3 u``: the deterministic worst case ``n u`` of an ``n``-term sum
#:   (Higham 2002, Ch. 4) for sums of up to ``1.7e3`` terms evaluated in a different order by
#:   the two runs; measured ``3.7 u`` for a float32 causal linear attention at ``T = 17``.
#: * bfloat16 (``u = 3.9e-3``) and float16 (``u = 4.9e-4``): ``oracle = 6e-3 = 1.5 u``
#:   and ``8e-4 = 1.6 u``. The output is rounded once to the half type, a relative RMS of
#:   at most ``u / sqrt(3) = 0.58 u`` (rounding error uniform in ``[-u, u]`` relative), and
#:   the float32 accumulation adds ``~1e-6``: ``2.7`` times the worst single rounding;
#:   measured ``0.43 u`` (outputs) and ``0.65 u`` (gradients, which are checked at twice the
#:   tolerance for the extra rounding of the incoming gradient). ``rerun = 3e-2 = 7.7 u``
#:   and ``5e-3 = 10 u``: both runs may round every partial sum to the half type; measured
#:   ``3.2 u`` (bfloat16) and ``3.9 u`` (float16), max-norm, for a causal linear attention
#:   computed entirely in the half type at ``T = 17``, resumed token by token.
#:
#: Other floating dtypes get ``rerun = 1e3`` machine epsilons from :func:`default_rtol`.
TOLERANCES: dict[torch.dtype, AttentionTolerance] = {
    torch.float64: AttentionTolerance(oracle=1e-10, rerun=1e-10),
    torch.float32: AttentionTolerance(oracle=5e-6, rerun=1e-4),
    torch.bfloat16: AttentionTolerance(oracle=6e-3, rerun=3e-2),
    torch.float16: AttentionTolerance(oracle=8e-4, rerun=5e-3),
}


def default_rtol(dtype: torch.dtype) -> float:
    """Default relative tolerance for comparing two evaluations in ``dtype``.

    The ``rerun`` column of :data:`TOLERANCES`: ``1e-10`` (float64), ``1e-4`` (float32),
    ``5e-3`` (float16), ``3e-2`` (bfloat16); other dtypes get ``1e3`` times their machine
    epsilon.

    Examples
    --------
    >>> import torch
    >>> default_rtol(torch.float32)
    0.0001
    """
    if dtype in TOLERANCES:
        return TOLERANCES[dtype].rerun
    return 1e3 * float(torch.finfo(dtype).eps)


def _check_qkv(q: Any, k: Any, v: Any, time_axis: Any) -> tuple[int, int]:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if isinstance(time_axis, bool) or not isinstance(time_axis, numbers.Integral):
        raise TypeError(f"time_axis must be an integer axis, got {time_axis!r}")
    ndim = q.ndim
    if not -ndim <= time_axis < ndim or k.ndim != ndim or v.ndim != ndim:
        raise ValueError(
            f"time_axis must index an axis of q, k, v (all with the same number of axes); got "
            f"time_axis={time_axis} for shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    axis = int(time_axis) % ndim
    T = q.shape[axis]
    if k.shape[axis] != T or v.shape[axis] != T:
        raise ValueError(
            f"q, k and v must have the same length on the time axis {axis}: "
            f"{q.shape[axis]}, {k.shape[axis]}, {v.shape[axis]}"
        )
    return axis, T


def _output(result: Any, name: str) -> torch.Tensor:
    out = result[0] if isinstance(result, (tuple, list)) else result
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"{name} must return a tensor (or a tuple whose first item is one)")
    return out


def _check_splits(splits: Any, T: int, name: str) -> list[int]:
    values = [splits] if isinstance(splits, numbers.Integral) else list(splits)
    for s in values:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or not 0 < s < T:
            raise ValueError(f"{name} must be integers in [1, T - 1] = [1, {T - 1}], got {s!r}")
    return [int(s) for s in values]


def _perturbed(x: torch.Tensor, axis: int, start: int, scale: float, gen: torch.Generator):
    """``x`` with every time step ``>= start`` replaced by fresh normal values times ``scale``."""
    out = x.clone()
    future = out.narrow(axis, start, x.shape[axis] - start)
    size = x.abs().max().item() if x.numel() else 1.0
    noise = torch.randn(future.shape, generator=gen, dtype=torch.float64)
    future.copy_((noise * scale * (1.0 + size)).to(dtype=x.dtype, device=x.device))
    return out


def _first_time_index(diff: torch.Tensor, axis: int) -> int:
    other = [d for d in range(diff.ndim) if d != axis]
    per_step = diff.amax(dim=other) if other else diff
    return int(torch.nonzero(per_step > 0)[0, 0]) if bool((per_step > 0).any()) else -1


def assert_causal(
    attention_fn: Callable[..., Any],
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    time_axis: int = 1,
    splits: int | Sequence[int] | None = None,
    scales: Sequence[float] = (1.0, 1e3),
    exact: bool = True,
    rtol: float | None = None,
    seed: Any = 0,
) -> None:
    r"""Assert that outputs never depend on future tokens.

    For every split point :math:`s` and every perturbation scale :math:`c`, the tokens
    :math:`t \ge s` of ``q``, ``k`` and ``v`` are replaced by fresh normal values of size
    :math:`c\,(1 + \max|x|)` and the outputs at :math:`t < s` must not change: bit for bit
    when ``exact`` (the default; a causal implementation never lets future values into the
    past's arithmetic), or within ``rtol`` otherwise. The large scale catches statistics that
    look at the whole sequence, such as a global maximum subtracted before ``exp`` or a
    normalization over all tokens: mathematically they may cancel, numerically they leak.

    Parameters
    ----------
    attention_fn : callable
        ``attention_fn(q, k, v) -> output`` (module docstring: layout and protocol).
    q, k, v : torch.Tensor
        Inputs, default layout ``(B, T, H, D)`` with ``T >= 2``.
    time_axis : int, default 1
        The time axis of the inputs and of the output.
    splits : int or sequence of int, optional
        Split points in ``[1, T - 1]``; default ``{1, T // 2, T - 1}``.
    scales : sequence of float, default (1.0, 1e3)
        Perturbation sizes relative to ``1 + max|x|``.
    exact : bool, default True
        Require bit-identical past outputs; otherwise allow ``rtol`` (relative to the largest
        past output).
    rtol : float, optional
        Tolerance when ``exact=False`` (default :func:`default_rtol` of the output dtype).
    seed : int, default 0
        Seed of the perturbations.

    Raises
    ------
    AssertionError
        Naming the split, the scale, the first past time step that changed and by how much.

    Examples
    --------
    >>> import torch
    >>> from kernelapprox.testing import assert_causal
    >>> def running_mean(q, k, v):  # causal: cumulative mean of v over time
    ...     steps = torch.arange(1, v.shape[1] + 1, dtype=v.dtype).view(1, -1, 1, 1)
    ...     return v.cumsum(dim=1) / steps
    >>> q = k = v = torch.randn(2, 7, 3, 4, dtype=torch.float64)
    >>> assert_causal(running_mean, q, k, v)
    >>> def global_mean(q, k, v):  # not causal
    ...     return v - v.mean(dim=1, keepdim=True)
    >>> assert_causal(global_mean, q, k, v)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: assert_causal: the output at time step 0 changed ...
    """
    axis, T = _check_qkv(q, k, v, time_axis)
    if T < 2:
        raise ValueError(f"causality needs at least 2 time steps, got T={T}")
    points = sorted({1, T // 2, T - 1}) if splits is None else _check_splits(splits, T, "splits")
    scale_list = [float(c) for c in scales]
    if not scale_list or any(not (c > 0 and c < float("inf")) for c in scale_list):
        raise ValueError(f"scales must be finite positive numbers, got {scales!r}")
    gen = torch.Generator().manual_seed(int(as_seed_sequence(seed).generate_state(1)[0]))
    with torch.no_grad():
        base = _output(attention_fn(q, k, v), "attention_fn")
        if base.ndim <= axis or base.shape[axis] != T:
            raise ValueError(
                f"the output must have T={T} steps on time axis {axis}, got {tuple(base.shape)}"
            )
        tol = None if exact else (default_rtol(base.dtype) if rtol is None else float(rtol))
        for s in points:
            past = base.narrow(axis, 0, s)
            for c in scale_list:
                qp, kp, vp = (_perturbed(x, axis, s, c, gen) for x in (q, k, v))
                new = _output(attention_fn(qp, kp, vp), "attention_fn").narrow(axis, 0, s)
                if exact:
                    same = torch.equal(new, past)
                    diff = (new.double() - past.double()).abs().nan_to_num(float("inf"))
                else:
                    diff = (new.double() - past.double()).abs().nan_to_num(float("inf"))
                    limit = tol * max(float(past.double().abs().max()), 1e-30)
                    same = bool((diff <= limit).all())
                if not same:
                    first = _first_time_index(diff, axis) if bool((diff > 0).any()) else 0
                    raise AssertionError(
                        f"assert_causal: the output at time step {first} changed when the "
                        f"tokens from step {s} on were perturbed (scale {c:g}; T={T}): max "
                        f"|change| {float(diff.max()):.3g} on outputs of size "
                        f"{float(past.double().abs().max()):.3g} "
                        f"({'bit-identical required' if exact else f'rtol {tol:.1e}'})"
                    )


def _flatten_state(state: Any, path: str = "state") -> list[tuple[str, Any]]:
    if isinstance(state, torch.Tensor) or state is None:
        return [(path, state)]
    if isinstance(state, dict):
        return [p for key in sorted(state) for p in _flatten_state(state[key], f"{path}[{key!r}]")]
    if isinstance(state, (tuple, list)):
        return [p for i, s in enumerate(state) for p in _flatten_state(s, f"{path}[{i}]")]
    raise TypeError(
        f"the final state must be a tensor or a tuple/list/dict of tensors, got "
        f"{type(state).__name__} at {path}"
    )


def _mismatch(a: torch.Tensor, b: torch.Tensor, rtol: float) -> tuple[bool, float, float]:
    """``(ok, max|a - b|, allowed)`` with the allowance relative to ``max|b|``."""
    if a.shape != b.shape:
        return False, float("inf"), 0.0
    diff = (a.double() - b.double()).abs().nan_to_num(float("inf"))
    allowed = rtol * max(float(b.double().abs().max()) if b.numel() else 0.0, 1e-30)
    worst = float(diff.max()) if diff.numel() else 0.0
    return worst <= allowed, worst, allowed


def assert_resumable(
    attention_fn: Callable[..., Any],
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    split: int | Sequence[int] | None = None,
    time_axis: int = 1,
    rtol: float | None = None,
) -> None:
    r"""Assert that running in segments and resuming from the state equals one pass.

    With boundaries :math:`0 < s_1 < \dots < s_n < T`, the segments
    :math:`[0, s_1), [s_1, s_2), \dots, [s_n, T)` are run in turn, each from the previous
    segment's final state (the first from ``initial_state=None``). The concatenated outputs
    must equal the one-pass output, and the last final state the one-pass state, within
    ``rtol`` relative to the largest entry (default :func:`default_rtol` of the output's
    dtype). This is the decode (KV-cache) property of recurrent and linear attention.

    Parameters
    ----------
    attention_fn : callable
        ``attention_fn(q, k, v, initial_state=None) -> (output, final_state)`` (module
        docstring).
    q, k, v : torch.Tensor
        Inputs, default layout ``(B, T, H, D)`` with ``T >= 2``.
    split : int or sequence of int, optional
        One boundary or increasing boundaries of one schedule. Default: four schedules,
        ``T // 2``, ``1``, ``T - 1`` and token-by-token decoding (every step; only when
        ``T <= 128``).
    time_axis : int, default 1
        The time axis of the inputs and of the output.
    rtol : float, optional
        Relative tolerance.

    Raises
    ------
    AssertionError
        Naming the schedule, the first time step whose output differs (or the state entry),
        and the size of the difference against the allowance.

    Examples
    --------
    >>> import torch
    >>> from kernelapprox.testing import assert_resumable
    >>> def running_sum(q, k, v, initial_state=None):  # state: the sum so far
    ...     start = 0 if initial_state is None else initial_state
    ...     out = start + v.cumsum(dim=1)
    ...     return out, out[:, -1:]
    >>> v = torch.randn(1, 9, 2, 3, dtype=torch.float64)
    >>> assert_resumable(running_sum, v, v, v)
    >>> def forgetful(q, k, v, initial_state=None):  # ignores the state
    ...     out = v.cumsum(dim=1)
    ...     return out, out[:, -1:]
    >>> assert_resumable(forgetful, v, v, v, split=4)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: assert_resumable: schedule [4]: the output at time step 4 differs ...
    """
    axis, T = _check_qkv(q, k, v, time_axis)
    if T < 2:
        raise ValueError(f"resuming needs at least 2 time steps, got T={T}")
    if split is None:
        schedules = [[T // 2], [1], [T - 1]]
        if T <= 128:
            schedules.append(list(range(1, T)))
        schedules = [s for i, s in enumerate(schedules) if s not in schedules[:i]]
    else:
        bounds = _check_splits(split, T, "split")
        if any(b <= a for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"split boundaries must be increasing, got {bounds}")
        schedules = [bounds]
    with torch.no_grad():
        result = attention_fn(q, k, v, initial_state=None)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise TypeError("attention_fn must return a pair (output, final_state)")
        full, full_state = result
        full = _output(full, "attention_fn")
        if full.ndim <= axis or full.shape[axis] != T:
            raise ValueError(
                f"the output must have T={T} steps on time axis {axis}, got {tuple(full.shape)}"
            )
        tol = default_rtol(full.dtype) if rtol is None else float(rtol)
        for bounds in schedules:
            edges = [0, *bounds, T]
            parts, state = [], None
            for a, b in itertools.pairwise(edges):
                seg = [x.narrow(axis, a, b - a) for x in (q, k, v)]
                out, state = attention_fn(*seg, initial_state=state)
                parts.append(out)
            label = f"schedule {bounds if len(bounds) <= 4 else 'token by token'}"
            joined = torch.cat(parts, dim=axis)
            ok, worst, allowed = _mismatch(joined, full, tol)
            if not ok:
                diff = (joined.double() - full.double()).abs().nan_to_num(float("inf"))
                step = _first_time_index(diff - allowed, axis) if joined.shape == full.shape else 0
                raise AssertionError(
                    f"assert_resumable: {label}: the output at time step {step} differs from "
                    f"the one-pass output by {worst:.3g} (allowed {allowed:.3g}, rtol {tol:.1e})"
                )
            got, want = _flatten_state(state), _flatten_state(full_state)
            if [p for p, _ in got] != [p for p, _ in want]:
                raise AssertionError(
                    f"assert_resumable: {label}: the resumed final state has structure "
                    f"{[p for p, _ in got]}, the one-pass state {[p for p, _ in want]}"
                )
            for (path, a), (_, b) in zip(got, want, strict=True):
                if a is None or b is None:
                    if a is not b:
                        raise AssertionError(f"assert_resumable: {label}: {path} is None once")
                    continue
                ok, worst, allowed = _mismatch(a, b, tol)
                if not ok:
                    raise AssertionError(
                        f"assert_resumable: {label}: final {path} differs from the one-pass "
                        f"state by {worst:.3g} (allowed {allowed:.3g}; shapes "
                        f"{tuple(a.shape)} vs {tuple(b.shape)})"
                    )
