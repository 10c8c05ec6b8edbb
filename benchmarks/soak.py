"""A long RL run, sampled: do memory and iteration time stay flat?

Records a small Lift dataset, trains a tiny policy and world model, then runs `finetune`
for `--iterations` on `--workers` Ray rollout actors with a world-model refresh (the
policy's own MuJoCo episodes refit the world model) before the first iteration and every
`--refresh_every` iterations. A thread samples the resident memory (RSS) of the driver
(learner, refreshes) and of every rollout actor each `--sample_every_s`; iteration time is
each metrics row's rollout + learn + weight-sync time.

Growth compares the median over the first `--window` of the run (after `--warmup`
iterations) with the median over its last `--window`. Target: under 5 % for each.
Run: .venv/bin/python -m benchmarks.soak --json=soak.json  (300 iterations, 10 refreshes)
"""

import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import BenchmarkConfig, parse, print_table, write_json
from embodied.config import ConfigError

REPO = Path(__file__).resolve().parents[1]


@dataclass
class SoakConfig(BenchmarkConfig):
    """Attributes (besides the shared ones in BenchmarkConfig; repeats is unused):
    iterations: RL iterations.
    refresh_every: iterations between world-model refreshes (and one before the first).
    workers: Ray rollout actors.
    horizon: env steps per imagined episode (8 episodes per worker per iteration).
    sample_every_s: seconds between memory samples.
    warmup: iterations left out of the start window (allocators and caches fill up).
    window: the share of the run each end's median is taken over.
    workdir: where the data, models and run go (empty: a temporary folder).
    """

    iterations: int = 300
    refresh_every: int = 30
    workers: int = 2
    horizon: int = 50
    sample_every_s: float = 0.5
    warmup: int = 10
    window: float = 0.1
    workdir: str = ""


class MemorySampler(threading.Thread):
    """RSS of this process and of the live actors of `actor_class`, every `every_s`."""

    def __init__(self, actor_class: str, count: int, every_s: float):
        super().__init__(daemon=True)
        self.actor_class, self.count, self.every_s = actor_class, count, every_s
        self.samples: list[tuple[float, float, float]] = []  # (time, driver MB, actors MB)
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        me, pids = psutil.Process(), []
        while not self.stop.wait(self.every_s):
            try:
                known = len(pids) == self.count and all(psutil.pid_exists(p) for p in pids)
                pids = pids if known else self._pids()
                workers = sum(psutil.Process(p).memory_info().rss for p in pids)
            except Exception:  # Ray not up yet, or an actor restarting: sample again later
                continue
            if len(pids) != self.count:  # actors still starting, or one restarting
                continue
            self.samples.append((time.time(), me.memory_info().rss / 2**20, workers / 2**20))

    def _pids(self) -> list[int]:
        from embodied.ray_utils import actor_table

        actors = actor_table(self.actor_class).values()
        return [a["pid"] for a in actors if a["state"] == "ALIVE"]


def prepare(work: Path) -> tuple[str, str, str]:
    """(dataset root, policy, world model): 4 recorded Lift episodes, tiny models."""
    sys.path.insert(0, str(REPO / "tests"))
    from tiny import train_tiny

    from embodied.data.record import CollectConfig, collect
    from embodied.data.source import DatasetConfig

    root = work / "data"
    if not root.exists():
        collect(CollectConfig(task="lift", episodes=4, root=str(root), success_hold=0))
    policy, world_model = train_tiny(DatasetConfig(root=str(root)), work)
    return str(root), str(policy), str(world_model)


def soak(args: SoakConfig, work: Path) -> tuple[list[dict], list[tuple]]:
    """Run RL with the sampler on; (metrics rows, memory samples)."""
    from embodied.data.source import DatasetConfig
    from embodied.ray_utils import RaySettings, connect
    from embodied.refs import PolicyRef, WorldModelRef
    from embodied.rl.finetune import AlgoSettings, FinetuneConfig, finetune
    from embodied.rl.refresh import RefreshSettings

    root, policy, world_model = prepare(work)
    out = work / "finetune"
    shutil.rmtree(out, ignore_errors=True)  # a fresh run, not a resumed one
    config = FinetuneConfig(
        policy=PolicyRef(policy), world_model=WorldModelRef(world_model),
        dataset=DatasetConfig(root=root), output_dir=str(out), iterations=args.iterations,
        horizon=args.horizon, save_every=50, eval_task="", reward_guard=0.0,
        success_threshold=0.999,  # the untrained success head: episodes run their horizon
        algo=AlgoSettings(group_size=4, starts=2, minibatch_size=16, min_group_rate=-1.0,
                          max_group_rate=2.0, entropy_coef=0.01),  # every group learned from
        refresh=RefreshSettings(every=args.refresh_every, task="lift", episodes=1, steps=5,
                                batch_size=2),
        ray=RaySettings(num_workers=args.workers),
    )  # fmt: skip
    connect(num_cpus=args.workers)  # the sampler reads the cluster's actor table
    sampler = MemorySampler("WorkerActor", args.workers, args.sample_every_s)
    sampler.start()
    try:
        finetune(config)
    finally:
        sampler.stop.set()
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return rows, sampler.samples


def growth(values: list[float], window: float) -> tuple[float, float, float]:
    """(start median, end median, growth %) over the first and last `window` of `values`."""
    if not values:
        raise RuntimeError("nothing sampled: run more iterations or sample more often")
    n = max(1, int(len(values) * window))
    start, end = statistics.median(values[:n]), statistics.median(values[-n:])
    return start, end, 100 * (end - start) / start


def main(argv: list[str] | None = None) -> dict:
    try:
        args = parse(SoakConfig, __doc__, argv)
    except ConfigError as err:
        sys.exit(f"soak: {err}")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="soak-"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows, samples = soak(args, work)
    iterations = [r for r in rows if r.get("iteration", 0) > args.warmup and "time_learn_s" in r]
    seconds = [r["time_rollout_s"] + r["time_learn_s"] + r["time_sync_s"] for r in iterations]
    settled = samples[len(samples) * args.warmup // args.iterations :]
    figures = {
        "iterations": args.iterations, "refresh_every": args.refresh_every,
        "workers": args.workers, "samples": len(samples), "wall_s": time.perf_counter() - start,
    }  # fmt: skip
    table = []
    for name, values, unit in [
        ("iteration time", seconds, "s"),
        ("driver RSS", [s[1] for s in settled], "MB"),
        ("workers RSS", [s[2] for s in settled], "MB"),
    ]:
        first, last, pct = growth(values, args.window)
        tenths = [statistics.median(values[i * len(values) // 10 : (i + 1) * len(values) // 10])
                  for i in range(10)]  # fmt: skip
        figures[name.replace(" ", "_")] = {"start": first, "end": last, "growth_pct": pct,
                                           "median_by_tenth": tenths}  # fmt: skip
        table.append([name, f"{first:.3f} {unit}", f"{last:.3f} {unit}", f"{pct:+.1f} %"])
    print_table(["measure", "start (median)", "end (median)", "growth"], table)
    write_json(args.json, figures)
    return figures


if __name__ == "__main__":
    main()
