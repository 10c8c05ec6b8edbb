"""Helpers the benchmark scripts share: one-core pinning, medians, table and JSON output."""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path


def pin_to_one_core() -> None:
    """Measure on one core: pin the process and keep math and Mesa libraries single-threaded."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LP_NUM_THREADS"):
        os.environ[var] = "1"


def median_rate(samples: list[float]) -> float:
    return statistics.median(samples)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", default="", help="write the figures to this JSON file")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per figure (median)")
    return p


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
