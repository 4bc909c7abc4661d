"""The study summary's comparisons: against the baseline, against analytic RMS predictions."""

import json
import warnings

import numpy as np
import pytest

from kernelapprox.estimators.comparisons import error_ratio, features_ratio
from kernelapprox.sampling import QMCBalanceWarning
from kernelapprox.study import StudySpec, run_study, summarize
from kernelapprox.study.report import format_comparison, format_table, shares_randomness


@pytest.fixture(autouse=True)
def _quiet_balance():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QMCBalanceWarning)
        yield


@pytest.fixture(scope="module")
def run():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QMCBalanceWarning)
        spec = StudySpec(maps=["sincos", "positive"], samplers=["mc", "sobol", "orthogonal"],
                         features=[8, 16, 32], replications=4, n_points=40,
                         metrics=["rel_fro", "max_abs"])  # fmt: skip
        return run_study(spec, progress=False)


def _values(run, **where):
    rows = [r for r in run.rows if all(r[k] == v for k, v in where.items())]
    ms = sorted({r["n_features"] for r in rows})
    table = np.zeros((run.spec.replications, len(ms)))
    for r in rows:
        table[r["replication"], ms.index(r["n_features"])] = r["value"]
    return ms, table


def test_every_interval_is_positive(run):
    summary = summarize(run)
    for c in summary["cells"]:
        assert 0 < c["ci_low"] <= c["mean"] <= c["ci_high"]
        assert 0 < c["boot_ci_low"] <= c["mean"] <= c["boot_ci_high"]
        if "ratio" in c:
            assert 0 < c["ratio_ci_low"] <= c["ratio"] <= c["ratio_ci_high"]


def test_ratios_against_the_baseline_are_those_of_the_rows(run):
    summary = summarize(run)
    assert summary["baseline"] == "mc"
    cell = next(c for c in summary["cells"] if c["sampler"] == "sobol" and c["n_features"] == 16
                and c["map"] == "sincos" and c["metric"] == "rel_fro")  # fmt: skip
    ms, sobol = _values(run, sampler="sobol", map="sincos", metric="rel_fro")
    _, mc = _values(run, sampler="mc", map="sincos", metric="rel_fro")
    ref = error_ratio(sobol[:, 1], mc[:, 1])  # independent replications: Welch on logs
    assert cell["ratio_method"] == "welch-log-t"
    assert (cell["ratio"], cell["ratio_ci_low"], cell["ratio_ci_high"]) == pytest.approx(
        (ref.value, ref.ci_low, ref.ci_high), rel=1e-12
    )
    assert not any("ratio" in c for c in summary["cells"] if c["sampler"] == "mc")
    curve = next(c for c in summary["curves"] if c["sampler"] == "sobol"
                 and c["map"] == "sincos" and c["metric"] == "rel_fro")  # fmt: skip
    est, relation, target = features_ratio(ms, sobol, mc)
    assert curve["features_ratio_relation"] == relation
    assert curve["features_ratio_error"] == pytest.approx(target)
    if relation != "?":
        assert curve["features_ratio"] == pytest.approx(est.value, rel=1e-12)


def test_replications_of_different_samplers_are_not_paired(run):
    mc, sobol = (c for c in run.spec.cells()[0] if c.n_features == 8 and c.map == "sincos"
                 and c.sampler in ("mc", "sobol"))  # fmt: skip
    assert not shares_randomness(mc, sobol, 0, 4)
    assert shares_randomness(mc, mc, 0, 4)


def test_another_baseline_and_a_bad_one(run):
    from dataclasses import replace

    other = run.__class__(**{**vars(run), "spec": replace(run.spec, baseline="sobol")})
    summary = summarize(other)
    assert summary["baseline"] == "sobol"
    assert any("ratio" in c for c in summary["cells"] if c["sampler"] == "mc")
    assert "against sobol" in format_comparison(summary)
    absent = run.__class__(**{**vars(run), "spec": replace(run.spec, baseline="halton")})
    summary = summarize(absent)  # the baseline is not in the study: no comparison
    assert summary["baseline"] is None and format_comparison(summary) == ""
    with pytest.raises(ValueError, match="baseline"):
        replace(run.spec, baseline="nope").validate()


def test_analytic_verdicts_are_holm_adjusted_rms_tests(run):
    summary = summarize(run)
    tested = [c for c in summary["cells"] if c.get("analytic_rmse") is not None]
    assert tested and summary["analytic_cells_tested"] == len(tested)
    for c in tested:
        assert c["rms_ci_low"] <= c["rms"] <= c["rms_ci_high"] and c["rms"] >= c["mean"]
        assert c["analytic_p_holm"] >= c["analytic_p"]
        assert c["outside_prediction"] == (c["analytic_p_holm"] <= 0.05)


def test_one_replication_gives_no_verdict_and_no_interval():
    spec = StudySpec(maps=["sincos"], samplers=["mc", "sobol"], features=[8, 16],
                     replications=1, n_points=30, metrics=["rel_fro"])  # fmt: skip
    summary = summarize(run_study(spec, progress=False))
    for c in summary["cells"]:
        assert c["ci_low"] is None and c.get("outside_prediction") is None
        assert c.get("ratio_ci_low") is None
    table = format_table(summary)
    assert "agrees" not in table and "no interval" in table


