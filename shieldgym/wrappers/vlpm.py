"""Policy observations from camera envs: raw images + state + instruction tokens, or VLPM embeddings.

:class:`VLPMObservation` turns any env that has camera output into observations for a VLPM policy:

* ``mode="raw"``: a Dict with ``"rgb"`` (``uint8`` ``(H, W, 3)``), ``"depth"`` (``float32`` ``(H, W)``,
  when the env provides depth), ``"proprio"`` (the env's state, ``float32``), ``"instruction"`` and
  ``"instruction_mask"`` (``int64`` ``(L,)`` token ids and attention mask). Train on it with
  :class:`~shieldgym.vlpm.extractor.VLPMExtractor`, which runs the adapters inside the policy.
* ``mode="embed"``: a frozen :class:`~shieldgym.vlpm.encoder.VLPMEncoder` runs inside the wrapper and
  the observation is its ``Box`` embedding of size ``k`` (any SB3 ``MlpPolicy`` then works).

Images come from a Dict observation's ``rgb_key``/``depth_key`` entries when present, else from
``env.render()`` (``render_mode="rgb_array"``). The state is the Dict's ``state_key`` entry, or the
observation itself when it is not a Dict. The instruction is, in order of precedence,
``info["instruction"]``, ``env.unwrapped.instruction``, or the ``instruction`` argument.

:class:`VectorVLPMObservation` does the same for a ``gymnasium.vector.VectorEnv``; in embed mode
all sub-environments are encoded in one batched forward pass.

Example:
    >>> import gymnasium as gym
    >>> from shieldgym.vlpm.backbone import build_tiny_clip, load_tokenizer
    >>> env = gym.make("Pendulum-v1", render_mode="rgb_array")
    >>> tokenizer = load_tokenizer(build_tiny_clip())
    >>> env = VLPMObservation(env, tokenizer=tokenizer, instruction="swing up", image_shape=(500, 500))
    >>> sorted(env.observation_space.spaces)
    ['instruction', 'instruction_mask', 'proprio', 'rgb']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

__all__ = ["VLPMObservation", "VectorVLPMObservation"]

Mode = Literal["raw", "embed"]
Tokenizer = Callable[[str], tuple[list[int], list[int]]]


class _Converter:
    """Builds the policy observation space and converts batches of (rgb, depth, state, instruction)."""

    def __init__(
        self,
        mode: Mode,
        encoder: Any,
        tokenizer: Tokenizer | None,
        image_shape: tuple[int, int],
        depth: bool,
        state_space: spaces.Space[Any] | None,
    ) -> None:
        if mode not in ("raw", "embed"):
            raise ValueError(f"mode must be 'raw' or 'embed', got {mode!r}")
        if mode == "embed" and encoder is None:
            raise ValueError("mode='embed' needs encoder=VLPMEncoder(...)")
        if tokenizer is None and encoder is not None:
            tokenizer = encoder.tokenizer
        if mode == "raw" and tokenizer is None:
            raise ValueError("mode='raw' needs tokenizer= (e.g. shieldgym.vlpm.backbone.load_tokenizer(model)) or encoder=")
        self.mode, self.encoder, self.tokenizer, self.depth = mode, encoder, tokenizer, depth
        self.state_space = state_space
        if mode == "embed":
            if encoder.use_depth and not depth:
                raise ValueError("the encoder uses depth (use_depth=True) but the env provides no depth images")
            self.depth = depth and encoder.use_depth
            proprio = gym.spaces.flatdim(state_space) if state_space is not None else 0
            if encoder.proprio_dim not in (0, proprio):
                raise ValueError(
                    f"the encoder expects proprio_dim={encoder.proprio_dim} but the env state has {proprio} features"
                )
            self.space: spaces.Space[Any] = spaces.Box(-np.inf, np.inf, (encoder.out_dim,), np.float32)
            return
        assert tokenizer is not None
        length = len(tokenizer("")[0])
        vocab = int(getattr(tokenizer, "vocab_size", np.iinfo(np.int32).max))
        entries: dict[str, spaces.Space[Any]] = {"rgb": spaces.Box(0, 255, (*image_shape, 3), np.uint8)}
        if depth:
            entries["depth"] = spaces.Box(0.0, np.inf, image_shape, np.float32)
        if state_space is not None:
            entries["proprio"] = spaces.Box(-np.inf, np.inf, (gym.spaces.flatdim(state_space),), np.float32)
        entries["instruction"] = spaces.Box(0, vocab - 1, (length,), np.int64)
        entries["instruction_mask"] = spaces.Box(0, 1, (length,), np.int64)
        self.space = spaces.Dict(entries)

    def tokens(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        assert self.tokenizer is not None
        ids, mask = self.tokenizer(text)
        return np.asarray(ids, np.int64), np.asarray(mask, np.int64)

    def convert(self, rgb: np.ndarray, depth: np.ndarray | None, state: np.ndarray | None, texts: Sequence[str]) -> Any:
        """Batched inputs ``(B, ...)`` -> batched observations (a dict of arrays, or a ``(B, k)`` array)."""
        if self.mode == "embed":
            import torch

            text = list(texts) if all(texts) else None
            with torch.no_grad():
                z = self.encoder(rgb, depth=depth if self.depth else None, text=text, proprio=state)
            return z.cpu().numpy().astype(np.float32)
        assert isinstance(self.space, spaces.Dict)
        out: dict[str, np.ndarray] = {"rgb": np.ascontiguousarray(rgb, dtype=np.uint8)}
        if self.depth:
            out["depth"] = np.asarray(depth, np.float32)
        if state is not None:
            out["proprio"] = np.asarray(state, np.float32).reshape(len(rgb), -1)
        pairs = [self.tokens(t) for t in texts]
        out["instruction"] = np.stack([p[0] for p in pairs])
        out["instruction_mask"] = np.stack([p[1] for p in pairs])
        return out


def _check_rgb(frame: Any, where: str) -> np.ndarray:
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"{where} must be an (H, W, 3) image, got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(array * 255.0 if np.issubdtype(array.dtype, np.floating) else array, 0, 255).astype(np.uint8)
    return array


class VLPMObservation(gym.Wrapper[Any, Any, Any, Any], gym.utils.RecordConstructorArgs):
    """Raw (images + state + instruction tokens) or embedded (VLPM encoder) observations.

    Args:
        env: an env whose observation is a Dict with ``rgb_key`` (and maybe ``depth_key``, ``state_key``),
            or any env with ``render_mode="rgb_array"``.
        mode: ``"raw"`` or ``"embed"``.
        encoder: a :class:`~shieldgym.vlpm.encoder.VLPMEncoder` (required for ``"embed"``; its tokenizer is
            used in ``"raw"`` when ``tokenizer`` is None). It runs frozen, under ``torch.no_grad``.
        tokenizer: ``text -> (ids, mask)`` of fixed length (see :func:`~shieldgym.vlpm.backbone.load_tokenizer`).
        instruction: fallback instruction when neither ``info`` nor the env carries one.
        image_shape: ``(H, W)`` of rendered frames; when None and images come from ``render()``,
            the env is reset once at construction to find it.
        rgb_key, depth_key, state_key: keys of a Dict observation.

    Raises:
        ValueError: a missing encoder/tokenizer, or an env without images.
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        mode: Mode = "raw",
        *,
        encoder: Any = None,
        tokenizer: Tokenizer | None = None,
        instruction: str | None = None,
        image_shape: tuple[int, int] | None = None,
        rgb_key: str = "rgb",
        depth_key: str = "depth",
        state_key: str = "state",
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self,
            mode=mode,
            encoder=encoder,
            tokenizer=tokenizer,
            instruction=instruction,
            image_shape=image_shape,
            rgb_key=rgb_key,
            depth_key=depth_key,
            state_key=state_key,
        )
        gym.Wrapper.__init__(self, env)
        self.rgb_key, self.depth_key, self.state_key = rgb_key, depth_key, state_key
        inner = env.observation_space
        self._from_obs = isinstance(inner, spaces.Dict) and rgb_key in inner.spaces
        if self._from_obs:
            assert isinstance(inner, spaces.Dict)
            shape = tuple(inner.spaces[rgb_key].shape[:2])  # type: ignore[index]
            has_depth = depth_key in inner.spaces
            state_space = inner.spaces.get(state_key)
        else:
            if env.render_mode != "rgb_array":
                raise ValueError(
                    f"the env has no {rgb_key!r} observation and render_mode={env.render_mode!r}; "
                    "make it with render_mode='rgb_array' or give it a Dict observation with images"
                )
            if image_shape is None:
                env.reset()
                image_shape = _check_rgb(env.render(), "env.render()").shape[:2]  # type: ignore[assignment]
            shape, has_depth = tuple(image_shape), False  # type: ignore[arg-type]
            state_space = inner.spaces.get(state_key) if isinstance(inner, spaces.Dict) else inner
        self._converter = _Converter(mode, encoder, tokenizer, shape, has_depth, state_space)  # type: ignore[arg-type]
        self.observation_space = self._converter.space
        self.mode = mode
        self._default_instruction = instruction
        self.instruction = ""

    def _update_instruction(self, info: dict[str, Any]) -> None:
        text = info.get("instruction")
        if text is None:
            text = getattr(self.env.unwrapped, "instruction", None)
        if text is None:
            text = self._default_instruction
        self.instruction = str(text) if text is not None else ""

    def _observation(self, obs: Any) -> Any:
        if self._from_obs:
            rgb = _check_rgb(obs[self.rgb_key], f"observation[{self.rgb_key!r}]")
            depth = np.asarray(obs[self.depth_key], np.float32) if self._converter.depth else None
            state = obs.get(self.state_key)
        else:
            rgb = _check_rgb(self.env.render(), "env.render()")
            depth = None
            state = obs.get(self.state_key) if isinstance(obs, dict) else obs
        state_batch = (
            None if state is None or self._converter.state_space is None else np.asarray(state, np.float32).reshape(1, -1)
        )
        batch = self._converter.convert(rgb[None], None if depth is None else depth[None], state_batch, [self.instruction])
        return {k: v[0] for k, v in batch.items()} if isinstance(batch, dict) else batch[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset the env and return the converted first observation."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._update_instruction(info)
        return self._observation(obs), info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the env and convert its observation."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "instruction" in info:
            self._update_instruction(info)
        return self._observation(obs), float(reward), terminated, truncated, info


class VectorVLPMObservation(VectorWrapper):
    """:class:`VLPMObservation` for a ``gymnasium.vector.VectorEnv``; embed mode encodes all sub-envs in one batch.

    Arguments are those of :class:`VLPMObservation`. Instructions come from ``infos["instruction"]``,
    then the sub-envs' ``instruction`` attribute, then ``instruction``.
    """

    def __init__(
        self,
        env: VectorEnv[Any, Any, Any],
        mode: Mode = "raw",
        *,
        encoder: Any = None,
        tokenizer: Tokenizer | None = None,
        instruction: str | None = None,
        image_shape: tuple[int, int] | None = None,
        rgb_key: str = "rgb",
        depth_key: str = "depth",
        state_key: str = "state",
    ) -> None:
        super().__init__(env)
        self.rgb_key, self.depth_key, self.state_key = rgb_key, depth_key, state_key
        inner = env.single_observation_space
        self._from_obs = isinstance(inner, spaces.Dict) and rgb_key in inner.spaces
        if self._from_obs:
            assert isinstance(inner, spaces.Dict)
            shape = tuple(inner.spaces[rgb_key].shape[:2])  # type: ignore[index]
            has_depth = depth_key in inner.spaces
            state_space = inner.spaces.get(state_key)
        else:
            if env.render_mode != "rgb_array":
                raise ValueError(f"the vector env has no {rgb_key!r} observation and render_mode={env.render_mode!r}")
            if image_shape is None:
                env.reset()
                image_shape = _check_rgb(env.render()[0], "env.render()").shape[:2]  # type: ignore[index, assignment]
            shape, has_depth = tuple(image_shape), False  # type: ignore[arg-type]
            state_space = inner.spaces.get(state_key) if isinstance(inner, spaces.Dict) else inner
        self._converter = _Converter(mode, encoder, tokenizer, shape, has_depth, state_space)  # type: ignore[arg-type]
        self.single_observation_space = self._converter.space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.mode = mode
        self._default_instruction = instruction
        self.instructions = [""] * self.num_envs

    def _update_instructions(self, infos: dict[str, Any], *, reset: bool) -> None:
        """Take ``infos["instruction"]`` where given; on reset, fall back to the env attribute, then the argument."""
        from_info = infos.get("instruction")
        present = infos.get("_instruction", np.full(self.num_envs, from_info is not None))
        if not reset:
            for i in range(self.num_envs):
                if from_info is not None and present[i]:
                    self.instructions[i] = str(from_info[i])
            return
        try:
            attrs: Sequence[Any] = self.env.get_attr("instruction")  # type: ignore[attr-defined]
        except AttributeError:
            attrs = [None] * self.num_envs
        for i in range(self.num_envs):
            text = from_info[i] if from_info is not None and present[i] else None
            if text is None:
                text = attrs[i]
            if text is None:
                text = self._default_instruction
            self.instructions[i] = str(text) if text is not None else ""

    def _observations(self, obs: Any) -> Any:
        if self._from_obs:
            rgb = np.stack([_check_rgb(f, f"observation[{self.rgb_key!r}]") for f in obs[self.rgb_key]])
            depth = np.asarray(obs[self.depth_key], np.float32) if self._converter.depth else None
            state = obs.get(self.state_key)
        else:
            rgb = np.stack([_check_rgb(f, "env.render()") for f in self.env.render()])  # type: ignore[union-attr]
            depth = None
            state = obs.get(self.state_key) if isinstance(obs, dict) else obs
        state_batch = (
            None
            if state is None or self._converter.state_space is None
            else np.asarray(state, np.float32).reshape(self.num_envs, -1)
        )
        return self._converter.convert(rgb, depth, state_batch, self.instructions)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset all sub-envs and return the converted observations."""
        obs, infos = self.env.reset(seed=seed, options=options)  # type: ignore[arg-type]
        self._update_instructions(infos, reset=True)
        return self._observations(obs), infos

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Step all sub-envs and convert their observations."""
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        self._update_instructions(infos, reset=False)
        return self._observations(obs), rewards, terminated, truncated, infos
