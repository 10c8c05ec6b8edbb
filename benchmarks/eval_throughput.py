"""Closed-loop evaluation throughput on one core: Lift, the tiny VLA, two 64x64 cameras.

The policy is the tiny VLA (configs/policy/tiny.yaml, untrained weights: the cost does not
depend on them) acting in chunks of `n_action_steps`, B episodes in lockstep per policy call.
Two ways, the same actions: step by step with every step rendered (how evaluation ran before
lazy rendering) and whole chunks rendering only where the policy re-plans (how it runs now).
Reported: env steps per second including the policy, and episodes per minute at the horizon.
Run: .venv/bin/python -m benchmarks.eval_throughput --json=eval_throughput.json
"""

import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import (
    BenchmarkConfig,
    median_rate,
    parse,
    pin_to_one_core,
    print_table,
    write_json,
)
from embodied.config import ConfigError


@dataclass
class EvalThroughputConfig(BenchmarkConfig):
    """Attributes (besides the shared ones in BenchmarkConfig):
    batch_sizes: episodes in lockstep per policy call.
    horizon: steps per episode (episodes of an untrained policy run to the horizon); Lift's
        own, as `embodied eval` runs it (each episode's reset and first render are in the
        time, so a shorter horizon weighs them more).
    """

    batch_sizes: list[int] = field(default_factory=lambda: [1, 10])
    horizon: int = 150


def steps_per_second(checkpoint: Path, batch: int, chunked: bool, args) -> float:
    from embodied.acting import PolicyActor
    from embodied.policy_io import load_policy
    from embodied.rollouts import rollout
    from envs.batched import BatchedTaskEnv

    policy, pre, post = load_policy(checkpoint)
    env = BatchedTaskEnv("lift", batch, look_every_step=not chunked, horizon=args.horizon)
    actor = PolicyActor(policy, pre, post, chunked=chunked)
    tasks = ["lift the red cube"] * batch
    rollout(env, actor, options={"seeds": list(range(batch)), "tasks": tasks}, max_calls=2)
    rates = []
    for r in range(args.repeats):
        seeds = [1000 * (r + 1) + i for i in range(batch)]
        start = time.perf_counter()
        result = rollout(env, actor, options={"seeds": seeds, "tasks": tasks})
        rates.append(int(result.info["steps"].sum()) / (time.perf_counter() - start))
    env.close()
    return median_rate(rates)


def main() -> None:
    try:
        args = parse(EvalThroughputConfig, __doc__)
    except ConfigError as err:
        sys.exit(f"eval_throughput: {err}")
    pin_to_one_core()
    import torch

    torch.set_num_threads(1)
    from benchmarks.serve_latency import tiny_checkpoint

    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = tiny_checkpoint(Path(tmp) / "tiny")
        for batch in args.batch_sizes:
            every = steps_per_second(checkpoint, batch, False, args)
            lazy = steps_per_second(checkpoint, batch, True, args)
            figures[f"batch_{batch}"] = {"every_step_rendered": every, "chunks": lazy}
    rows = [[name.replace("_", " "), f"{f['every_step_rendered']:.1f}", f"{f['chunks']:.1f}",
             f"{f['chunks'] / f['every_step_rendered']:.2f}x",
             f"{60 * f['chunks'] / args.horizon:.0f}"] for name, f in figures.items()]  # fmt: skip
    print_table(["episodes per call", "steps/s, every step rendered", "steps/s, chunks",
                 "speed-up", f"episodes/min ({args.horizon} steps)"], rows)  # fmt: skip
    write_json(args.json, {**figures, "horizon": args.horizon, "task": "lift",
                           "cameras": ["agentview", "wrist"], "image_size": 64})  # fmt: skip


if __name__ == "__main__":
    main()
