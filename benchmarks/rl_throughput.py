"""RL throughput on this machine: imagined environment steps/s and policy updates per minute
with 1 and 2 rollout workers (Ray actors), the scaling efficiency, and the share of wall
time spent rolling out, learning and sending weights.

Uses the checkpoints and data of a pipeline run (the quickstart's by default):
Run: .venv/bin/python -m benchmarks.rl_throughput --json=rl.json [--run=runs/quickstart]
"""

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import BenchmarkConfig, median_rate, parse, print_table, write_json
from embodied.config import ConfigError


@dataclass
class RLThroughputConfig(BenchmarkConfig):
    """Attributes (besides the shared ones in BenchmarkConfig):
    run: a finished pipeline run directory (its checkpoints and data are used).
    iterations: fine-tuning iterations per measurement (the first is not counted).
    """

    run: str = "runs/quickstart"
    iterations: int = 4


def measure(run: Path, workers: int, iterations: int) -> dict:
    import json

    import ray

    from embodied.data.source import DatasetConfig
    from embodied.ray_utils import RaySettings
    from embodied.refs import PolicyRef, WorldModelRef
    from embodied.rl.finetune import AlgoSettings, FinetuneConfig, finetune

    policy = sorted((run / "policy/checkpoints").glob("*/pretrained_model"))[-1]
    world_model = sorted((run / "world_model/checkpoints").glob("*/pretrained_model"))[-1]
    with tempfile.TemporaryDirectory() as out:
        config = FinetuneConfig(
            policy=PolicyRef(str(policy)),
            world_model=WorldModelRef(str(world_model)),
            dataset=DatasetConfig(root=str(run / "data")),
            # Every group is learned from, whatever its outcomes: this measures the cost of
            # an update, which GRPO would skip for a policy whose groups all fail.
            algo=AlgoSettings(group_size=8, starts=2, min_group_rate=-1.0, max_group_rate=2.0),
            output_dir=out,
            iterations=iterations,
            save_every=10**6,
            ray=RaySettings(num_workers=workers),
        )
        try:
            finetune(config)
        finally:
            ray.shutdown()
        rows = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    rows = rows[1:]  # the first iteration pays the actors' start-up
    seconds = [r["time_rollout_s"] + r["time_learn_s"] + r["time_sync_s"] for r in rows]
    return {
        "steps_per_s": median_rate([r["env_steps"] / r["time_rollout_s"] for r in rows]),
        "updates_per_min": 60.0 / median_rate(seconds),
        "time_share": {
            name: sum(r[f"time_{name}_s"] for r in rows) / sum(seconds)
            for name in ("rollout", "learn", "sync")
        },
    }


def main() -> None:
    try:
        args = parse(RLThroughputConfig, __doc__)
    except ConfigError as err:
        sys.exit(f"rl_throughput: {err}")
    run = Path(args.run)
    if not (run / "world_model/checkpoints").is_dir():
        sys.exit(
            f"{run} has no trained world model: run `embodied pipeline configs/quickstart.yaml`"
        )
    one, two = measure(run, 1, args.iterations), measure(run, 2, args.iterations)
    efficiency = two["steps_per_s"] / (2 * one["steps_per_s"])
    print_table(
        ["figure", "1 worker", "2 workers"],
        [
            [
                "imagined steps/s (rollout phase)",
                f"{one['steps_per_s']:.0f}",
                f"{two['steps_per_s']:.0f}",
            ],
            [
                "policy updates per minute",
                f"{one['updates_per_min']:.1f}",
                f"{two['updates_per_min']:.1f}",
            ],
            *[
                [f"time share: {k}", f"{one['time_share'][k]:.0%}", f"{two['time_share'][k]:.0%}"]
                for k in ("rollout", "learn", "sync")
            ],
        ],
    )
    print(f"scaling efficiency (2 workers vs 2 x 1): {efficiency:.0%}")
    write_json(
        args.json,
        {
            "steps_per_s_1_worker": one["steps_per_s"],
            "steps_per_s_2_workers": two["steps_per_s"],
            "scaling_efficiency": efficiency,
            "time_share": two["time_share"],
            "time_share_1_worker": one["time_share"],
            "updates_per_min_1_worker": one["updates_per_min"],
            "updates_per_min_2_workers": two["updates_per_min"],
            "run": str(run),
        },
    )


if __name__ == "__main__":
    main()
