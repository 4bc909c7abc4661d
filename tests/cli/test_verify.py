"""``kernelapprox verify`` through :func:`kernelapprox.cli.main`."""

from __future__ import annotations

import json

import pytest

import kernelapprox.cli as cli
import proofs
from proofs import _registry


@pytest.fixture(autouse=True)
def only_verify_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register just the verify command, so these tests do not depend on other commands."""
    monkeypatch.setattr(cli, "COMMANDS", (("verify", "kernelapprox.cli.verify"),))


def _fake(
    status: str, *, name: str = "fake_claim", expected: str = "holds", raises: bool = False
) -> proofs.Claim:
    def run(*, thorough: bool = False) -> proofs.Verdict:
        if raises:
            raise ZeroDivisionError("division by zero in the check")
        return proofs.Verdict(status, f"fake {status}")

    return proofs.Claim(
        name=name,
        title="Fake",
        statement="$0 = 1$",
        source="tests",
        method="refuted" if expected == "refuted" else "symbolic",
        expected=expected,
        family="qmc",
        run=run,
        module=__name__,
    )


def _use(monkeypatch: pytest.MonkeyPatch, *claims: proofs.Claim) -> None:
    monkeypatch.setattr(_registry, "catalogue", lambda: list(claims))


def test_json_for_one_real_claim(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["verify", "--only", "bochner_gaussian", "--format", "json", "--no-progress"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 0 and payload["exit_status"] == 0
    (claim,) = payload["claims"]
    assert claim["name"] == "bochner_gaussian" and claim["verdict"] == "holds"
    assert claim["method"] == "symbolic" and claim["result"] == "pass"
    assert set(claim["evidence"]["residuals"].values()) == {"0"}


def test_only_accepts_commas_and_repeats(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        [
            "verify",
            "--only",
            "positive_features,cos_variance",
            "--only",
            "dct_orthogonal",
            "--format",
            "json",
            "--no-progress",
        ]
    )
    names = [c["name"] for c in json.loads(capsys.readouterr().out)["claims"]]
    assert code == 0 and names == ["positive_features", "cos_variance", "dct_orthogonal"]


def test_unknown_name_exits_2_and_lists_valid_names(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["verify", "--only", "no_such_claim", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no_such_claim" in err and "valid names:" in err and "bochner_gaussian" in err


def test_failing_claim_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _use(monkeypatch, _fake("holds", name="good"), _fake("fails", name="bad"))
    code = cli.main(["verify", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILS (expected holds)" in out and "[FAIL] bad: fake fails" in out


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [("refuted", "holds", 1), ("holds", "refuted", 1), ("refuted", "refuted", 0)],
)
def test_verdict_must_equal_expected(
    monkeypatch: pytest.MonkeyPatch, status: str, expected: str, code: int
) -> None:
    _use(monkeypatch, _fake(status, expected=expected))
    assert cli.main(["verify", "--no-progress", "--format", "json"]) == code


def test_exception_in_a_check_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _use(monkeypatch, _fake("holds", raises=True))
    assert cli.main(["verify", "--no-progress", "--format", "json"]) == 1
    claim = json.loads(capsys.readouterr().out)["claims"][0]
    assert claim["verdict"] == "fails" and "ZeroDivisionError" in claim["summary"]


def test_pending_is_shown_and_fails_only_with_strict(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _use(monkeypatch, _fake("holds", name="good"), _fake("pending", name="later"))
    assert cli.main(["verify", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "PENDING" in out and "1 pass, 1 pending, 0 fail" in out
    assert cli.main(["verify", "--no-progress", "--strict"]) == 1


def test_markdown_and_text_tables(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(["verify", "--only", "positive_features", "--format", "markdown", "--no-progress"])
        == 0
    )
    md = capsys.readouterr().out
    assert md.startswith("# Theory verification")
    assert "| Claim | Source | Method | Verdict | Evidence | Time |" in md
    assert "| `positive_features` |" in md
    assert cli.main(["verify", "--only", "positive_features", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert text.split("\n", 1)[0].split() == [
        "claim",
        "source",
        "method",
        "verdict",
        "evidence",
        "time",
    ]


def test_progress_bar_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "--only", "positive_features", "--format", "json"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)  # stdout stays machine-readable


def test_list_and_family(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "--list", "--family", "attention"]) == 0
    assert capsys.readouterr().out.split()[0] == "chunked_linear_attention"
    assert cli.main(["verify", "--family", "nope", "--list"]) == 2


def test_write_docs(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(
            [
                "verify",
                "--only",
                "chunked_linear_attention",
                "--no-progress",
                "--write-docs",
                str(tmp_path),
            ]
        )
        == 0
    )
    page = (tmp_path / "attention.md").read_text()
    assert "Chunked causal linear attention" in page
    assert "proofs/chunked_linear_attention.py" in page
    assert (tmp_path / "index.md").is_file()


def test_python_m_proofs_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    from proofs.__main__ import main

    assert main(["--only", "positive_features", "--format", "json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["claims"][0]["verdict"] == "holds"
    assert main(["--only", "nope", "--no-progress"]) == 2
    capsys.readouterr()
    assert main(["--list", "--seed", "-1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "python -m proofs: error: --seed must be an integer >= 0, got -1\n"


def test_the_catalogue_is_kernelapprox_proofs_where_the_wheel_installed_it(monkeypatch):
    import importlib.machinery
    import sys
    import types

    from kernelapprox.cli.verify import catalogue_package

    assert catalogue_package() is proofs  # a checkout: the top-level catalogue
    installed = types.ModuleType("kernelapprox.proofs")
    installed.__spec__ = importlib.machinery.ModuleSpec("kernelapprox.proofs", None)
    monkeypatch.setitem(sys.modules, "kernelapprox.proofs", installed)
    assert catalogue_package() is installed


def test_seed_offsets_every_seeded_claim_and_is_recorded(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--seed 3`` reruns ``koksma_hlawka_1d`` from its recorded seed + 3 (a different
    experiment, recorded in the JSON) and it still holds; 0 reruns the recorded seed."""
    recorded = proofs.select(["koksma_hlawka_1d"])[0].seed
    runs = {}
    for seed in (0, 3):
        argv = ["verify", "--only", "koksma_hlawka_1d", "--format", "json", "--no-progress"]
        code = cli.main([*argv, "--seed", str(seed)])
        runs[seed] = json.loads(capsys.readouterr().out)
        assert code == 0 and runs[seed]["seed"] == seed
        (claim,) = runs[seed]["claims"]
        assert claim["seed"] == recorded + seed and claim["recorded_seed"] == recorded
        assert claim["verdict"] == "holds"
    assert runs[0]["claims"][0]["evidence"] != runs[3]["claims"][0]["evidence"]


