"""Model compression measured as an approximation: what a pruned or quantized model loses.

* :mod:`kernelapprox.compression.quantization` -- Any-Precision nested quantization (Park et
  al., ICML 2024): one n-bit memory footprint whose first k bit-planes are the k-bit model;
* :mod:`kernelapprox.compression.pruning` -- APT adaptive pruning and tuning (Zhao et al.,
  ICML 2024): salience-scored structured pruning with growing low-rank adapters.

Both use the small decoder and offline corpus of :mod:`kernelapprox.lm` and the Hugging Face
models that ``kernelapprox convert`` handles. Training-time subnetwork sampling (EST) is
training dynamics and lives in :mod:`kernelapprox.dynamics.est`.
"""
