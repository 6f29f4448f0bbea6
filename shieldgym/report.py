"""Result tables and plots shared by the CLI and the benchmark scripts.

Rows are plain dicts (one per task and variant, e.g. ``{"task": ..., "variant": "baseline",
"ret_mean": ...}``), so a comparison of several variants -- a random baseline, a shielded policy,
CQLLag -- is the same call with more rows.

>>> rows = [{"task": "SafetyBallCircle-v0", "variant": "random", "ret_mean": 1.5, "cost_mean": 0.0}]
>>> print(format_table(rows, ["task", "variant", ("ret_mean", "return"), ("cost_mean", "cost")]))
task                 variant  return  cost
-------------------  -------  ------  ----
SafetyBallCircle-v0  random     1.50  0.00
"""

from __future__ import annotations

import csv
import datetime
import importlib.metadata
import math
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_METRICS",
    "VERSION_PACKAGES",
    "Column",
    "format_table",
    "machine_header",
    "machine_info",
    "plot_summary",
    "write_csv",
]

# Packages whose versions go into every result file.
VERSION_PACKAGES: tuple[str, ...] = (
    "shieldgym",
    "numpy",
    "gymnasium",
    "mujoco",
    "safety-gymnasium",
    "bullet-safety-gym",
    "pybullet",
    "torch",
    "stable-baselines3",
)

# A column is a row key, or (key, header), or (key, header, format spec such as ".1f").
Column = str | tuple[str, str] | tuple[str, str, str]

# (row key, axis title, optional row key of its standard deviation) for plot_summary.
DEFAULT_METRICS: tuple[tuple[str, str, str | None], ...] = (
    ("ret_mean", "return / episode", "ret_std"),
    ("cost_mean", "cost / episode", "cost_std"),
    ("violations_mean", "violations / episode", None),
)


def _split(column: Column) -> tuple[str, str, str | None]:
    if isinstance(column, str):
        return column, column, None
    if isinstance(column, tuple) and len(column) in (2, 3) and all(isinstance(c, str) for c in column):
        return column[0], column[1], column[2] if len(column) == 3 else None
    raise ValueError(f"A column must be a key, (key, header) or (key, header, format), got {column!r}.")


