"""benchmarks/eval_safe_predict.py: finding a run's files, clear errors, and one end-to-end evaluation."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import shieldgym
from shieldgym.algos.cqllag import CQLLag

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
ENV = "SafetyPointCircle1-v0"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # the script imports bench_cqllag_safety from its own folder
    try:
        spec = importlib.util.spec_from_file_location("eval_safe_predict", BENCH / "eval_safe_predict.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def _sac_json(workdir: Path, seed: int, ret: float = 40.0) -> None:
    meta = {"steps_done": 100, "eval": {"return": ret, "return_std": 0.0, "cost": 0.0, "cost_std": 0.0}}
    (workdir / f"{ENV}_sac_s{seed}.json").write_text(json.dumps(meta))


def _tiny_run(workdir: Path, seed: int, model_seed: int, sac_return: float) -> CQLLag:
    """A finished run as the benchmark leaves it: a (barely trained) CQLLag zip and SAC's recorded evaluation."""
    model = CQLLag(
        "MlpPolicy",
        shieldgym.make(ENV),
        learning_starts=10,
        batch_size=8,
        seed=model_seed,
        device="cpu",
        policy_kwargs=dict(net_arch=[8, 8]),
        alpha_cql=0.0,
        beta_cql=0.0,
    )
    model.learn(20)
    model.save(workdir / f"{ENV}_cqllag_s{seed}.zip")
    _sac_json(workdir, seed, ret=sac_return)
    return model


def test_find_run_picks_the_seed_and_reports_what_is_missing(script: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="found seeds none"):
        script.find_run(tmp_path, ENV)
    (tmp_path / f"{ENV}_cqllag_s3.zip").write_bytes(b"")
    with pytest.raises(ValueError, match="no SAC run of seed 3"):
        script.find_run(tmp_path, ENV)
    (tmp_path / f"{ENV}_sac_s3.json").write_text(json.dumps({"steps_done": 10}))
    with pytest.raises(ValueError, match="has no recorded evaluation"):
        script.find_run(tmp_path, ENV)
    _sac_json(tmp_path, 3)
    path, seed, sac = script.find_run(tmp_path, ENV)
    assert path.name == f"{ENV}_cqllag_s3.zip" and seed == 3 and sac["return"] == 40.0
    (tmp_path / f"{ENV}_cqllag_s4.zip").write_bytes(b"")
    with pytest.raises(ValueError, match=r"found seeds 3, 4 \(pick one: LABEL=WORKDIR:SEED\)"):
        script.find_run(tmp_path, ENV)
    assert script.find_run(tmp_path, ENV, seed=3)[1] == 3
    with pytest.raises(ValueError, match=r"no SafetyPointCircle1-v0_cqllag_s7\.zip"):
        script.find_run(tmp_path, ENV, seed=7)


