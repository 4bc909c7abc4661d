"""Weighted 1-D k-means: the dynamic program against brute force, Lloyd and sklearn against it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from kernelapprox.compression.quantization import (
    lloyd_kmeans,
    optimal_kmeans,
    split_runs,
    weighted_sse,
)


def _sse_of_labels(v: np.ndarray, w: np.ndarray, labels: tuple[int, ...]) -> float:
    """Weighted SSE of a labelling, each cluster at its weighted mean."""
    total = 0.0
    lab = np.asarray(labels)
    for c in set(labels):
        m = lab == c
        if w[m].sum() > 0:
            mean = (w[m] * v[m]).sum() / w[m].sum()
            total += float((w[m] * (v[m] - mean) ** 2).sum())
    return total


def _brute_all_labelings(v: np.ndarray, w: np.ndarray, k: int) -> float:
    """Minimum over all k^n labellings (no contiguity assumed)."""
    return min(_sse_of_labels(v, w, lab) for lab in itertools.product(range(k), repeat=len(v)))


def _brute_contiguous(v: np.ndarray, w: np.ndarray, k: int) -> float:
    """Minimum over all partitions of the sorted row into at most k contiguous runs."""
    order = np.argsort(v, kind="stable")
    sv, sw = v[order], w[order]
    n = len(v)
    best = np.inf
    for parts in range(1, k + 1):
        for cuts in itertools.combinations(range(1, n), parts - 1):
            bounds = (0, *cuts, n)
            labels = tuple(i for i in range(parts) for _ in range(bounds[i + 1] - bounds[i]))
            best = min(best, _sse_of_labels(sv, sw, labels))
    return best


def _rows(seed: int, rows: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(rows, n, generator=g, dtype=torch.float64)
    w = torch.rand(rows, n, generator=g, dtype=torch.float64) ** 2
    return v, w


@pytest.mark.parametrize("k", [1, 2, 3])
def test_optimal_equals_brute_force_over_all_labelings(k: int) -> None:
    v, w = _rows(1, 4, 6)
    codes, table = optimal_kmeans(v, w, k)
    sse = weighted_sse(v, w, codes, table)
    for r in range(v.shape[0]):
        ref = _brute_all_labelings(v[r].numpy(), w[r].numpy(), k)
        assert sse[r].item() == pytest.approx(ref, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("k", [2, 4, 5])
def test_optimal_equals_brute_force_over_contiguous_partitions(k: int) -> None:
    v, w = _rows(2, 5, 9)
    w[0, :3] = 0.0  # weightless values
    v[1, 4:7] = v[1, 4]  # ties
    codes, table = optimal_kmeans(v, w, k)
    sse = weighted_sse(v, w, codes, table)
    for r in range(v.shape[0]):
        ref = _brute_contiguous(v[r].numpy(), w[r].numpy(), k)
        assert sse[r].item() == pytest.approx(ref, rel=1e-10, abs=1e-12)
    assert (table[:, 1:] >= table[:, :-1]).all()


def test_optimal_with_more_clusters_than_values_is_exact() -> None:
    v, w = _rows(3, 2, 5)
    codes, table = optimal_kmeans(v, w, 8)
    assert (weighted_sse(v, w, codes, table).abs() < 1e-20).all()


def test_heuristics_never_beat_the_optimum_and_sklearn_agrees() -> None:
    from sklearn.cluster import KMeans

    v, w = _rows(4, 6, 200)
    for k in (4, 8):
        codes, table = optimal_kmeans(v, w, k)
        opt = weighted_sse(v, w, codes, table)
        lc, lt = lloyd_kmeans(v, w, k, seed=0)
        lloyd = weighted_sse(v, w, lc, lt)
        assert (lloyd >= opt * (1 - 1e-12)).all()
        assert (lloyd <= 1.5 * opt).all()
        for r in range(v.shape[0]):
            km = KMeans(k, n_init=4, random_state=0).fit(
                v[r, :, None].numpy(), sample_weight=w[r].numpy()
            )
            assert km.inertia_ >= opt[r].item() * (1 - 1e-9)
            assert lloyd[r].item() <= 1.25 * km.inertia_


def test_lloyd_is_deterministic_and_seeded() -> None:
    v, w = _rows(5, 8, 64)
    a = lloyd_kmeans(v, w, 8, seed=3)
    b = lloyd_kmeans(v, w, 8, seed=3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = lloyd_kmeans(v, w, 8, seed=4, iterations=0)
    assert not torch.equal(a[1], c[1])


def _brute_best_split(v: np.ndarray, w: np.ndarray) -> float:
    n = len(v)
    if n < 2:
        return _sse_of_labels(v, w, (0,) * n)
    return min(_sse_of_labels(v, w, (0,) * t + (1,) * (n - t)) for t in range(1, n))


def test_split_runs_is_the_exact_best_split_of_every_run() -> None:
    v, w = _rows(6, 4, 40)
    sv, order = torch.sort(v, 1)
    sw = w.gather(1, order)
    codes, table = lloyd_kmeans(sv, sw, 4, seed=0)
    new_codes, new_table = split_runs(sv, sw, codes, table)
    assert torch.equal(new_codes >> 1, codes)
    for r in range(4):
        for c in range(4):
            m = (codes[r] == c).numpy()
            if not m.any():
                continue
            got = weighted_sse(
                sv[r, m], sw[r, m], new_codes[r, m] - 2 * c, new_table[r, 2 * c : 2 * c + 2]
            )
            ref = _brute_best_split(sv[r, m].numpy(), sw[r, m].numpy())
            assert got.item() == pytest.approx(ref, rel=1e-10, abs=1e-14)


def test_split_of_a_single_value_keeps_the_parent_centroid() -> None:
    sv = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64)
    sw = torch.ones_like(sv)
    codes = torch.tensor([[0, 1, 1]])
    table = torch.tensor([[0.0, 1.5]], dtype=torch.float64)
    new_codes, new_table = split_runs(sv, sw, codes, table)
    assert new_codes.tolist() == [[0, 2, 3]]
    assert new_table.tolist() == [[0.0, 0.0, 1.0, 2.0]]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"values": [1.0, 2.0]}, TypeError, "values"),
        ({"weights": torch.ones(3)}, ValueError, "weights"),
        ({"weights": -torch.ones(2)}, ValueError, "weights"),
        ({"values": torch.tensor([1.0, float("nan")])}, ValueError, "values"),
        ({"n_clusters": 0}, ValueError, "n_clusters"),
        ({"n_clusters": 2.0}, TypeError, "n_clusters"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, error, match) -> None:
    args = {"values": torch.tensor([1.0, 2.0]), "weights": torch.ones(2), "n_clusters": 2}
    args.update(kwargs)
    for solver in (lloyd_kmeans, optimal_kmeans):
        with pytest.raises(error, match=match):
            solver(args["values"], args["weights"], args["n_clusters"])