def test_dims_sort_as_numbers_in_the_summary_and_the_table():
    spec = StudySpec(maps=["sincos"], samplers=["mc"], dims=[32, 2, 8], features=[8, 16],
                     replications=2, n_points=30, metrics=["rel_fro"])  # fmt: skip
    summary = summarize(run_study(spec, progress=False))
    assert [c["dim"] for c in summary["curves"]] == [2, 8, 32]
    rows = format_table(summary).splitlines()[3:6]
    assert [r.split()[0] for r in rows] == ["sincos"] * 3
    assert [r.split()[2] for r in rows] == ["2", "8", "32"]


def test_heavy_tailed_maps_warn_about_too_few_replications(run):
    summary = summarize(run)
    positive = [c for c in summary["curves"] if c["map"] == "positive"]
    assert all(c["too_few_replications"] and c["replications_needed"] >= 375 for c in positive)
    assert not any("too_few_replications" in c for c in summary["curves"] if c["map"] == "sincos")
    assert "heavy-tailed" in format_table(summary)


def test_a_map_registered_later_is_judged_by_its_own_heavy_tailed_flag(monkeypatch):
    from kernelapprox import features

    class HeavySinCos(features.SinCos):
        name = "heavy_sincos"
        heavy_tailed = True

    monkeypatch.setitem(features.MAPS, "heavy_sincos", HeavySinCos)
    spec = StudySpec(maps=["heavy_sincos", "sincos"], samplers=["mc"], features=[8, 16],
                     replications=2, n_points=30, metrics=["rel_fro"])  # fmt: skip
    curves = summarize(run_study(spec, progress=False))["curves"]
    heavy = [c for c in curves if c["map"] == "heavy_sincos"]
    assert heavy and all(c["too_few_replications"] for c in heavy)
    assert not any("too_few_replications" in c for c in curves if c["map"] == "sincos")


def test_figures_keep_sampler_styles_positive_bands_and_guides(run):
    import matplotlib.pyplot as plt

    from kernelapprox.study.report import SAMPLER_STYLE, convergence_figure

    summary = summarize(run)
    low = next(c for c in summary["cells"] if c["metric"] == "max_abs")
    low["ci_low"] = -0.5  # an interval that would stretch a log axis is never drawn
    colors = {}
    for metric in ("rel_fro", "max_abs"):
        fig = convergence_figure(summary, metric)
        try:
            axes = [ax for ax in fig.axes if ax.get_visible()]
            assert len(axes) == 2  # a panel per map
            for ax in axes:
                bottom, top = ax.get_ylim()
                assert 1e-4 < bottom < top < 1e3  # the bug: 1e-315 .. 1e13
                assert [t.get_text() for t in ax.get_xticklabels()] == ["8", "16", "32"]
                guides = [ln for ln in ax.get_lines() if ln.get_color() == "0.45"]
                assert len(guides) == 2  # m^-1/2 and m^-1
                for ln in ax.get_lines():
                    if ln.get_color() != "0.45":
                        colors.setdefault(ln.get_marker(), set()).add(ln.get_color())
            legend = [t.get_text() for t in fig.legends[0].get_texts()]
            assert legend == ["mc", "orthogonal", "sobol", "rate m^-1/2", "rate m^-1"]
        finally:
            plt.close(fig)
    # one colour per marker (sampler) across panels and figures, the table's fixed styles
    assert all(len(c) == 1 for c in colors.values())
    assert colors[SAMPLER_STYLE["sobol"][1]] == {SAMPLER_STYLE["sobol"][0]}


def test_a_figure_per_metric(tmp_path):
    from kernelapprox.cli import main

    out = tmp_path / "s"
    argv = ["study", "--out", str(out), "--maps", "sincos", "--samplers", "mc,sobol",
            "--n-points", "30", "--features", "8,16", "--replications", "2", "--no-progress",
            "--metric", "rel_fro,max_abs", "--baseline", "sobol"]  # fmt: skip
    assert main(argv) == 0
    for name in ("convergence.png", "convergence_max_abs.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_prints_the_comparison_and_takes_all_rows(tmp_path, capsys):
    from kernelapprox.cli import main

    data = tmp_path / "d.csv"
    data.write_text("\n".join(f"{i % 7},{i % 5},{i % 3}" for i in range(50)) + "\n")
    argv = ["study", "--out", str(tmp_path / "s"), "--data", str(data), "--n-points", "all",
            "--maps", "sincos", "--samplers", "mc,sobol", "--features", "8,16",
            "--replications", "3", "--no-progress", "--metric", "rel_fro"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "rel_fro against mc" in printed and "features ratio" in printed
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["datasets"][0]["n_points"] == 50 and summary["baseline"] == "mc"
    with pytest.raises(SystemExit) as exit_:  # argparse refuses the option value
        main([*argv, "--n-points", "many"])
    assert exit_.value.code == 2 and "'all'" in capsys.readouterr().err


def test_a_panel_without_finite_values_says_so(run):
    import matplotlib.pyplot as plt

    from kernelapprox.study.report import convergence_figure

    summary = summarize(run)
    for c in summary["cells"]:
        if c["map"] == "positive":
            c["mean"] = c["ci_low"] = c["ci_high"] = None  # as an overflowing map
    fig = convergence_figure(summary, "rel_fro")
    try:
        empty = next(ax for ax in fig.axes if "positive" in ax.get_title())
        assert not empty.get_xticks().size and not empty.get_yticks().size
        assert any("no finite value" in t.get_text() for t in empty.texts)
    finally:
        plt.close(fig)
