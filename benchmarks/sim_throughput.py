"""Simulator steps per second with camera observations, on one core.

Ours (no shadow map, no multisampling, no reflections; `envs.lean_robosuite`'s classes)
against robosuite's default visual settings and its own classes, for every task; and ours
rendering only the frames a chunked policy looks at (`--chunk` steps per re-plan: the last
step of each chunk renders, as `BatchedTaskEnv` does).
Run: .venv/bin/python -m benchmarks.sim_throughput --json=sim.json
"""

import sys
import time
from dataclasses import dataclass

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
class SimThroughputConfig(BenchmarkConfig):
    """Attributes (besides the shared ones in BenchmarkConfig):
    steps: environment steps per timed run.
    tasks: comma-separated tasks measured with our settings and two cameras.
    """

    steps: int = 100
    tasks: str = "lift,stack,pick_place_can,door,lang_cubes"
    chunk: int = 5


def steps_per_second(
    task: str, fast: bool, cameras: tuple[str, ...], steps: int, repeats: int, chunk: int = 1
):
    import numpy as np

    from envs.lean_robosuite import restore_robosuite_classes
    from envs.robosuite_env import make_env

    env = make_env(task, cameras=cameras, image_size=64, fast_render=fast)
    if not fast:
        restore_robosuite_classes(env.sim_env)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, 7)).astype(np.float32)
    env.reset(seed=0)
    for action in actions[:10]:  # warm-up: first renders compile shaders
        env.step(action)
    rates = []
    for r in range(repeats):
        env.reset(seed=r)
        start = time.perf_counter()
        for t, action in enumerate(actions):
            env.step(action, look=t % chunk == chunk - 1)
        rates.append(steps / (time.perf_counter() - start))
    env.close()
    return median_rate(rates)


def main() -> None:
    try:
        args = parse(SimThroughputConfig, __doc__)
    except ConfigError as err:
        sys.exit(f"sim_throughput: {err}")
    pin_to_one_core()
    two = ("agentview", "wrist")
    ours = steps_per_second("lift", True, two, args.steps, args.repeats)
    default = steps_per_second("lift", False, two, args.steps, args.repeats)
    ours_one = steps_per_second("lift", True, ("agentview",), args.steps, args.repeats)
    default_one = steps_per_second("lift", False, ("agentview",), args.steps, args.repeats)
    no_camera = steps_per_second("lift", True, (), args.steps, args.repeats)
    chunked = steps_per_second("lift", True, two, args.steps, args.repeats, args.chunk)
    per_task = {"lift": ours}
    for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        if task != "lift":
            per_task[task] = steps_per_second(task, True, two, args.steps, args.repeats)
    rows = [
        ["lift, 2 cameras 64x64", f"{default:.1f}", f"{ours:.1f}", f"{ours / default:.1f}x"],
        [
            "lift, 1 camera 64x64",
            f"{default_one:.1f}",
            f"{ours_one:.1f}",
            f"{ours_one / default_one:.1f}x",
        ],
        [
            f"lift, 2 cameras, rendered every {args.chunk}th step",
            "-",
            f"{chunked:.1f}",
            f"{chunked / default:.1f}x",
        ],
        ["lift, no camera (physics)", "-", f"{no_camera:.1f}", "-"],
    ]
    rows += [[f"{t}, 2 cameras", "-", f"{v:.1f}", "-"] for t, v in per_task.items() if t != "lift"]
    print_table(["steps/s (one core, median)", "robosuite default", "ours", "speed-up"], rows)
    write_json(
        args.json,
        {
            "ours_steps_per_s": ours,
            "default_steps_per_s": default,
            "per_task": per_task,
            "one_camera": {"ours_steps_per_s": ours_one, "default_steps_per_s": default_one},
            "no_camera_steps_per_s": no_camera,
            "rendered_every_chunk_steps_per_s": chunked,
            "settings": {
                "cameras": list(two),
                "image_size": 64,
                "steps": args.steps,
                "repeats": args.repeats,
                "chunk": args.chunk,
            },
        },
    )


if __name__ == "__main__":
    main()
