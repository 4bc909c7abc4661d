"""``kernelapprox dynamics`` through ``kernelapprox.cli.main`` (small sizes)."""

from __future__ import annotations

import json

import pytest

from kernelapprox import cli


@pytest.fixture(autouse=True)
def only_dynamics(monkeypatch):
    # test this command alone, whatever else COMMANDS lists in this checkout
    monkeypatch.setattr(cli, "COMMANDS", (("dynamics", "kernelapprox.cli.dynamics"),))


def _json(capsys, argv):
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_theorem_json_keys(capsys):
    out = _json(
        capsys,
        [
            "dynamics",
            "theorem",
            "--dim",
            "12",
            "--rank",
            "2",
            "--steps",
            "60",
            "--format",
            "json",
            "--no-progress",
        ],
    )
    for key in (
        "invariance_error",
        "trajectory_gap",
        "leakage",
        "adam_leakage",
        "masked_leakage",
        "subspace_cosine",
    ):
        assert key in out
    assert out["invariance_error"] < 1e-10 and out["trajectory_gap"] < 1e-10
    assert out["leakage"] < 1e-10 and out["adam_leakage"] > 1e-2


def test_theorem_adam_reports_null_not_nan(capsys):
    out = _json(
        capsys,
        [
            "dynamics",
            "theorem",
            "--dim",
            "10",
            "--rank",
            "2",
            "--steps",
            "30",
            "--optimizer",
            "adam",
            "--format",
            "json",
            "--no-progress",
        ],
    )
    assert out["invariance_error"] is None and out["leakage"] > 1e-2


def test_theorem_text_and_plots(capsys, tmp_path):
    assert (
        cli.main(
            [
                "dynamics",
                "--dim",
                "10",
                "--rank",
                "2",
                "--steps",
                "40",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "invariance_error" in text and "trajectory_gap" in text
    for name in ("singular_values.png", "principal_angles.png", "loss.png", "results.json"):
        assert (tmp_path / name).stat().st_size > 0


def test_completion_json(capsys, tmp_path):
    out = _json(
        capsys,
        [
            "dynamics",
            "completion",
            "--dim",
            "16",
            "--rank",
            "2",
            "--fraction",
            "0.5",
            "--lr",
            "100",
            "--steps",
            "200",
            "--format",
            "json",
            "--no-progress",
            "--out",
            str(tmp_path),
        ],
    )
    assert set(out["models"]) == {"full", "compressed", "frozen"}
    for model in out["models"].values():
        assert {"iterations", "wall_seconds", "relative_recovery_error"} <= set(model)
    assert (tmp_path / "loss.png").exists()


def test_depth_text(capsys):
    assert (
        cli.main(
            [
                "dynamics",
                "depth",
                "--dim",
                "12",
                "--rank",
                "2",
                "--widths",
                "4,12",
                "--steps",
                "100",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "width sweep" in capsys.readouterr().out


def test_bad_input_exits_2(capsys):
    assert cli.main(["dynamics", "theorem", "--dim", "4", "--rank", "3", "--no-progress"]) == 2
    assert "rank" in capsys.readouterr().err
    capsys.readouterr()
    # a malformed list is argparse's usage error, as for every command's comma lists
    with pytest.raises(SystemExit) as exit_:
        cli.main(["dynamics", "depth", "--widths", "a,b", "--no-progress"])
    assert exit_.value.code == 2
    assert "--widths: expected comma-separated positive integers" in capsys.readouterr().err
