"""Helpers the benchmarks share: settings, one-core pinning, medians, table and JSON output."""

import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from embodied.config import describe, load_config

C = TypeVar("C", bound="BenchmarkConfig")


@dataclass
class BenchmarkConfig:
    """Attributes:
    json: write the figures to this JSON file (none when empty).
    repeats: timed runs per figure (the median is reported).
    """

    json: str = ""
    repeats: int = 3


def usage(cls: type, doc: str) -> str:
    """`doc`, then the settings with their defaults (as every command's `--help`)."""
    return "\n".join([doc.strip(), "", "settings (defaults):", *describe(cls())])


def parse(cls: type[C], doc: str, argv: list[str] | None = None) -> C:
    """The config from `argv` (default `sys.argv[1:]`); -h/--help prints `usage` and exits.

    Raises embodied.config.ConfigError for an unknown key or a value of the wrong type.
    """
    argv = sys.argv[1:] if argv is None else argv
    if "-h" in argv or "--help" in argv:
        print(usage(cls, doc))
        sys.exit(0)
    return load_config(cls, argv)


def finished_run_finetune(run: str, name: str) -> dict:
    """The finetune config of the finished pipeline run `run`, which names its policy, models
    and data; exits with a one-line error naming benchmark `name` when the run has none."""
    config_file = Path(run) / "finetune" / "finetune_config.json"
    if not config_file.is_file():
        sys.exit(f"{name}: {config_file} not found: run the pipeline first")
    return json.loads(config_file.read_text())


def pin_to_one_core() -> None:
    """Measure on one core: pin the process and keep math and Mesa libraries single-threaded."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LP_NUM_THREADS"):
        os.environ[var] = "1"


def median_rate(samples: list[float]) -> float:
    return statistics.median(samples)


def print_table(headers: list[str], rows: list[list]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = "  ".join(f"{h:>{w}}" for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(f"{x!s:>{w}}" for x, w in zip(row, widths, strict=True)))


def write_json(path: str, figures: dict) -> None:
    if not path:
        return
    figures = {**figures, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(figures, indent=2) + "\n")
    print(f"wrote {path}")


def matmul_peak_gflops(repeats: int) -> float:
    """The machine's fp32 matrix-product rate (2048^2 products, best of `repeats`)."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        rates.append(5 * 2 * 2048**3 / (time.perf_counter() - start) / 1e9)
    return max(rates)
