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
    model = CQLLag(
        "MlpPolicy",
        shieldgym.make(ENV),
        learning_starts=10,
        batch_size=8,
        seed=0,
        device="cpu",
        policy_kwargs=dict(net_arch=[8, 8]),
        alpha_cql=0.0,
        beta_cql=0.0,
    )
    model.learn(20)
    model.save(tmp_path / f"{ENV}_cqllag_s2.zip")
    _sac_json(tmp_path, 2, ret=20.0)
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
    assert cells[3:6] == [f"{returns[0]:.1f} ± 0.0", f"{costs[0]:.1f} ± 0.0", f"{returns[0] / 20.0:.2f}"]
    assert cells[6:9] == [f"{returns[1]:.1f} ± 0.0", f"{costs[1]:.1f} ± 0.0", f"{returns[1] / 20.0:.2f}"]
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