def test_end_to_end_the_predict_column_is_the_models_deterministic_policy(
    script: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _tiny_run(tmp_path, seed=2, model_seed=0, sac_return=20.0)
    out = tmp_path / "table.md"
    argv = ["eval_safe_predict.py", "--run", f"tiny={tmp_path}:2", "--episodes", "1", "--n-samples", "4", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    script.main()
    row = [line for line in out.read_text().splitlines() if line.startswith("| tiny |")]
    assert len(row) == 1
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    assert cells[:3] == ["tiny", "2", "20.0"]
    # both columns: one episode on reset seed 2 + 10000, as the benchmark plays it; safe_predict seeded 1, 2, ...
    env = shieldgym.make(ENV)
    returns, costs = [], []
    for safe in (False, True):
        obs, _ = env.reset(seed=10_002)
        ret, cost, step, done = 0.0, 0.0, 0, False
        while not done:
            step += 1
            action = model.safe_predict(obs, n_samples=4, seed=step) if safe else model.predict(obs, deterministic=True)[0]
            obs, r, term, trunc, info = env.step(action)
            ret, cost, done = ret + float(r), cost + float(info["cost"]), term or trunc
        returns.append(ret)
        costs.append(cost)
    assert cells[3:6] == [f"{returns[0]:.1f} ± 0.0", f"{costs[0]:.1f} ± 0.0", f"{returns[0] / 20.0:.3f}"]
    assert cells[6:9] == [f"{returns[1]:.1f} ± 0.0", f"{costs[1]:.1f} ± 0.0", f"{returns[1] / 20.0:.3f}"]
    assert cells[9] == ("yes" if costs[1] <= 25 and returns[1] / 20.0 >= 0.70 else "no")


def test_safe_predict_policy_draws_a_fresh_seed_per_step(script: ModuleType) -> None:
    calls: list[int] = []

    class Model:
        def safe_predict(self, obs: np.ndarray, n_samples: int, threshold: float | None, seed: int) -> np.ndarray:
            calls.append(seed)
            assert n_samples == 5 and threshold == 1.5
            return np.zeros(2)

    policy = script.SafePredictPolicy(Model(), 5, 1.5)
    for _ in range(3):
        action, state = policy.predict(np.zeros(3), deterministic=True)
        assert state is None and action.shape == (2,)
    assert calls == [1, 2, 3]


def test_tuned_columns_replay_tune_safe_threshold_on_the_tuning_seeds(
    script: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tiny_run(tmp_path, seed=3, model_seed=1, sac_return=10.0)
    out = tmp_path / "tuned.md"
    argv = ["eval_safe_predict.py", "--run", f"tiny={tmp_path}", "--episodes", "1", "--n-samples", "2"]
    argv += ["--tune-thresholds", "0,1e6", "--tune-episodes", "1", "--tune-cost-limit", "30", "--eval-offset", "1"]
    argv += ["--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    script.main()
    row = next(line for line in out.read_text().splitlines() if line.startswith("| tiny |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == 16
    # the same tuning, run here on the tuning seed 3 + 20000
    env = shieldgym.make(ENV)
    loaded = CQLLag.load(tmp_path / f"{ENV}_cqllag_s3.zip", device="cpu")
    expected = loaded.tune_safe_threshold(env, [0.0, 1e6], n_episodes=1, cost_limit=30.0, n_samples=2, seed=20_003)
    chosen = next(r for r in expected.results if r.threshold == expected.threshold)
    assert cells[9] == f"{expected.threshold:g}" + ("" if expected.feasible else " (none within the limit)")
    assert cells[10:12] == [f"{chosen.ret_mean / 10.0:.3f}", f"{chosen.cost_mean:.1f}"]
    # the tuned columns: the evaluation episode (reset seed 3 + 10000 + offset 1) at the chosen threshold, draws 1, 2, ...
    obs, _ = env.reset(seed=10_004)
    ret, cost, step, done = 0.0, 0.0, 0, False
    while not done:
        step += 1
        action = loaded.safe_predict(obs, n_samples=2, threshold=expected.threshold, seed=step)
        obs, r, term, trunc, info = env.step(action)
        ret, cost, done = ret + float(r), cost + float(info["cost"]), term or trunc
    assert cells[12:15] == [f"{ret:.1f} ± 0.0", f"{cost:.1f} ± 0.0", f"{ret / 10.0:.3f}"]
    assert cells[15] == ("yes" if cost <= 25 and ret / 10.0 >= 0.70 else "no")
    record = json.loads(out.with_suffix(".json").read_text())["runs"][0]
    assert record["tuning"]["threshold"] == expected.threshold and len(record["tuning"]["results"]) == 2
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_bad_tuning_arguments_are_parser_errors(
    script: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / f"{ENV}_cqllag_s0.zip").write_bytes(b"")
    _sac_json(tmp_path, 0)
    for extra, message in (
        (["--tune-thresholds", "1,x"], "comma-separated numbers"),
        (["--tune-episodes", "0"], ">= 1"),
        (["--eval-offset", "-1"], "--eval-offset must be >= 0"),
        (["--eval-offset", "9995"], "below the tuning seeds"),
        (["--tune-cost-limit", "-1"], "--tune-cost-limit must be a finite number >= 0"),
        (["--tune-cost-limit", "nan"], "--tune-cost-limit must be a finite number >= 0"),
    ):
        monkeypatch.setattr(sys, "argv", ["eval_safe_predict.py", "--run", f"r={tmp_path}", *extra])
        with pytest.raises(SystemExit):
            script.main()
        assert message in capsys.readouterr().err
