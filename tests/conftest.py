"""Shared test setup: single-threaded torch (2 shared cores make tiny nets slower with more threads),
headless MuJoCo rendering."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import torch  # noqa: E402

torch.set_num_threads(1)