def test_seed_names_the_claims_that_keep_their_recorded_seed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = []

    def seeded(*, thorough: bool = False, seed: int = 11) -> proofs.Verdict:
        seen.append(seed)
        return proofs.Verdict("holds", f"ran from seed {seed}")

    def fixed(*, thorough: bool = False) -> proofs.Verdict:
        return proofs.Verdict("holds", "ran from its own seed")

    common = dict(
        title="Fake", statement="$0 = 0$", source="tests", method="numerical",
        expected="holds", family="qmc", module=__name__,
    )  # fmt: skip
    _use(
        monkeypatch,
        proofs.Claim(name="seeded_claim", run=seeded, seed=11, **common),
        proofs.Claim(name="fixed_claim", run=fixed, seed=5, **common),
    )
    assert cli.main(["verify", "--seed", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert seen == [15]
    assert out.strip().splitlines()[-1] == (
        "seed offset 4: seeded experiments ran from their recorded seed + 4; these take no "
        "seed and kept their recorded one: fixed_claim"
    )
    assert cli.main(["verify", "--format", "json", "--no-progress"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert seen == [15, 11] and payload["seed"] == 0 and payload["fixed_seed_claims"] == []
    assert [c["seed"] for c in payload["claims"]] == [11, 5]


def test_write_docs_refuses_a_seed_offset(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["verify", "--only", "dct_orthogonal", "--write-docs", str(tmp_path / "d")]
    assert cli.main([*argv, "--seed", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--write-docs" in err[0] and "--seed 2" in err[0]
    assert not (tmp_path / "d").exists()
