r"""APT's cubic pruning schedule and the masks applied while training.

The kept fraction of the prunable parameters at step :math:`t` (Zhao, Hajishirzi & Cao, ICML
2024; the official code's defaults):

.. math::

    \gamma_t = \min\Big(\gamma_0,\; \gamma_T + (\gamma_0 - \gamma_T)
        \Big(\frac{t_\mathrm{end} - t}{t_\mathrm{end} - t_\mathrm{warm}}\Big)^3\Big),

with :math:`t` clamped to :math:`t_\mathrm{end}` (so :math:`\gamma_t = \gamma_T` afterwards),
evaluated at 11 evenly spaced steps of :math:`[t_\mathrm{warm}, t_\mathrm{end}]`.

Masks act by selection, :math:`H \to \mathrm{where}(m, H, 0)`, never by multiplying with the
mask: a nan or inf in a pruned channel would survive :math:`0 \cdot H`.

Fading masks (APT's code moves each mask by 0.01 a step toward the coming selection and sets it
hard at the pruning step): with a fade of :math:`F` steps, at every step :math:`t` strictly
between two mask updates :math:`u_{i-1} < t < u_i`, a group's value
:math:`m \in [0, 1]` moves by :math:`1/F` toward 1 if the densest groups within
:math:`\gamma_{u_i}` (the coming budget, scored now) include it and toward 0 otherwise,

.. math::

    m \leftarrow \min\big(1, \max(0,\; m \pm 1/F)\big), \qquad
    H \to \mathrm{where}(m > 0,\; m H,\; 0),

and at :math:`u_i` the masks are set hard (0 or 1) to that update's selection, as without a
fade. A group to be cut so fades out before it goes, instead of vanishing in one step.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from kernelapprox.compression.pruning.salience import Site, add_site_hook


def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def cubic_keep_fraction(
    t: float, *, t_warm: float, t_end: float, gamma_final: float, gamma_start: float = 1.0
) -> float:
    """:math:`\\gamma_t` of the module docstring.

    Examples
    --------
    >>> round(cubic_keep_fraction(5, t_warm=0, t_end=10, gamma_final=0.4), 12)  # 0.4 + 0.6 / 8
    0.475
    """
    t, t_warm, t_end = _real(t, "t"), _real(t_warm, "t_warm"), _real(t_end, "t_end")
    g_T, g_0 = _real(gamma_final, "gamma_final"), _real(gamma_start, "gamma_start")
    if not t_end > t_warm:
        raise ValueError(f"t_end must be > t_warm, got t_warm={t_warm}, t_end={t_end}")
    if not 0.0 <= g_T <= g_0 <= 1.0:
        raise ValueError(
            f"gamma_final and gamma_start must satisfy 0 <= gamma_final <= gamma_start <= 1, "
            f"got {g_T} and {g_0}"
        )
    ratio = (t_end - min(t, t_end)) / (t_end - t_warm)
    return min(g_0, g_T + (g_0 - g_T) * ratio**3)


def pruning_steps(t_warm: int, t_end: int, n: int = 11) -> list[int]:
    """The ``n`` evenly spaced (rounded) steps of ``[t_warm, t_end]`` at which masks update."""
    for name, v in (("t_warm", t_warm), ("t_end", t_end), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {v!r}")
    if not 0 <= t_warm < t_end:
        raise ValueError(f"need 0 <= t_warm < t_end, got t_warm={t_warm}, t_end={t_end}")
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    return sorted({round(t_warm + (t_end - t_warm) * i / (n - 1)) for i in range(n)})


def check_fading_mask(mask: Any, shape: tuple[int, ...], name: str) -> torch.Tensor:
    """``mask`` checked as a fading mask: a floating tensor of ``shape`` with values in
    [0, 1] (0 drops a group; a value in (0, 1] scales it)."""
    if not isinstance(mask, torch.Tensor) or not mask.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got {type(mask).__name__}")
    if tuple(mask.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(mask.shape)}")
    if not bool(((mask >= 0) & (mask <= 1)).all()):
        raise ValueError(f"{name} must have values in [0, 1] (nan excluded)")
    return mask


class MaskHooks:
    r"""Apply group masks at sites while a model runs (a context manager).

    Parameters
    ----------
    sites : iterable of Site
        Sites to mask; those without an entry in ``masks`` are left alone.
    masks : mapping of site name -> 1-D tensor of shape ``(n_groups,)``
        A bool mask keeps the groups where it is ``True``: :math:`\mathrm{where}(m, H, 0)`.
        A floating one is a fading mask with values in [0, 1]:
        :math:`\mathrm{where}(m > 0, m H, 0)` (a value of 1 leaves the group as it is,
        bit for bit). :meth:`update` replaces them between steps.
    """

    def __init__(self, sites: Iterable[Site], masks: Mapping[str, torch.Tensor]) -> None:
        self.sites = {s.name: s for s in sites}
        self.masks: dict[str, torch.Tensor] = {}
        self.update(masks)
        self._handles: list[Any] = []

    def update(self, masks: Mapping[str, torch.Tensor]) -> None:
        """Replace the masks (checked against the sites)."""
        checked = {}
        for name, mask in masks.items():
            site = self.sites.get(name)
            if site is None:
                raise ValueError(f"masks names an unknown site {name!r}")
            if isinstance(mask, torch.Tensor) and mask.is_floating_point():
                check_fading_mask(mask, (site.n_groups,), f"masks[{name!r}]")
            elif not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
                raise TypeError(f"masks[{name!r}] must be a bool or floating tensor")
            if mask.shape != (site.n_groups,):
                raise ValueError(
                    f"masks[{name!r}] must have shape ({site.n_groups},), got {tuple(mask.shape)}"
                )
            checked[name] = mask.repeat_interleave(site.group_size)
        self.masks = checked

    def __enter__(self) -> MaskHooks:
        for name in self.sites:
            self._handles.append(add_site_hook(self.sites[name], self._fn(name)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _fn(self, name: str) -> Any:
        def apply(h: torch.Tensor) -> torch.Tensor | None:
            mask = self.masks.get(name)
            if mask is None:
                return None
            mask = mask.to(h.device)
            if mask.dtype == torch.bool:
                return torch.where(mask, h, h.new_zeros(()))
            return torch.where(mask > 0, h * mask.to(h.dtype), h.new_zeros(()))

        return apply


class Pruner:
    r"""APT's pruning loop: salience tracked every step, masks chosen at the schedule's steps.

    Call :meth:`step` after each backward pass (before or after the optimizer step): it folds
    the step's salience into the moving average and, at each of the :func:`pruning_steps`,
    keeps the densest groups within :math:`\gamma_t` times the prunable parameters
    (:func:`~kernelapprox.compression.pruning.selection.select_masks`). Use as a context
    manager; the masks act by selection from the first pruning step on, and :attr:`masks`
    is what :func:`~kernelapprox.compression.pruning.models.shrink_decoder` or
    :func:`~kernelapprox.compression.pruning.models.shrink_bert` then removes.

    Parameters
    ----------
    sites : sequence of Site
        Sites to score; the prunable ones (``params_per_group > 0``) are pruned.
    keep : float
        :math:`\gamma_T`, the final kept fraction of the prunable parameters, in (0, 1].
    t_warm, t_end : int
        The pruning window (steps).
    n_updates : int
        Mask updates in the window (APT: 11).
    form, beta, kurtosis
        As :class:`~kernelapprox.compression.pruning.salience.SalienceTracker`.
    hidden : HiddenDims, optional
        Prune the hidden dimensions too
        (:class:`~kernelapprox.compression.pruning.hidden.HiddenDims`, installed on the model;
        its score sites are tracked with ``sites``): the budget is then the fraction of the
        coupled count of the encoder layers, and ``masks["hidden"]`` is applied by the layer
        norms.
    fade : int
        Steps a group's mask takes to fade from 1 to 0 between mask updates (module
        docstring; APT's code: 100, a step of 0.01); 0 (the default): hard masks only.
        :attr:`masks` holds the hard masks of the last update either way.
    """

    def __init__(
        self,
        sites: Iterable[Site],
        *,
        keep: float,
        t_warm: int,
        t_end: int,
        n_updates: int = 11,
        form: str = "compressed",
        beta: float = 0.85,
        kurtosis: bool = False,
        hidden: Any = None,
        fade: int = 0,
    ) -> None:
        from kernelapprox.compression.pruning.salience import SalienceTracker
        from kernelapprox.compression.pruning.selection import prunable_params

        keep = _real(keep, "keep")
        if not 0.0 < keep <= 1.0:
            raise ValueError(f"keep must be in (0, 1], got {keep}")
        self.sites = tuple(sites)
        self.hidden = hidden
        if hidden is not None:
            names = {s.name for s in self.sites}
            self.sites += tuple(s for s in hidden.sites if s.name not in names)
        if isinstance(fade, bool) or not isinstance(fade, numbers.Integral):
            raise TypeError(f"fade must be an int, got {fade!r}")
        if fade < 0:
            raise ValueError(f"fade must be >= 0, got {fade}")
        self.fade = int(fade)
        self.fading: dict[str, torch.Tensor] = {}
        self.keep = keep
        self.t_warm, self.t_end = t_warm, t_end
        self.updates = pruning_steps(t_warm, t_end, n_updates)
        self.tracker = SalienceTracker(self.sites, form=form, beta=beta, kurtosis=kurtosis)
        prunable = [s for s in self.sites if s.params_per_group > 0]
        self.total = (
            prunable_params(self.sites)
            if hidden is None
            else hidden.count(prunable, {}, hidden.width)
        )
        self.masks: dict[str, torch.Tensor] = {}
        self.hooks = MaskHooks(self.sites, {})
        self.history: list[dict[str, float]] = []

    def __enter__(self) -> Pruner:
        self.hooks.__enter__()  # masks first, so the salience sees the masked activations
        self.tracker.attach()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.tracker.detach()
        self.hooks.__exit__()

    def needs_scores(self, t: int) -> bool:
        """Whether :meth:`step` at ``t`` selects groups: a mask update, or a fading step."""
        return t in self.updates or self._fading_step(t)

    def _fading_step(self, t: int) -> bool:
        return self.fade > 0 and self.updates[0] < t < self.updates[-1]

    def step(self, t: int, scores: Mapping[str, torch.Tensor] | None = None) -> bool:
        """Close step ``t``; returns whether the hard masks changed. ``scores`` (site name ->
        group scores) replaces the tracked salience where groups are selected
        (:meth:`needs_scores`; baselines: weight magnitude, random)."""
        from kernelapprox.compression.pruning.selection import select_masks

        tracked = self.tracker.step()
        scores = tracked if scores is None else scores
        if not scores or not self.needs_scores(t):
            return False
        if t not in self.updates:
            coming = min(u for u in self.updates if u > t)
            self._fade_toward(
                select_masks(self.sites, scores, self._budget(coming), hidden=self.hidden)[0]
            )
            return False
        gamma = self._gamma(t)
        self.masks, sel = select_masks(self.sites, scores, self._budget(t), hidden=self.hidden)
        self._install(self.masks)
        if self.fade > 0:
            self.fading = {k: m.to(torch.float64) for k, m in self.masks.items()}
        self.history.append(
            {"step": t, "gamma": gamma, "kept_params": sel.kept_params, "budget": sel.budget}
        )
        return True

    def _gamma(self, t: int) -> float:
        return cubic_keep_fraction(t, t_warm=self.t_warm, t_end=self.t_end, gamma_final=self.keep)

    def _budget(self, t: int) -> float:
        return self._gamma(t) * self.total

    def _install(self, masks: Mapping[str, torch.Tensor]) -> None:
        self.hooks.update({k: m for k, m in masks.items() if k in self.hooks.sites})
        if self.hidden is not None:
            self.hidden.apply(masks["hidden"])

    def _fade_toward(self, target: Mapping[str, torch.Tensor]) -> None:
        """Move every fading mask by ``1 / fade`` toward ``target`` (bool masks) and apply them."""
        step = 1.0 / self.fade
        for name, keep in target.items():
            moved = self.fading[name] + torch.where(keep, step, -step).to(torch.float64)
            self.fading[name] = moved.clamp(0.0, 1.0)
        self._install(self.fading)
