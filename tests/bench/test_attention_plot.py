"""The attention benchmark's figure: what its title states, why a curve stops, its styles."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelapprox._style import IMPLEMENTATION_STYLE, implementation_style
from kernelapprox.bench.attention import (
    IMPLS,
    _describe,
    _error_notes,
    _reference_curve,
    _skip_notes,
    plot_results,
)
from kernelapprox.study.report import SAMPLER_STYLE


def _row(impl: str, mode: str, T: int, time_ms: float | None, **extra) -> dict:
    row = {"impl": impl, "mode": mode, "T": T, "head_dim": 64, "n_features": 256, "batch": 2,
           "heads": 4, "causal": True, "dtype": "float32", "device": "cpu", "input_std": 1.0,
           "decode_tokens": 8}  # fmt: skip
    if time_ms is None:
        row["status"] = "skipped (a shorter T took > 6 s)"
    else:
        row.update(
            {"status": "ok", "time_ms": time_ms, "peak_mb": T / 10, "rel_error": 0.5, **extra}
        )
    return row


def _rows() -> list[dict]:
    rows = []
    for T, scale in ((512, 1.0), (1024, 2.0), (2048, 4.0)):
        rows.append(_row("ours", "fwd", T, 10.0 * scale))
        rows.append(_row("sdpa", "fwd", T, 5.0 * scale**2, rel_error=0.0))
        rows.append(_row("performer", "fwdbwd", T, 7000.0 * scale if T < 2048 else None))
        rows.append(_row("ours", "decode", T, 3.0))
    return rows


def test_title_states_what_every_curve_shares() -> None:
    ok = [r for r in _rows() if r["status"] == "ok"]
    title, with_shape = _describe(ok, {"threads": 2})
    assert title == (
        "causal attention, CPU float32, batch 2, 4 heads, head dim d = 64, m = 256 features, "
        "2 torch threads"
    )
    assert not with_shape
    ok.append({**ok[0], "n_features": 128})
    title, with_shape = _describe(ok, None)
    assert with_shape and "m =" not in title


def test_a_curve_that_stops_says_why() -> None:
    notes = _skip_notes(_rows(), "fwdbwd")
    assert notes == [
        "performer: stops before T = 2048: T = 1024 took 14.0 s > 6 s, so longer T were not run"
    ]
    assert _skip_notes(_rows(), "fwd") == []


def test_every_mode_memory_and_error_get_a_panel(tmp_path: Path) -> None:
    path = plot_results(_rows(), tmp_path / "bench.png", {"threads": 2})
    assert path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="rows"):
        plot_results([r for r in _rows() if r["status"] != "ok"], tmp_path / "none.png")


def test_implementations_have_one_style_each_and_never_a_samplers_colour() -> None:
    assert set(IMPLS) <= set(IMPLEMENTATION_STYLE)
    sampler_colours = {colour for colour, _ in SAMPLER_STYLE.values()}
    attention = {name: implementation_style(name) for name in IMPLS}
    assert len({colour for colour, _ in attention.values()}) == len(IMPLS)
    assert not {colour for colour, _ in IMPLEMENTATION_STYLE.values()} & sampler_colours
    assert implementation_style("unknown") == ("k", "o")


def _with_references(rows: list[dict]) -> list[dict]:
    """The rows as a run of the current bench stores them: per-T references on every error
    row, the analytic spread on feature-attention rows."""
    out = []
    for r in rows:
        r = dict(r)
        if r.get("status") == "ok" and r["mode"] != "decode":
            r.update(uniform_error=0.6 + r["T"] / 1e4, input_scale=8.0 + r["T"] / 1e5)
            if r["impl"] != "sdpa":
                r["kernel_rel_sd"] = 170.0 + r["T"] / 512
        out.append(r)
    return out


def test_error_panel_states_the_no_information_line_and_the_estimators_spread(
    tmp_path: Path,
) -> None:
    rows = _with_references(_rows())
    ok = [r for r in rows if r["status"] == "ok"]
    assert _reference_curve(ok, "fwd", "uniform_error") == [
        (512, 0.6512), (1024, 0.7024), (2048, 0.8048)
    ]  # fmt: skip
    notes = _error_notes(ok, "fwd")
    assert notes == [
        r"$|q|^2/\sqrt{d}$ = 8.01 (mean over tokens)",
        "m = 256 positive features: relative SD\nof one score estimate 172 (median pair;\n"
        "Choromanski et al. 2021, Lemma 2, i.i.d. w)",
    ]
    # rows of an earlier run have none of these fields: the panel draws without them
    assert (
        _reference_curve([r for r in _rows() if r["status"] == "ok"], "fwd", "uniform_error") == []
    )
    assert _error_notes([r for r in _rows() if r["status"] == "ok"], "fwd") == []
    assert plot_results(rows, tmp_path / "bench.png").stat().st_size > 10_000
