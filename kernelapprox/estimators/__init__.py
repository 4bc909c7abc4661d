"""Error estimators: every number a study reports gets an error bar.

Interval estimators return :class:`ErrorEstimate`; rate fits return :class:`RateFit`.

- :mod:`~kernelapprox.estimators.replications`: Student-t intervals over independent
  randomizations (the default for randomized QMC);
- :mod:`~kernelapprox.estimators.analytic`: closed-form variances (per-frequency cosine,
  Sutherland & Schneider, Performer, ORF) and normal intervals;
- :mod:`~kernelapprox.estimators.bootstrap`: bootstrap over feature columns (MC only);
- :mod:`~kernelapprox.estimators.bounds`: Hoeffding, Rahimi & Recht, Sutherland & Schneider,
  Koksma-Hlawka and box-discrepancy worst-case bounds;
- :mod:`~kernelapprox.estimators.rates`: log-log slopes and features needed for a target;
- :mod:`~kernelapprox.estimators.gram`: Gram-matrix error metrics;
- :mod:`~kernelapprox.estimators.learning`: kernel ridge regression and classification error;
- :mod:`~kernelapprox.estimators.comparisons`: paired and unpaired error ratios against a
  baseline, features needed for equal error, RMS tests with Holm's adjustment;
- :mod:`~kernelapprox.estimators.predictions`: a study cell's predicted RMS error.
"""

from kernelapprox.estimators._result import ErrorEstimate
from kernelapprox.estimators.analytic import (
    analytic_interval,
    cos_offset_variance,
    cos_variance,
    gaussian_cos_variance,
    orf_pair_moment,
    orf_variance,
    performer_hyperbolic_mse,
    performer_positive_mse,
    performer_trigonometric_mse,
    sincos_variance,
)
from kernelapprox.estimators.bootstrap import bootstrap_columns
from kernelapprox.estimators.bounds import (
    box_error_bound,
    gaussian_sigma_p,
    hoeffding_probability,
    hoeffding_terms_needed,
    koksma_hlawka_bound,
    rahimi_recht_features_needed,
    rahimi_recht_probability,
    sutherland_schneider_features_needed,
    sutherland_schneider_probability,
    worst_case_bound,
)
from kernelapprox.estimators.comparisons import (
    cochran_replications,
    error_ratio,
    features_ratio,
    holm_adjust,
    rms_p_value,
    too_few_replications,
)
from kernelapprox.estimators.gram import METRICS, gram_error
from kernelapprox.estimators.learning import (
    LEARNING_METRICS,
    class_error,
    krr_mse,
    krr_predict,
    learning_error,
)
from kernelapprox.estimators.predictions import entrywise_variance, predicted_relative_rmse
from kernelapprox.estimators.rates import RateFit, features_needed, fit_rate
from kernelapprox.estimators.replications import replication_interval

__all__ = [
    "LEARNING_METRICS",
    "METRICS",
    "ErrorEstimate",
    "RateFit",
    "analytic_interval",
    "bootstrap_columns",
    "box_error_bound",
    "class_error",
    "cochran_replications",
    "cos_offset_variance",
    "cos_variance",
    "entrywise_variance",
    "error_ratio",
    "features_needed",
    "features_ratio",
    "fit_rate",
    "gaussian_cos_variance",
    "gaussian_sigma_p",
    "gram_error",
    "hoeffding_probability",
    "hoeffding_terms_needed",
    "holm_adjust",
    "koksma_hlawka_bound",
    "krr_mse",
    "krr_predict",
    "learning_error",
    "orf_pair_moment",
    "orf_variance",
    "performer_hyperbolic_mse",
    "performer_positive_mse",
    "performer_trigonometric_mse",
    "predicted_relative_rmse",
    "rahimi_recht_features_needed",
    "rahimi_recht_probability",
    "replication_interval",
    "rms_p_value",
    "sincos_variance",
    "sutherland_schneider_features_needed",
    "sutherland_schneider_probability",
    "too_few_replications",
    "worst_case_bound",
]
