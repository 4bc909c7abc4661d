"""Low-rank subspace dynamics: deep factorizations, invariant subspaces, compression,
matrix completion, Deep LoRA and low-dimensional projected attention (LPA).

References: Yaras, Wang, Balzano, Qu, *Compressible Dynamics in Deep Overparameterized
Low-Rank Learning & Adaptation*, ICML 2024 (arXiv 2406.04112); Lv et al., *Scalable Efficient
Training of LLMs with Low-dimensional Projected Attention*, EMNLP 2024 (arXiv 2411.02063).
Researched facts and checked formulas: ``shared/reference/lowrank_dynamics.md`` §1-2.

Main entry points
-----------------
:class:`DeepFactorization`, :func:`compress`, :func:`train`,
:func:`verify_invariant_subspace` (theorem catalogue), :func:`run_completion`,
:func:`depth_width_sweep`, :class:`DeepLoRA`, :class:`LowRankProjectedAttention`,
:func:`verify_lpa_rank_bound`; EST (Li et al., ICML 2024, arXiv 2406.06962):
:class:`SubnetworkSampler`, :class:`StageSchedule`, :func:`flops_saving`.
"""

from kernelapprox.dynamics.completion import (
    REFERENCE_SETTINGS,
    CompletionSetting,
    completion_problem,
    completion_setting,
    depth_width_sweep,
    run_completion,
)
from kernelapprox.dynamics.compression import (
    complement_term,
    compress,
    compressed_bases,
    first_factor_gradient,
)
from kernelapprox.dynamics.diagnostics import (
    complement_leakage,
    complement_residual,
    count_equal,
    invariant_value_error,
    largest_principal_angle,
    principal_angles,
    rho_trajectory,
    singular_values,
    smallest_principal_angle,
)
from kernelapprox.dynamics.est import (
    GPT2_SMALL,
    SCHEDULES,
    StageSchedule,
    SubnetworkSampler,
    flops_saving,
    schedule_flops,
    subnetwork_flops,
)
from kernelapprox.dynamics.factorization import CompressedFactorization, DeepFactorization
from kernelapprox.dynamics.lora import DeepLoRA, inject_deep_lora
from kernelapprox.dynamics.lpa import (
    LPA_SETTINGS,
    LowRankLinear,
    LowRankProjectedAttention,
    attention_parameter_count,
    lpa_rank_check,
    lpa_setting_table,
    projection_macs_per_token,
    transformer_parameter_count,
    verify_lpa_rank_bound,
)
from kernelapprox.dynamics.objectives import (
    FullObservation,
    MaskedObservation,
    Objective,
    WhitenedRegression,
    whitened_regression,
)
from kernelapprox.dynamics.recording import TrajectoryRecorder
from kernelapprox.dynamics.theorem import (
    exact_count_mask,
    invariant_bases,
    low_rank_target,
    verify_invariant_subspace,
)
from kernelapprox.dynamics.training import DivergedError, TrainResult, make_optimizer, train

__all__ = [
    "GPT2_SMALL",
    "LPA_SETTINGS",
    "REFERENCE_SETTINGS",
    "SCHEDULES",
    "CompletionSetting",
    "CompressedFactorization",
    "DeepFactorization",
    "DeepLoRA",
    "DivergedError",
    "FullObservation",
    "LowRankLinear",
    "LowRankProjectedAttention",
    "MaskedObservation",
    "Objective",
    "StageSchedule",
    "SubnetworkSampler",
    "TrainResult",
    "TrajectoryRecorder",
    "WhitenedRegression",
    "attention_parameter_count",
    "complement_leakage",
    "complement_residual",
    "complement_term",
    "completion_problem",
    "completion_setting",
    "compress",
    "compressed_bases",
    "count_equal",
    "depth_width_sweep",
    "exact_count_mask",
    "first_factor_gradient",
    "flops_saving",
    "inject_deep_lora",
    "invariant_bases",
    "invariant_value_error",
    "largest_principal_angle",
    "low_rank_target",
    "lpa_rank_check",
    "lpa_setting_table",
    "make_optimizer",
    "principal_angles",
    "projection_macs_per_token",
    "rho_trajectory",
    "run_completion",
    "schedule_flops",
    "singular_values",
    "smallest_principal_angle",
    "subnetwork_flops",
    "train",
    "transformer_parameter_count",
    "verify_invariant_subspace",
    "verify_lpa_rank_bound",
    "whitened_regression",
]
