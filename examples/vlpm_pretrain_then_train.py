"""Collect Meta-World data -> pre-train VLPM adapters with InfoNCE -> train CQLLag with the adapter extractor.

Real backbone (downloads ``openai/clip-vit-base-patch32`` once, then works offline)::

    MUJOCO_GL=egl python examples/vlpm_pretrain_then_train.py --task reach-v3 --episodes 20 \\
        --pretrain-steps 2000 --train-steps 20000

Smoke run with a tiny random backbone (about a minute on a laptop CPU)::

    MUJOCO_GL=egl python examples/vlpm_pretrain_then_train.py --tiny
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import shieldgym
from shieldgym.algos.cqllag import CQLLag
from shieldgym.pretrain.collect import collect_metaworld, minari_root
from shieldgym.pretrain.infonce import ContrastiveData, pretrain, retrieval_accuracy
from shieldgym.vlpm.adapters import save_adapters
from shieldgym.vlpm.backbone import build_tiny_clip, image_size, load_backbone, load_tokenizer
from shieldgym.vlpm.encoder import VLPMEncoder
from shieldgym.vlpm.extractor import VLPMExtractor
from shieldgym.wrappers.vlpm import VLPMObservation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random backbone and a few steps of everything")
    parser.add_argument("--backbone", default="openai/clip-vit-base-patch32", help="hub id or local path")
    parser.add_argument("--task", default="reach-v3")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=150, help="episode length")
    parser.add_argument("--pretrain-steps", type=int, default=2000)
    parser.add_argument("--train-steps", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=64, help="embedding size k")
    parser.add_argument("--workdir", default="/tmp/shieldgym-vlpm-example")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.tiny:
        args.episodes, args.max_steps, args.pretrain_steps, args.train_steps, args.dim = 2, 30, 30, 64, 16
    os.environ.setdefault("MUJOCO_GL", "egl")
    workdir = Path(args.workdir)
    root = workdir / "datasets"
    dataset_id = f"shieldgym/{args.task}-{'tiny' if args.tiny else 'full'}-v0"

    # 1. The frozen backbone; images are rendered at its input resolution.
    backbone = build_tiny_clip(seed=args.seed) if args.tiny else load_backbone(args.backbone)
    size = image_size(backbone)

    # 2. Scripted-expert episodes with RGB and depth, into a Minari dataset.
    start = time.perf_counter()
    with minari_root(root):
        try:
            import minari

            dataset = minari.load_dataset(dataset_id)
        except (FileNotFoundError, ValueError):
            dataset = collect_metaworld(
                [args.task], args.episodes, dataset_id, image_size=size, max_episode_steps=args.max_steps, seed=args.seed
            )
        data = ContrastiveData.from_minari(dataset)
    print(f"[1/3] dataset {dataset_id}: {len(data)} transitions ({time.perf_counter() - start:.1f} s)")

    # 3. InfoNCE pre-training of the adapters, depth stem and visual head (resumes from its checkpoint).
    start = time.perf_counter()
    encoder = VLPMEncoder(backbone, args.dim, use_depth=True, seed=args.seed)
    train, held_out = data.split(0.1, np.random.default_rng(args.seed))
    result = pretrain(
        encoder,
        train,
        steps=args.pretrain_steps,
        batch_size=min(64, len(train)),
        seed=args.seed,
        checkpoint=workdir / "pretrain.pt",
    )
    accuracy = retrieval_accuracy(encoder, result.psi, held_out)
    save_adapters(encoder, workdir / "adapters.safetensors")
    print(
        f"[2/3] pre-trained {result.step} steps: loss {result.losses[0]:.3f} -> {result.losses[-1]:.3f}, "
        f"held-out retrieval {accuracy:.2f} (chance {1 / len(held_out):.2f}); {encoder.parameter_report()} "
        f"({time.perf_counter() - start:.1f} s)"
    )

    # 4. CQLLag on raw observations; only the adapters and small heads train.
    start = time.perf_counter()
    env = shieldgym.make(f"MetaWorld-{args.task}", camera=True, image_size=size, max_episode_steps=args.max_steps)
    env = VLPMObservation(env, tokenizer=load_tokenizer(backbone))
    policy_kwargs = {
        "features_extractor_class": VLPMExtractor,
        "features_extractor_kwargs": {
            "backbone": backbone,
            "features_dim": args.dim,
            "pretrained": str(workdir / "pretrain.pt"),
        },
        "share_features_extractor": True,
    }
    model = CQLLag(
        "MultiInputPolicy",
        env,
        policy_kwargs=policy_kwargs,
        learning_starts=min(1000, args.train_steps // 2),
        batch_size=min(256, args.train_steps // 4),
        buffer_size=max(10_000, args.train_steps),
        episode_length=args.max_steps,
        cost_limit=5.0,
        seed=args.seed,
    )
    print(f"      policy parameters: {model.actor.features_extractor.encoder.parameter_report()}")
    model.learn(args.train_steps, progress_bar=not args.tiny)
    obs, info = env.reset(seed=args.seed + 1)
    total_reward = total_cost = 0.0
    for _ in range(args.max_steps):
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(action)
        total_reward += reward
        total_cost += info["cost"]
        if terminated or truncated:
            break
    env.close()
    print(
        f"[3/3] trained {args.train_steps} steps ({time.perf_counter() - start:.1f} s); one evaluation episode: "
        f"return {total_reward:.1f}, cost {total_cost:.1f}, success {info.get('success')}"
    )


if __name__ == "__main__":
    main()
