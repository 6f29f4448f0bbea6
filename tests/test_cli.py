"""The ``shieldgym`` command (main(argv) -> exit status) and the report helpers it prints with."""

from __future__ import annotations

import csv
import importlib.util

import numpy as np
import pytest

import shieldgym
from shieldgym import cli
from shieldgym.evaluation import rollout, summarize
from shieldgym.report import format_table, machine_header, plot_summary, write_csv

needs_bullet = pytest.mark.skipif(importlib.util.find_spec("bullet_safety_gym") is None, reason="bullet-safety-gym missing")


# --- report -----------------------------------------------------------------------------------------


def test_format_table_text_and_markdown_are_exact():
    rows = [{"task": "A", "ret": 1.5, "n": 3}, {"task": "Bb", "ret": -10.25, "n": 12}]
    assert format_table(rows, ["task", ("ret", "return"), "n"]) == (
        "task  return   n\n----  ------  --\nA       1.50   3\nBb    -10.25  12"
    )
    assert format_table(rows, ["task", ("ret", "R", ".1f")], markdown=True) == (
        "| task |     R |\n| ---- | ----: |\n| A    |   1.5 |\n| Bb   | -10.2 |"
    )
    with pytest.raises(ValueError, match="column"):
        format_table(rows, [("ret",)])  # type: ignore[list-item]


def test_plot_summary_writes_a_small_png_with_variants_side_by_side(tmp_path):
    rows = [
        {"task": t, "variant": v, "ret_mean": i + j, "ret_std": 0.1, "cost_mean": 3.0 - j, "violations_mean": 1.0}
        for i, t in enumerate(["SafetyBallCircle-v0", "SafetyPointGoal1-v0"])
        for j, v in enumerate(["baseline", "shielded"])
    ]
    path = plot_summary(rows, tmp_path / "sub" / "p.png", title="t")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 300_000
    with pytest.raises(ValueError, match="at least one row"):
        plot_summary([], tmp_path / "q.png")
    with pytest.raises(ValueError, match="group key 'task'"):
        plot_summary([{"variant": "x", "ret_mean": 1.0}], tmp_path / "q.png")


def test_write_csv_and_machine_header(tmp_path):
    path = write_csv([{"a": 1, "b": 2.5}, {"a": 2, "c": "x"}], tmp_path / "r.csv")
    assert path.read_text().splitlines() == ["a,b,c", "1,2.5,", "2,,x"]
    header = machine_header("shieldgym benchmark")
    assert "`shieldgym benchmark`" in header and "load average" in header and "gymnasium" in header


# --- commands ---------------------------------------------------------------------------------------


def test_envs_lists_suites_and_tasks(capsys):
    assert cli.main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "safety-gymnasium" in out and "bullet-safety-gym" in out and "298" in out
    assert cli.main(["envs", "--suite", "bullet-safety-gym"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("Safety") for line in lines) == 18
    assert any(line.split()[:4] == ["SafetyBallRun-v0", "bullet-safety-gym", "yes", "100"] for line in lines)


def test_errors_go_to_stderr_with_status_2_and_no_traceback(capsys):
    assert cli.main(["run", "SafetyBallCirle-v0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shieldgym: error: Unknown env id") and "SafetyBallCircle-v0" in err and "Traceback" not in err
    assert cli.main(["run", "SafetyBallCircle-v0", "--episodes", "0"]) == 2
    assert "positive integer" in capsys.readouterr().err
    assert cli.main(["envs", "--suite", "nope"]) == 2
    assert cli.main(["benchmark", "--variants", "nope", "--tasks", "SafetyBallRun-v0"]) == 2
    assert "Unknown variant" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0


@needs_bullet
def test_run_prints_per_episode_rows_matching_a_direct_rollout(capsys):
    assert cli.main(["run", "SafetyBallRun-v0", "--episodes", "2", "--seed", "4", "--policy", "zero", "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("SafetyBallRun-v0  policy=zero  episodes=2  seed=4")
    body = [line.split() for line in out[3:]]
    assert [b[0] for b in body] == ["0", "1", "mean"]
    env = shieldgym.make("SafetyBallRun-v0")
    records = rollout(env, lambda obs: np.zeros(2, dtype=np.float32), 2, seed=4)
    for b, r in zip(body, records):
        assert (int(b[1]), b[2], b[3], int(b[5])) == (r.seed, f"{r.ret:.2f}", f"{r.cost:.2f}", r.length)


@needs_bullet
def test_benchmark_writes_md_csv_png_and_rows_are_reproducible(tmp_path, capsys):
    out = tmp_path / "main"
    args = ["benchmark", "--tasks", "SafetyBallRun-v0", "SafetyBallCircle-v0", "--variants", "random", "zero"]
    assert cli.main([*args, "--episodes", "2", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "SafetyBallCircle-v0" in printed and "wall time" in printed
    with open(out / "benchmark.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["task"], r["variant"]) for r in rows] == [
        ("SafetyBallRun-v0", "random"),
        ("SafetyBallRun-v0", "zero"),
        ("SafetyBallCircle-v0", "random"),
        ("SafetyBallCircle-v0", "zero"),
    ]
    direct = summarize(rollout(shieldgym.make("SafetyBallCircle-v0"), None, 2, seed=cli.DEFAULT_BENCHMARK_SEED))
    assert float(rows[2]["ret_mean"]) == pytest.approx(direct.ret_mean, rel=1e-12)
    assert float(rows[2]["cost_mean"]) == direct.cost_mean
    md = (out / "benchmark.md").read_text()
    assert "shieldgym benchmark --tasks SafetyBallRun-v0" in md and "| SafetyBallCircle-v0 | zero" in md
    assert len((out / "benchmark.png").read_bytes()) < 300_000


@needs_bullet
def test_benchmark_resume_skips_finished_pairs_and_variants_plug_in(tmp_path, monkeypatch):
    out = tmp_path / "r"
    base = ["benchmark", "--tasks", "SafetyBallRun-v0", "--episodes", "1", "--out", str(out), "--quiet"]
    assert cli.main(base) == 0
    first = (out / "benchmark.csv").read_text()

    def boom(env_id, env, seed):
        raise AssertionError("resume must not rerun a finished pair")

    monkeypatch.setitem(cli.VARIANTS, "random", cli.Variant("random", boom))
    assert cli.main([*base, "--resume"]) == 0
    assert (out / "benchmark.csv").read_text() == first

    half = cli.Variant(
        "half", lambda env_id, env, seed: (env, lambda obs: np.full(2, 0.5, np.float32)), tasks=("SafetyBallRun-v0",)
    )
    monkeypatch.setitem(cli.VARIANTS, "half", half)
    rows = cli.run_benchmark(["SafetyBallRun-v0", "SafetyBallCircle-v0"], ["half"], 1, 0, progress=False)
    assert [(r["task"], r["variant"]) for r in rows] == [("SafetyBallRun-v0", "half")]


def test_pretrain_commands_are_added_when_present():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"envs", "run", "benchmark"} <= set(sub.choices)
    if importlib.util.find_spec("shieldgym.pretrain.cli") is not None:
        assert {"collect", "pretrain"} <= set(sub.choices)
