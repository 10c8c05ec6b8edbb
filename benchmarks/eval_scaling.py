"""Closed-loop evaluation on 1 and 2 workers: does a second core double the episodes?

Lift with the tiny VLA (untrained: episodes run to the horizon), two 64x64 cameras, chunks
of 5, `--batch` episodes in lockstep per policy call: the way `embodied eval` runs. One
worker is an `EpisodeRunner` in this process pinned to one core; two are Ray actors of one
CPU each (`embodied eval --ray.num_workers=2`). Each is warmed up first (imports, env
builds, the first batch), so the figure is the steady state a long evaluation sees.
Reported: env steps/s, episodes per minute and the speed-up.
Run: .venv/bin/python -m benchmarks.eval_scaling --json=eval_scaling.json
"""

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import BenchmarkConfig, parse, print_table, write_json
from embodied.config import ConfigError


@dataclass
class EvalScalingConfig(BenchmarkConfig):
    """Attributes (besides the shared ones in BenchmarkConfig; repeats is unused):
    batches: timed batches of episodes per worker.
    batch: episodes in lockstep per policy call (they run to Lift's horizon).
    """

    batches: int = 3
    batch: int = 5


def _jobs(args: EvalScalingConfig, first: int) -> list[dict]:
    return [{"task": "lift", "seed": first + i, "instruction": "lift the red cube",
             "given_instruction": "lift the red cube", "record": False}
            for i in range(args.batch)]  # fmt: skip


def one_worker(checkpoint: str, args: EvalScalingConfig) -> float:
    """Env steps/s of one in-process runner on one core."""
    import torch

    from embodied.mujoco_eval import EpisodeRunner

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    torch.set_num_threads(1)
    runner = EpisodeRunner(checkpoint)
    runner.run(_jobs(args, 0))  # warm-up
    start, steps = time.perf_counter(), 0
    for b in range(args.batches):
        steps += sum(row["length"] for row, _ in runner.run(_jobs(args, 100 * (b + 1))))
    return steps / (time.perf_counter() - start)


def two_workers(checkpoint: str, args: EvalScalingConfig) -> float:
    """Env steps/s of two Ray actors, one CPU each, sharing the batches."""
    import ray
    from ray.util import ActorPool

    from embodied.mujoco_eval import EpisodeRunner
    from embodied.ray_utils import RaySettings, actors

    workers = actors(EpisodeRunner, RaySettings(num_workers=2), checkpoint, 0)
    ray.get([w.run.remote(_jobs(args, 0)) for w in workers])  # warm-up, both
    pool = ActorPool(workers)
    batches = [_jobs(args, 100 * (b + 1)) for b in range(2 * args.batches)]
    start = time.perf_counter()
    results = list(pool.map_unordered(lambda a, jobs: a.run.remote(jobs), batches))
    elapsed = time.perf_counter() - start
    ray.shutdown()
    return sum(row["length"] for rows in results for row, _ in rows) / elapsed


def main() -> None:
    try:
        args = parse(EvalScalingConfig, __doc__)
    except ConfigError as err:
        sys.exit(f"eval_scaling: {err}")
    from benchmarks.serve_latency import tiny_checkpoint
    from envs.tasks import get_task

    horizon = get_task("lift").horizon
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = str(tiny_checkpoint(Path(tmp) / "tiny"))
        two = two_workers(checkpoint, args)  # first: the in-process run pins this process
        one = one_worker(checkpoint, args)
    rows = [[workers, f"{rate:.1f}", f"{60 * rate / horizon:.0f}"]
            for workers, rate in ((1, one), (2, two))]  # fmt: skip
    print_table(["workers", "env steps/s", f"episodes/min ({horizon} steps)"], rows)
    print(f"speed-up 1 -> 2 workers: {two / one:.2f}x")
    write_json(args.json, {"one_worker_steps_per_s": one, "two_workers_steps_per_s": two,
                           "speedup": two / one, "horizon": horizon, "batch": args.batch,
                           "episodes_per_min_two_workers": 60 * two / horizon})  # fmt: skip


if __name__ == "__main__":
    main()
