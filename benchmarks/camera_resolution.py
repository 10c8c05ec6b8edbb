"""Training on a real arm's camera size: LeRobot's ALOHA fixture (one 480x640 camera, 14-D).

`embodied train-policy` runs in a subprocess per setting, each with an empty frame cache:
the VLA reading frames at the camera's own size (`--policy.image_size=[480,640]`, what every
VLA did before the processor resized) and at the default 64x64. Reported per setting: median
seconds per training step (batch 64), wall time including the cache build, and the peak
resident memory of the process (cache build and training).
Run: .venv/bin/python -m benchmarks.camera_resolution --json=camera_resolution.json
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import BenchmarkConfig, parse, print_table, write_json
from embodied.config import ConfigError

REPO = Path(__file__).resolve().parents[1]


@dataclass
class CameraResolutionConfig(BenchmarkConfig):
    """Attributes (besides the shared ones in BenchmarkConfig):
    dataset: the LeRobot dataset folder (the ALOHA fixture of ../shared by default).
    sizes: image sizes to compare, "HxW".
    steps: training steps per setting (the first is left out of the median).
    batch_size: training batch.
    """

    dataset: str = str(REPO.parent / "shared/data/lerobot_fixtures/aloha_sim_fixture")
    sizes: list[str] = field(default_factory=lambda: ["480x640", "64x64"])
    steps: int = 6
    batch_size: int = 64


def run_one(args: CameraResolutionConfig, size: str, work: Path) -> dict:
    """One `train-policy` run in a child process; its step times and peak RSS."""
    height, width = (int(x) for x in size.split("x"))
    out = work / size
    command = [
        str(REPO / ".venv/bin/embodied"), "train-policy",
        f"--config_path={REPO / 'configs/policy/tiny.yaml'}", f"--dataset.root={args.dataset}",
        f"--dataset.cache_dir={work / ('cache-' + size)}", f"--output_dir={out}",
        f"--policy.image_size=[{height},{width}]", f"--steps={args.steps}",
        f"--batch_size={args.batch_size}", "--log_every=1", f"--save_every={args.steps}",
    ]  # fmt: skip
    log = work / f"{size}.log"
    start = time.perf_counter()
    with log.open("w") as sink:
        child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak memory
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"camera_resolution: train-policy at {size} failed:\n{log.read_text()[-2000:]}")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    step_s = [args.batch_size / r["samples_per_s"] for r in rows[1:]]
    return {
        "image_size": size,
        "step_s_median": statistics.median(step_s),
        "wall_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def main() -> None:
    try:
        args = parse(CameraResolutionConfig, __doc__)
    except ConfigError as err:
        sys.exit(f"camera_resolution: {err}")
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_one(args, size, Path(tmp)) for size in args.sizes]
    base = results[0]["step_s_median"]
    print_table(
        ["image size", "s/step (median)", "speed-up", "wall s", "peak RSS MB"],
        [
            [r["image_size"], f"{r['step_s_median']:.3f}", f"{base / r['step_s_median']:.1f}x",
             f"{r['wall_s']:.0f}", f"{r['peak_rss_mb']:.0f}"]
            for r in results
        ],
    )  # fmt: skip
    write_json(args.json, {"dataset": args.dataset, "batch_size": args.batch_size,
                           "results": results})  # fmt: skip


if __name__ == "__main__":
    main()
