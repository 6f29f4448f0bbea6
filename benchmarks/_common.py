"""Timing helpers shared by the benchmark scripts.

The API is deliberately small:

* :class:`Timing` -- wall-clock and CPU seconds of one measurement;
* :func:`timer` -- context manager that fills a :class:`Timing`;
* :func:`interleave` -- run several variants in round-robin order (A, B, A, B, ...) so that load
  changes on a shared machine hit every variant alike; returns each variant's list of results;
* :func:`median` -- the median of a sequence;
* :func:`result_header` -- the markdown lines every result file starts with (exact command, date,
  machine, load average, package versions);
* :func:`write_result` -- write ``benchmarks/results/<name>.md``.

Report medians, and ratios computed from the same run, never numbers from separate runs.

Example::

    from _common import interleave, median, timer

    def run_a():
        with timer() as t:
            work_a()
        return t

    results = interleave({"a": run_a, "b": run_b}, repeats=9)
    a_wall = median([t.wall for t in results["a"]])
"""

from __future__ import annotations

import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from shieldgym.report import machine_header

__all__ = ["RESULTS_DIR", "Timing", "interleave", "median", "result_header", "timer", "write_result"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
T = TypeVar("T")


@dataclass
class Timing:
    """Seconds of wall-clock (``time.perf_counter``) and CPU (``time.process_time``, this process) time."""

    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def timer() -> Iterator[Timing]:
    """Measure the ``with`` block; the yielded :class:`Timing` is filled when the block exits."""
    t = Timing()
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        yield t
    finally:
        t.wall, t.cpu = time.perf_counter() - w0, time.process_time() - c0


def interleave(variants: Mapping[str, Callable[[], T]], repeats: int) -> dict[str, list[T]]:
    """Call each variant once per round, in the given order, for ``repeats`` rounds.

    Returns:
        ``{name: [result of round 0, round 1, ...]}``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    results: dict[str, list[T]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            results[name].append(fn())
    return results


def median(values: Sequence[float]) -> float:
    """The median (raises ``ValueError`` on an empty sequence)."""
    if not values:
        raise ValueError("median of an empty sequence")
    return float(statistics.median(values))


def result_header(title: str, argv: Sequence[str] | None = None) -> str:
    """``# title`` followed by the command (``argv`` or this process's), date, machine, load and versions."""
    args = list(sys.argv if argv is None else argv)
    command = ".venv/bin/python " + " ".join(shlex.quote(a) for a in args)
    return f"# {title}\n\n{machine_header(command)}\n"


def write_result(name: str, text: str) -> Path:
    """Write ``text`` to ``benchmarks/results/<name>.md`` and return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.md"
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path
