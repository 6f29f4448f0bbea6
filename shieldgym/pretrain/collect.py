"""Collect pre-training data (RGB, depth, state, action) into Minari datasets.

:func:`collect` records episodes of any env under any policy. The env's observation must be a
Dict with ``"rgb"`` and ``"state"`` (and optionally ``"depth"``), as Meta-World's
``shieldgym.make("MetaWorld-<task>-v3", camera=True)`` gives; an env with a plain observation and
``render_mode="rgb_array"`` is adapted by :class:`RenderObservation` (``{"state": obs, "rgb": render()}``).

:func:`collect_metaworld` records Meta-World v3 scripted-expert episodes with RGB and depth
rendered headless (set ``MUJOCO_GL=egl`` on a machine without a display), e.g. N episodes per
ML45 training task, into one dataset.

Datasets are written under ``root`` (default: Minari's ``MINARI_DATASETS_PATH`` or
``~/.minari/datasets``) and read back with ``minari.load_dataset`` or
:meth:`~shieldgym.pretrain.infonce.ContrastiveData.from_minari`.

Example:
    >>> ds = collect_metaworld(["reach-v3"], episodes_per_task=2, dataset_id="shieldgym/reach-v0",
    ...                        root="/tmp/minari")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from shieldgym._optional import require

__all__ = ["RenderObservation", "collect", "collect_metaworld", "minari_root", "ml45_train_tasks"]

Policy = Callable[[Any], Any]


@contextlib.contextmanager
def minari_root(root: str | os.PathLike[str] | None) -> Iterator[None]:
    """Point Minari at ``root`` for the duration of the block (``None``: leave it as it is)."""
    if root is None:
        yield
        return
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.makedirs(root, exist_ok=True)
    os.environ["MINARI_DATASETS_PATH"] = os.fspath(root)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


class RenderObservation(gym.ObservationWrapper[Any, Any, Any], gym.utils.RecordConstructorArgs):
    """``obs -> {"state": obs, "rgb": env.render()}`` for envs without camera observations.

    Args:
        env: an env with ``render_mode="rgb_array"`` and a Box observation.
        image_shape: ``(H, W)`` of the frames; found by one reset and render when None.
    """

    def __init__(self, env: gym.Env[Any, Any], image_shape: tuple[int, int] | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, image_shape=image_shape)
        gym.ObservationWrapper.__init__(self, env)
        if env.render_mode != "rgb_array":
            raise ValueError(f"RenderObservation needs render_mode='rgb_array', got {env.render_mode!r}")
        if image_shape is None:
            env.reset()
            image_shape = tuple(np.asarray(env.render()).shape[:2])  # type: ignore[assignment]
        state = env.observation_space
        if not isinstance(state, spaces.Box):
            raise ValueError(f"RenderObservation needs a Box observation space, got {state}")
        self.observation_space = spaces.Dict({"state": state, "rgb": spaces.Box(0, 255, (*image_shape, 3), np.uint8)})  # type: ignore[misc]

    def observation(self, observation: Any) -> dict[str, np.ndarray]:
        """Add the rendered frame to the state."""
        return {"state": observation, "rgb": np.asarray(self.env.render(), np.uint8)}


def _check_env(env: gym.Env[Any, Any]) -> gym.Env[Any, Any]:
    space = env.observation_space
    if isinstance(space, spaces.Dict):
        missing = {"rgb", "state"} - set(space.spaces)
        if missing:
            raise ValueError(f"the env's Dict observation lacks {sorted(missing)}; expected keys 'rgb', 'state' (and 'depth')")
        return env
    return RenderObservation(env)


def _stack(items: list[Any]) -> Any:
    if isinstance(items[0], dict):
        return {key: _stack([item[key] for item in items]) for key in items[0]}
    return np.stack([np.asarray(item) for item in items])


def _record(env: gym.Env[Any, Any], policy: Policy, episodes: int, seed: int, bar: Any) -> Iterator[Any]:
    """Run ``episodes`` episodes and yield one ``minari`` ``EpisodeBuffer`` per episode (T actions, T + 1 observations)."""
    minari = require("minari", "pre-training datasets")
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        observations, actions, rewards, terminations, truncations = [obs], [], [], [], []
        done = False
        while not done:
            action = np.asarray(policy(obs), dtype=env.action_space.dtype)
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(float(reward))
            terminations.append(bool(terminated))
            truncations.append(bool(truncated))
            done = terminated or truncated
        bar.update(1)
        yield minari.data_collector.EpisodeBuffer(
            seed=seed + episode,
            observations=_stack(observations),
            actions=_stack(actions),
            rewards=rewards,
            terminations=terminations,
            truncations=truncations,
        )


def _write(minari: Any, dataset: Any, dataset_id: str, env: gym.Env[Any, Any], buffers: list[Any], **metadata: Any) -> Any:
    """Create the dataset from ``buffers``, or append them to ``dataset``."""
    if dataset is None:
        return minari.create_dataset_from_buffers(
            dataset_id=dataset_id,
            buffer=buffers,
            observation_space=env.observation_space,
            action_space=env.action_space,
            **metadata,
        )
    dataset.storage.update_episodes(buffers)
    return dataset


def collect(
    env: gym.Env[Any, Any],
    policy: Policy,
    episodes: int,
    dataset_id: str,
    *,
    seed: int = 0,
    max_episode_steps: int | None = None,
    root: str | os.PathLike[str] | None = None,
    description: str | None = None,
    algorithm_name: str = "policy",
    progress: bool = True,
) -> Any:
    """Record ``episodes`` episodes of ``policy`` in ``env`` as a new Minari dataset.

    Args:
        env: env with a Dict observation (``"rgb"``, ``"state"``, optional ``"depth"``) or an ``rgb_array`` renderer.
        policy: ``policy(observation) -> action`` (it receives the Dict observation).
        episodes: number of episodes.
        dataset_id: Minari id, ``"<namespace>/<name>-v<version>"``.
        seed: episode ``i`` is reset with ``seed + i``.
        max_episode_steps: cut episodes at this length (a ``TimeLimit``).
        root: datasets directory (default: Minari's).
        description: dataset description.
        algorithm_name: recorded in the dataset metadata.
        progress: tqdm bar over episodes.

    Returns:
        The ``minari.MinariDataset``.
    """
    minari = require("minari", "pre-training datasets")
    from tqdm.auto import tqdm

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env = _check_env(env)
    if max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, max_episode_steps)
    with minari_root(root), tqdm(total=episodes, disable=not progress, desc="collect", unit="ep") as bar:
        buffers = list(_record(env, policy, episodes, seed, bar))
        description = description or f"{episodes} episodes of {algorithm_name} with RGB, depth, state and action"
        _write(minari, None, dataset_id, env, buffers, algorithm_name=algorithm_name, description=description)
        return minari.load_dataset(dataset_id)


def ml45_train_tasks() -> tuple[str, ...]:
    """The 45 training tasks of Meta-World's ML45 benchmark."""
    from shieldgym.envs.metaworld import ML45_TEST_TASKS, TASKS

    return tuple(t for t in TASKS if t not in ML45_TEST_TASKS)


def collect_metaworld(
    tasks: Sequence[str] | None,
    episodes_per_task: int,
    dataset_id: str,
    *,
    image_size: int = 64,
    camera_name: str = "corner",
    max_episode_steps: int = 150,
    seed: int = 0,
    root: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Any:
    """Record Meta-World v3 scripted-expert episodes (RGB, depth, state, action) into one Minari dataset.

    Args:
        tasks: task names (``"reach-v3"``, ...); None: the 45 ML45 training tasks.
        episodes_per_task: episodes per task.
        dataset_id: Minari id of the new dataset.
        image_size: camera resolution.
        camera_name: Meta-World camera.
        max_episode_steps: episode length.
        seed: episode ``i`` of every task is reset with ``seed + i``.
        root: datasets directory.
        progress: tqdm bar over episodes.

    Returns:
        The ``minari.MinariDataset``.
    """
    minari = require("minari", "pre-training datasets")
    from tqdm.auto import tqdm

    import shieldgym
    from shieldgym.envs.metaworld import scripted_policy

    tasks = list(tasks) if tasks is not None else list(ml45_train_tasks())
    if not tasks or episodes_per_task < 1:
        raise ValueError(f"need at least one task and episodes_per_task >= 1, got {tasks!r}, {episodes_per_task}")
    total = len(tasks) * episodes_per_task
    text = f"Meta-World v3 scripted experts with RGB and depth, {episodes_per_task} episodes per task: {', '.join(tasks)}"
    dataset = None
    with minari_root(root), tqdm(total=total, disable=not progress, desc="collect Meta-World", unit="ep") as bar:
        for task in tasks:
            name = task if task.endswith("-v3") else f"{task}-v3"
            env = shieldgym.make(
                f"MetaWorld-{name}",
                camera=True,
                image_size=image_size,
                camera_name=camera_name,
                max_episode_steps=max_episode_steps,
            )
            try:
                buffers = list(_record(env, scripted_policy(name), episodes_per_task, seed, bar))
                dataset = _write(
                    minari, dataset, dataset_id, env, buffers, algorithm_name="metaworld-scripted-policy", description=text
                )
            finally:
                env.close()
        return minari.load_dataset(dataset_id)
