"""World-model speed on this CPU: imagined environment steps/s batched (B = 1, 16, 64) next to
MuJoCo's steps/s on the same task with the same cameras, training samples/s, and the share
of the machine's measured fp32 matmul peak that training reaches.

Synthetic start frames and actions of the tasks' shapes (two 64x64 cameras, 8-D state, 7-D
actions), so the figures measure the model and the simulator, not a loader.
Run: .venv/bin/python -m benchmarks.world_model_speed --json=world_model.json [--config=CONFIG]
"""

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    BenchmarkConfig,
    matmul_peak_gflops,
    median_rate,
    parse,
    print_table,
    write_json,
)
from embodied.config import ConfigError, from_dict

KEYS = ("observation.images.agentview", "observation.images.wrist")


@dataclass
class WorldModelSpeedConfig(BenchmarkConfig):
    """Attributes (besides the shared ones in BenchmarkConfig):
    config: YAML file whose `world_model:` section sets the model's size.
    task: the MuJoCo task the simulator is timed on.
    batch_size: training batch.
    """

    config: str = "configs/world_model/tiny.yaml"
    task: str = "lift"
    batch_size: int = 16


def build(settings: dict):
    """A world model of any family from a config file's `world_model:` section, with the
    tasks' cameras and sizes."""
    from world_models.latent_conv.configuration_latent_conv import LatentConvConfig
    from world_models.registry import build as build_family

    config = from_dict(LatentConvConfig, settings, "world_model")
    config.image_keys, config.image_size, config.state_dim, config.action_dim = KEYS, 64, 8, 7
    return build_family(config)


def imagined_steps_per_s(model, batch_size: int, repeats: int) -> float:
    import numpy as np

    from world_models.env import StartBank, WorldModelEnv

    rng = np.random.default_rng(0)
    k = model.config.context
    bank = StartBank(
        images={key: rng.integers(0, 255, (8, k, 64, 64, 3), dtype=np.uint8) for key in KEYS},
        state=rng.normal(size=(8, k, 8)).astype(np.float32),
        instructions=["lift the red cube"] * 8,
    )
    env = WorldModelEnv(model, bank, num_envs=batch_size, horizon=10**6, success_threshold=2.0)
    env.reset(seed=0)
    actions = rng.uniform(-1, 1, (batch_size, 7)).astype(np.float32)
    env.step(actions)
    steps = max(5, 640 // batch_size)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            env.step(actions)
        rates.append(steps * batch_size / (time.perf_counter() - start))
    return median_rate(rates)


def sim_steps_per_s(task: str, repeats: int) -> float:
    import numpy as np

    from envs.robosuite_env import make_env

    env = make_env(task, cameras=("agentview", "wrist"), image_size=64)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(repeats):
        env.reset(seed=0)
        start = time.perf_counter()
        for _ in range(60):
            env.step(rng.uniform(-1, 1, 7))
        rates.append(60 / (time.perf_counter() - start))
    return median_rate(rates)


def training(model, batch_size: int, repeats: int) -> tuple[float, float]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    c = model.config
    t = c.context + c.train_horizon
    data = {key: torch.rand(batch_size, t, 3, 64, 64) for key in KEYS}
    data.update({key + "_is_pad": torch.zeros(batch_size, t, dtype=torch.bool) for key in KEYS})
    data["observation.state"] = torch.randn(batch_size, t, 8)
    data["action"] = torch.randn(batch_size, c.train_horizon, 7)
    for key in ("next.success", "next.done"):
        data[key] = torch.zeros(batch_size, c.train_horizon, 1, dtype=torch.bool)
    data["task"] = ["lift the red cube"] * batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        loss, _ = model(data)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        step()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(3):
            step()
        rates.append(3 * batch_size / (time.perf_counter() - start))
    return median_rate(rates), counter.get_total_flops() / batch_size


def main() -> None:
    import yaml

    try:
        args = parse(WorldModelSpeedConfig, __doc__)
        settings = yaml.safe_load(Path(args.config).read_text())["world_model"]
        model = build(settings).eval()
    except ConfigError as err:
        sys.exit(f"world_model_speed: {err}")
    steps = {b: imagined_steps_per_s(model, b, args.repeats) for b in (1, 16, 64)}
    sim = sim_steps_per_s(args.task, args.repeats)
    samples, flops = training(model, args.batch_size, args.repeats)
    peak = matmul_peak_gflops(args.repeats)
    achieved = samples * flops / 1e9
    params = sum(p.numel() for p in model.parameters())
    rows = [["parameters", f"{params / 1e6:.2f} M"]]
    rows += [[f"imagined steps/s, B={b}", f"{v:.0f}"] for b, v in steps.items()]
    rows += [
        [f"MuJoCo {args.task} steps/s (2 cameras 64x64)", f"{sim:.1f}"],
        ["ratio at B=64", f"{steps[64] / sim:.1f}x"],
        [f"training samples/s (batch {args.batch_size})", f"{samples:.1f}"],
        ["training GFLOP/s achieved", f"{achieved:.1f}"],
        ["fp32 matmul peak GFLOP/s (measured)", f"{peak:.1f}"],
        ["peak fraction", f"{achieved / peak:.1%}"],
    ]
    print_table(["figure", "value"], rows)
    write_json(
        args.json,
        {
            "steps_per_s": {str(b): v for b, v in steps.items()},
            "sim_steps_per_s": sim,
            "ratio_b64": steps[64] / sim,
            "train_samples_per_s": samples,
            "peak_fraction": achieved / peak,
            "train_gflops": achieved,
            "matmul_peak_gflops": peak,
            "flops_per_sample": flops,
            "parameters": params,
            "config": args.config,
        },
    )


if __name__ == "__main__":
    main()
