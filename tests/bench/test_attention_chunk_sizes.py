"""``benchmarks/attention_chunk_sizes.py`` times the chunk lengths it names, with well-formed
rows (nothing is compared against a time here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kernelapprox.bench.attention import Case, algorithm_flops
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load():
    return load_script(ROOT / "benchmarks" / "attention_chunk_sizes.py")


def test_rows_per_chunk_length_with_ratios_to_the_default(tmp_path: Path) -> None:
    bench = _load()
    out = tmp_path / "chunks.json"
    argv = ["--lengths", "48", "--chunks", "16,64", "--rounds", "2", "--out", str(out)]
    assert bench.main(argv) == 0
    record = json.loads(out.read_text())
    assert record["clock"] == "process CPU" and record["threads"] == 1
    assert record["environment"]["cpu_huge_pages"] in (True, False, None)
    rows = record["rows"]
    assert [(r["mode"], r["chunk"]) for r in rows] == [
        ("fwd", 16),
        ("fwd", 64),
        ("fwdbwd", 16),
        ("fwdbwd", 64),
    ]
    for r in rows:
        case = Case("ours", r["mode"], 48, 64, 256)
        assert r["gflop"] == pytest.approx(algorithm_flops(case, chunk=r["chunk"])["total"] / 1e9)
        assert len(r["ms_all"]) == 2 and r["page_faults"] >= 0
        lo, hi = r["ratio_range"]
        assert lo <= r["ratio_to_64"] <= hi
    assert all(r["ratio_to_64"] == 1.0 for r in rows if r["chunk"] == 64)


def test_the_step_runs_the_chunk_length_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _load()
    seen = []
    real = bench.feature_attention

    def spy(*args, **kwargs):
        seen.append(kwargs["chunk_size"])
        return real(*args, **kwargs)

    monkeypatch.setattr(bench, "feature_attention", spy)
    case = Case("ours", "fwdbwd", 40, 8, 16, heads=2)
    bench.step(case, 8)()
    bench.step(Case("ours", "fwd", 40, 8, 16, heads=2), 32)()
    assert seen == [8, 32]


def test_forward_backward_step_leaves_no_gradient_behind() -> None:
    bench = _load()
    case = Case("ours", "fwdbwd", 40, 8, 16, heads=2)
    fn = bench.step(case, 16)
    fn()
    cells = fn.__closure__ or ()
    tensors = [c.cell_contents for c in cells if isinstance(c.cell_contents, torch.Tensor)]
    assert any(t.requires_grad for t in tensors)
    assert all(t.grad is None for t in tensors)


@pytest.mark.parametrize(
    "argv", [["--chunks", "0"], ["--modes", "decode"], ["--lengths", "x"], ["--rounds", "0"]]
)
def test_bad_options_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _load().main(argv)
    assert exc.value.code == 2
    assert argv[0] in capsys.readouterr().err
