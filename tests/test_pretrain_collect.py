"""Data collection into Minari datasets and the ``collect`` / ``pretrain`` subcommands."""

from __future__ import annotations

import argparse
import os

import numpy as np
import pytest
from test_vlpm_wrapper import CameraEnv, RenderEnv

from shieldgym.pretrain.collect import collect, minari_root
from shieldgym.pretrain.infonce import ContrastiveData

pytest.importorskip("minari")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:minari")


def _policy(obs) -> np.ndarray:
    return np.array([obs["state"][0] / 10, 0.5], np.float32)


def test_collect_any_env_round_trip(tmp_path) -> None:
    dataset = collect(CameraEnv(), _policy, 3, "test/camera-v0", root=tmp_path, seed=4, progress=False)
    assert dataset.total_episodes == 3
    data = ContrastiveData.from_minari(dataset)
    env = CameraEnv()
    expected_state, expected_action, expected_depth, expected_rgb = [], [], [], []
    for episode in range(3):  # replay the same seeds by hand
        obs, _ = env.reset(seed=4 + episode)
        done = False
        while not done:
            action = _policy(obs)
            expected_state.append(obs["state"])
            expected_depth.append(obs["depth"])
            expected_rgb.append(obs["rgb"])
            expected_action.append(action)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    np.testing.assert_array_equal(data.state, np.array(expected_state, np.float32))
    np.testing.assert_array_equal(data.action, np.array(expected_action))
    np.testing.assert_array_equal(data.depth, np.array(expected_depth))
    # Minari stores uint8 images as JPEG: close, not bit-exact
    assert data.rgb.shape == (len(expected_rgb), 32, 32, 3)
    assert np.abs(data.rgb.astype(int) - np.array(expected_rgb, int)).mean() < 8
    assert "MINARI_DATASETS_PATH" not in os.environ or os.environ["MINARI_DATASETS_PATH"] != str(tmp_path)


def test_collect_render_env_adds_rgb(tmp_path) -> None:
    dataset = collect(RenderEnv(), lambda obs: np.zeros(1, np.float32), 1, "test/render-v0", root=tmp_path, progress=False)
    episode = next(dataset.iterate_episodes())
    assert sorted(episode.observations) == ["rgb", "state"]
    assert episode.observations["state"].shape == (5, 2)


def test_collect_rejects_dict_without_images(tmp_path) -> None:
    from gymnasium import spaces

    env = CameraEnv()
    env.observation_space = spaces.Dict({"state": env.observation_space["state"]})
    with pytest.raises(ValueError, match=r"lacks \['rgb'\]"):
        collect(env, _policy, 1, "test/bad-v0", root=tmp_path, progress=False)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        collect(CameraEnv(), _policy, 0, "test/bad-v0", root=tmp_path, progress=False)


def _parser() -> argparse.ArgumentParser:
    from shieldgym.pretrain.cli import register

    parser = argparse.ArgumentParser(prog="shieldgym")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_pretrain_writes_adapters_and_resumes(tmp_path, capsys) -> None:
    from shieldgym.vlpm.adapters import read_adapter_metadata

    collect(CameraEnv(), _policy, 6, "test/cli-v0", root=tmp_path / "data", progress=False)

    def argv(steps: int) -> list[str]:
        return [
            "pretrain", "--dataset", "test/cli-v0", "--root", str(tmp_path / "data"), "--backbone", "tiny",
            "--out", str(tmp_path / "out"), "--steps", str(steps), "--batch-size", "8", "--dim", "8",
            "--bottleneck", "4", "--checkpoint-every", "2", "--quiet",
        ]  # fmt: skip

    args = _parser().parse_args(argv(4))
    assert args.func(args) == 0
    assert "step 4:" in capsys.readouterr().out
    assert read_adapter_metadata(tmp_path / "out" / "adapters.safetensors")["bottleneck"] == "4"
    args = _parser().parse_args(argv(6))  # continues from the step-4 checkpoint
    assert args.func(args) == 0
    assert "step 6:" in capsys.readouterr().out
    import torch

    assert len(torch.load(tmp_path / "out" / "checkpoint.pt", weights_only=False)["losses"]) == 6


def test_cli_collect_metaworld(tmp_path, capsys) -> None:
    pytest.importorskip("metaworld")
    argv = ["collect", "--tasks", "reach-v3", "--episodes", "1", "--max-steps", "4", "--image-size", "32"]
    args = _parser().parse_args([*argv, "--dataset", "test/mw-v0", "--quiet", "--root", str(tmp_path)])
    assert args.func(args) == 0
    assert "1 episodes, 4 steps" in capsys.readouterr().out
    with minari_root(tmp_path):
        data = ContrastiveData.from_minari("test/mw-v0")
    assert data.rgb.shape == (4, 32, 32, 3) and data.depth.shape == (4, 32, 32)
    assert data.state.shape == (4, 39) and data.action.shape == (4, 4)
    assert 0.0 < float(data.depth.min()) < 5.0