def _cell(value: Any, spec: str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float) and spec:
        return format(value, spec)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.2f}" if abs(value) < 1e6 else f"{value:.3g}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], *, markdown: bool = False) -> str:
    """Format rows as an aligned text table (or a GitHub markdown table).

    Args:
        rows: one mapping per line; a missing key gives an empty cell.
        columns: which keys to show, in order: ``"key"``, ``("key", "header")`` or
            ``("key", "header", ".1f")``. Floats default to two decimals.
        markdown: emit ``| a | b |`` lines with an alignment row instead of plain text.

    Returns:
        The table, without a trailing newline.

    Raises:
        ValueError: no columns, or a malformed column spec.
    """
    if not columns:
        raise ValueError("format_table needs at least one column.")
    specs = [_split(c) for c in columns]
    headers = [h for _, h, _ in specs]
    body = [[_cell(row.get(key), fmt) for key, _, fmt in specs] for row in rows]
    numeric = [all(isinstance(row.get(key), int | float) for row in rows) and bool(rows) for key, _, _ in specs]
    widths = [max([len(h)] + [len(line[i]) for line in body]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)]
        return ("| " + " | ".join(parts) + " |") if markdown else "  ".join(parts).rstrip()

    if markdown:
        rule = "| " + " | ".join(("-" * (w - 1) + ":") if num else "-" * w for w, num in zip(widths, numeric)) + " |"
    else:
        rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(b) for b in body)])


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path, columns: Sequence[str] | None = None) -> Path:
    """Write rows to ``path`` as CSV (columns: ``columns`` or the union of the rows' keys in first-seen order)."""
    if columns is None:
        seen: dict[str, None] = {}
        for row in rows:
            seen.update(dict.fromkeys(row))
        columns = list(seen)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_summary(
    rows: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    metrics: Sequence[tuple[str, str, str | None]] = DEFAULT_METRICS,
    group_key: str = "task",
    variant_key: str = "variant",
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Bar charts of each metric per task, one bar per variant side by side (e.g. baseline vs shielded).

    Args:
        rows: dicts with ``group_key``, ``variant_key`` and the metric keys.
        path: where to write the PNG (parent folders are created).
        metrics: ``(key, axis title, std key or None)`` per subplot; the std becomes an error bar.
        group_key: the row key giving the x-axis groups (tasks).
        variant_key: the row key giving the bars within a group; rows without it form one variant.
        title: figure title.
        dpi: resolution (the default keeps a 3-panel figure well under 300 KB).

    Returns:
        ``path``.

    Raises:
        ValueError: no rows, or a row without ``group_key``.
    """
    if not rows:
        raise ValueError("plot_summary needs at least one row.")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: list[str] = []
    variants: list[str] = []
    for row in rows:
        if group_key not in row:
            raise ValueError(f"Every row needs the group key {group_key!r}; got keys {sorted(row)}.")
        g, v = str(row[group_key]), str(row.get(variant_key, ""))
        groups += [g] if g not in groups else []
        variants += [v] if v not in variants else []
    lookup = {(str(r[group_key]), str(r.get(variant_key, ""))): r for r in rows}

    n = len(metrics)
    # One panel per metric, stacked, sharing the task axis: readable for a dozen tasks at ~900 px wide.
    width_in = min(12.0, max(6.0, 0.45 * len(groups) * max(len(variants), 1) + 1.5))
    fig, axes = plt.subplots(n, 1, figsize=(width_in, 1.9 * n + 1.0), sharex=True, squeeze=False)
    width = 0.8 / max(len(variants), 1)
    for ax, (key, label, std_key) in zip(axes[:, 0], metrics):
        for j, variant in enumerate(variants):
            xs, ys, errs = [], [], []
            for i, g in enumerate(groups):
                found = lookup.get((g, variant))
                if found is None or found.get(key) is None:
                    continue
                xs.append(i + (j - (len(variants) - 1) / 2) * width)
                ys.append(float(found[key]))
                errs.append(float(found[std_key]) if std_key and found.get(std_key) is not None else 0.0)
            ax.bar(xs, ys, width=width, yerr=errs if any(errs) else None, capsize=2, label=variant or None)
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        ax.axhline(0.0, color="black", linewidth=0.5)
    bottom = axes[-1, 0]
    bottom.set_xticks(range(len(groups)))
    bottom.set_xticklabels([g.removeprefix("Safety").removesuffix("-v0") for g in groups], rotation=30, ha="right", fontsize=7)
    if variants != [""]:
        axes[0, 0].legend(fontsize=7, frameon=False, ncol=len(variants))
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(packages: Sequence[str] = VERSION_PACKAGES) -> dict[str, Any]:
    """What a result file records about where it was measured.

    Returns:
        ``{"date", "python", "platform", "nproc", "cpu", "loadavg" (1/5/15 min), "versions" {package: version}}``;
        a package that is not installed has version ``"-"``.
    """
    versions = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "-"
    try:
        load = tuple(round(x, 2) for x in os.getloadavg())
    except OSError:
        load = (float("nan"),) * 3
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "loadavg": load,
        "versions": versions,
    }


def machine_header(command: str, info: Mapping[str, Any] | None = None) -> str:
    """Markdown lines naming the command, the date, the machine, its load and the package versions.

    The load average is recorded because the machine may be shared with other jobs: timings taken under
    load are slower, ratios measured in the same run much less so.
    """
    m = dict(info) if info is not None else machine_info()
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    load = "/".join(str(x) for x in m["loadavg"])
    return "\n".join(
        [
            f"- command: `{command}`",
            f"- date: {m['date']}",
            f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['platform']}, Python {m['python']}",
            f"- load average (1/5/15 min) at start: {load} -- the machine may be shared with other jobs",
            f"- versions: {versions}",
        ]
    )
