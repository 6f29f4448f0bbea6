"""Benchmark of the Safe Adapters VLPM stack on a ViT-B/32-sized CLIP with random weights.

Measures, in one run:
1. the trainable-parameter fraction at the default bottleneck (target < 2%);
2. image-encoding frames/s of the frozen backbone alone vs the same backbone with adapters
   (interleaved repeats, medians; target: adapter overhead <= 10%);
3. peak memory (resident set growth) of InfoNCE pre-training steps at batch 64.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_vlpm.py [--repeats 9] [--batch 8] [--memory-steps 2]

Writes ``benchmarks/results/vlpm.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from shieldgym.vlpm.accounting import parameter_report
from shieldgym.vlpm.adapters import DEFAULT_BOTTLENECK, add_adapters, lend_adapters, make_adapters
from shieldgym.vlpm.backbone import freeze, image_features, vit_b32_clip_config

RESULTS = Path(__file__).parent / "results" / "vlpm.md"


def _build(device: str = "cpu") -> torch.nn.Module:
    import transformers

    with torch.device(device):
        return freeze(transformers.CLIPModel(vit_b32_clip_config()))


def trainable_fraction() -> dict[str, object]:
    """Exact counts on a meta-device model (no memory, no time)."""
    rows = {}
    for towers in (("vision",), ("vision", "text")):
        model = _build("meta")
        add_adapters(model, DEFAULT_BOTTLENECK, towers=towers)
        report = parameter_report(model)
        rows["+".join(towers)] = report
    return rows


def throughput(repeats: int, batch: int) -> dict[str, float]:
    """Frames/s of the bare frozen tower vs the adapted tower, interleaved."""
    torch.manual_seed(0)
    model = _build()
    adapters = make_adapters(model, DEFAULT_BOTTLENECK, ("vision",))
    for adapter in adapters.values():  # non-zero W_up: the adapters really compute
        torch.nn.init.normal_(adapter.up.weight, std=0.02)
    pixels = torch.randn(batch, 3, 224, 224)
    times: dict[str, list[float]] = {"backbone": [], "adapters": []}
    with torch.no_grad():
        image_features(model, pixels)  # warm-up
        with lend_adapters(model, adapters):
            image_features(model, pixels)
        for _ in range(repeats):
            start = time.perf_counter()
            image_features(model, pixels)
            times["backbone"].append(time.perf_counter() - start)
            start = time.perf_counter()
            with lend_adapters(model, adapters):
                image_features(model, pixels)
            times["adapters"].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "backbone_fps": batch / med["backbone"],
        "adapters_fps": batch / med["adapters"],
        "overhead": med["adapters"] / med["backbone"] - 1.0,
        "backbone_s": med["backbone"],
        "adapters_s": med["adapters"],
    }


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(steps: int, batch: int) -> None:
    """Run in a fresh process: RSS growth during InfoNCE steps at ``batch`` (prints JSON)."""
    from shieldgym.pretrain.infonce import ContrastiveData, pretrain
    from shieldgym.vlpm.encoder import VLPMEncoder

    torch.manual_seed(0)
    model = _build()
    encoder = VLPMEncoder(model, 64, use_depth=True, seed=0, tokenizer=lambda text: ([0], [1]))
    rng = np.random.default_rng(0)
    n = batch * 2
    data = ContrastiveData(
        rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8),
        rng.normal(size=(n, 39)).astype(np.float32),
        rng.uniform(-1, 1, (n, 4)).astype(np.float32),
        rng.uniform(0, 3, (n, 224, 224)).astype(np.float32),
    )
    before = _rss_kib("VmRSS")
    with contextlib.suppress(OSError):  # reset the peak so VmHWM measures this phase only
        Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    result = pretrain(encoder, data, steps=steps, batch_size=batch, progress=False)
    elapsed = time.perf_counter() - start
    peak = _rss_kib("VmHWM")
    print(
        json.dumps(
            {
                "rss_before_mib": before / 1024,
                "peak_mib": peak / 1024,
                "delta_mib": (peak - before) / 1024,
                "s_per_step": elapsed / steps,
                "loss": result.losses[-1],
                "encoder": str(encoder.parameter_report()),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=8, help="batch of the frames/s measurement")
    parser.add_argument("--memory-steps", type=int, default=2)
    parser.add_argument("--memory-batch", type=int, default=64)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.memory_child:
        memory_child(args.memory_steps, args.memory_batch)
        return

    command = "OMP_NUM_THREADS={} python benchmarks/bench_vlpm.py {}".format(
        os.environ.get("OMP_NUM_THREADS", "1"), " ".join(sys.argv[1:])
    ).strip()
    load_start = os.getloadavg()
    fractions = trainable_fraction()
    speed = throughput(args.repeats, args.batch)
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--memory-child",
            "--memory-steps",
            str(args.memory_steps),
            "--memory-batch",
            str(args.memory_batch),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    memory = json.loads(child.stdout.strip().splitlines()[-1])
    load_end = os.getloadavg()

    versions = ", ".join(f"{p} {_version(p)}" for p in ("torch", "transformers", "numpy"))
    vision = fractions["vision"]
    both = fractions["vision+text"]
    overhead = speed["overhead"]
    lines = [
        "# VLPM adapters benchmark",
        "",
        f"Command: `{command}`",
        "",
        "Backbone: a `CLIPModel` with the sizes of `openai/clip-vit-base-patch32` (ViT-B/32 vision tower,",
        "12-layer text tower, 224x224 input) and random weights: timings and memory do not depend on the",
        f"weights. Default bottleneck: {DEFAULT_BOTTLENECK}.",
        "",
        "## Results",
        "",
        "| measure | value | target | met |",
        "|---|---|---|---|",
        f"| trainable fraction, adapters in the vision tower | {100 * vision.fraction:.3f}% "
        f"({vision.trainable:,} / {vision.total:,}) | < 2% | {'yes' if vision.fraction < 0.02 else 'no'} |",
        f"| trainable fraction, adapters in both towers | {100 * both.fraction:.3f}% ({both.trainable:,} / {both.total:,}) "
        f"| < 2% | {'yes' if both.fraction < 0.02 else 'no'} |",
        f"| frozen backbone alone, image frames/s (batch {args.batch}) | {speed['backbone_fps']:.2f} | | |",
        f"| backbone + adapters, image frames/s (batch {args.batch}) | {speed['adapters_fps']:.2f} | | |",
        f"| adapter overhead (median time ratio - 1) | {100 * overhead:+.1f}% | <= 10% | "
        f"{'yes' if overhead <= 0.10 else f'no (misses by {100 * (overhead - 0.10):.1f} points)'} |",
        f"| InfoNCE pre-training at batch {args.memory_batch}: peak RSS growth | {memory['delta_mib']:.0f} MiB "
        f"(peak {memory['peak_mib']:.0f} MiB, model loaded {memory['rss_before_mib']:.0f} MiB) | | |",
        f"| InfoNCE pre-training at batch {args.memory_batch}: time per step | {memory['s_per_step']:.1f} s | | |",
        "",
        f"Frames/s are medians of {args.repeats} interleaved repeats (backbone, adapters, backbone, ...)",
        f"of the pooled, projected image embedding under `torch.no_grad()`: {1000 * speed['backbone_s']:.0f} ms vs",
        f"{1000 * speed['adapters_s']:.0f} ms per batch. Pre-training memory: peak resident set (`VmHWM`, reset",
        f"after loading the model) minus the resident set before the steps, over {args.memory_steps} steps of",
        "RGB + depth InfoNCE in a fresh process (the adapters, depth stem, heads and psi train; activations",
        "of the frozen tower are kept for the adapters' backward pass).",
        f"Encoder accounting during pre-training: {memory['encoder']}.",
        "",
        "## Machine",
        "",
        f"- CPU: {_cpu_model()}, `nproc` = {os.cpu_count()}, torch threads = {torch.get_num_threads()}",
        f"- load average (1, 5, 15 min) at start: {load_start[0]:.2f}, {load_start[1]:.2f}, {load_start[2]:.2f}; "
        f"at end: {load_end[0]:.2f}, {load_end[1]:.2f}, {load_end[2]:.2f}. The machine is shared with other jobs,",
        "  so absolute timings are noisy; the ratio comes from interleaved runs in one process.",
        f"- Python {platform.python_version()}, {versions}",
        "",
    ]
    text = "\n".join(lines)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    main()
