"""``shieldgym collect`` and ``shieldgym pretrain`` subcommands.

``collect`` records Meta-World scripted-expert episodes (RGB, depth, state, action) into a Minari
dataset; ``pretrain`` trains adapters with InfoNCE on such a dataset and writes the adapter file
(safetensors) and a checkpoint it can resume from::

    shieldgym collect --tasks reach-v3 push-v3 --episodes 10 --dataset shieldgym/mw-v0 --root /tmp/minari
    shieldgym pretrain --dataset shieldgym/mw-v0 --root /tmp/minari --backbone openai/clip-vit-base-patch32 \\
        --steps 2000 --out /tmp/adapters

The main ``shieldgym`` command adds them with :func:`register`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def _collect(args: argparse.Namespace) -> int:
    from shieldgym.pretrain.collect import collect_metaworld

    tasks = None if args.tasks == ["ml45"] else args.tasks
    dataset = collect_metaworld(
        tasks,
        args.episodes,
        args.dataset,
        image_size=args.image_size,
        camera_name=args.camera,
        max_episode_steps=args.max_steps,
        seed=args.seed,
        root=args.root,
        progress=not args.quiet,
    )
    print(f"wrote {args.dataset}: {dataset.total_episodes} episodes, {dataset.total_steps} steps")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    import numpy as np

    from shieldgym.pretrain.collect import minari_root
    from shieldgym.pretrain.infonce import ContrastiveData, pretrain, retrieval_accuracy
    from shieldgym.vlpm.adapters import save_adapters
    from shieldgym.vlpm.backbone import build_tiny_clip, load_backbone
    from shieldgym.vlpm.encoder import VLPMEncoder

    with minari_root(args.root):
        data = ContrastiveData.from_minari(args.dataset)
    backbone = build_tiny_clip(seed=args.seed) if args.backbone == "tiny" else load_backbone(args.backbone, dtype=args.dtype)
    encoder = VLPMEncoder(backbone, args.dim, bottleneck=args.bottleneck, use_depth=data.depth is not None, seed=args.seed)
    train, held_out = data.split(args.held_out, np.random.default_rng(args.seed))
    out = Path(args.out)
    result = pretrain(
        encoder,
        train,
        steps=args.steps,
        batch_size=min(args.batch_size, len(train)),
        lr=args.lr,
        temperature=args.temperature,
        seed=args.seed,
        checkpoint=out / "checkpoint.pt",
        checkpoint_every=args.checkpoint_every,
        resume=not args.no_resume,
        progress=not args.quiet,
    )
    path = save_adapters(encoder, out / "adapters.safetensors")
    window = result.losses[-min(50, len(result.losses)) :]
    accuracy = retrieval_accuracy(encoder, result.psi, held_out.subset(np.arange(min(len(held_out), 256))))
    print(f"step {result.step}: loss {np.mean(window):.4f} (last {len(window)} steps), held-out retrieval {accuracy:.3f}")
    print(f"{encoder.parameter_report()}")
    print(f"adapters: {path}; checkpoint: {out / 'checkpoint.pt'}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``collect`` and ``pretrain`` subcommands to a ``shieldgym`` argument parser."""
    p = subparsers.add_parser("collect", help="record Meta-World scripted episodes (RGB, depth, state, action) into Minari")
    p.add_argument("--tasks", nargs="+", default=["ml45"], help="task names, or 'ml45' for the 45 ML45 training tasks")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task")
    p.add_argument("--dataset", required=True, help="Minari dataset id, e.g. shieldgym/metaworld-ml45-v0")
    p.add_argument("--root", default=None, help="datasets directory (default: MINARI_DATASETS_PATH or ~/.minari/datasets)")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--camera", default="corner")
    p.add_argument("--max-steps", type=int, default=150, help="episode length")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_collect)

    p = subparsers.add_parser("pretrain", help="InfoNCE pre-training of VLPM adapters on a collected dataset")
    p.add_argument("--dataset", required=True, help="Minari dataset id")
    p.add_argument("--root", default=None, help="datasets directory")
    p.add_argument(
        "--backbone", default="openai/clip-vit-base-patch32", help="hub id, local path, or 'tiny' (random test model)"
    )
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--out", required=True, help="output directory (adapters.safetensors, checkpoint.pt)")
    p.add_argument("--dim", type=int, default=64, help="embedding size k")
    p.add_argument("--bottleneck", type=int, default=64)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--held-out", type=float, default=0.1, help="fraction kept for the retrieval accuracy")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_pretrain)


def main(argv: list[str] | None = None) -> int:
    """Run the subcommands on their own (``python -m shieldgym.pretrain.cli``)."""
    parser = argparse.ArgumentParser(prog="shieldgym")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
