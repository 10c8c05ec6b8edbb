"""VLA speed on this CPU: batch-1 latency per action chunk, training samples/s, and the share
of the machine's measured fp32 matmul peak that training reaches.

Synthetic inputs of the dataset's shapes (two 64x64 cameras, 8-D state, 7-D actions), so the
figure measures the model, not the loader. FLOPs are counted by torch's FlopCounterMode.
Run: .venv/bin/python -m benchmarks.policy_speed --json=policy.json [--config=CONFIG]
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
from embodied.config import ConfigError


@dataclass
class PolicySpeedConfig(BenchmarkConfig):
    """Attributes (besides the shared ones in BenchmarkConfig):
    config: YAML file whose `policy:` section sets the VLA's size.
    batch_size: training batch.
    """

    config: str = "configs/policy/tiny.yaml"
    batch_size: int = 64


def build(settings: dict):
    from lerobot.configs.types import FeatureType, PolicyFeature

    from policies.vla.configuration_vla import VLAConfig
    from policies.vla.modeling_vla import VLAPolicy

    config = VLAConfig(**settings, device="cpu")
    visual = PolicyFeature(FeatureType.VISUAL, (3, 64, 64))
    config.input_features = {
        "observation.images.agentview": visual,
        "observation.images.wrist": visual,
        "observation.state": PolicyFeature(FeatureType.STATE, (8,)),
    }
    config.output_features = {"action": PolicyFeature(FeatureType.ACTION, (7,))}
    return VLAPolicy(config)


def batch(n: int, chunk: int) -> dict:
    import torch

    return {
        "observation.images.agentview": torch.rand(n, 3, 64, 64),
        "observation.images.wrist": torch.rand(n, 3, 64, 64),
        "observation.state": torch.randn(n, 8),
        "task": ["lift the red cube"] * n,
        "action": torch.randn(n, chunk, 7),
        "action_is_pad": torch.zeros(n, chunk, dtype=torch.bool),
    }


def main() -> None:
    try:
        args = parse(PolicySpeedConfig, __doc__)
    except ConfigError as err:
        sys.exit(f"policy_speed: {err}")
    import torch
    import yaml
    from torch.utils.flop_counter import FlopCounterMode

    settings = yaml.safe_load(Path(args.config).read_text())["policy"]
    settings["vision_channels"] = tuple(settings["vision_channels"])
    policy = build(settings)
    chunk = policy.config.chunk_size
    one = batch(1, chunk)
    policy.eval()
    with torch.no_grad():
        for _ in range(5):
            policy.predict_action_chunk(one)
        latencies = []
        for _ in range(args.repeats * 20):
            start = time.perf_counter()
            policy.predict_action_chunk(one)
            latencies.append((time.perf_counter() - start) * 1000)
    policy.train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    data = batch(args.batch_size, chunk)

    def train_step():
        loss, _ = policy(data)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        train_step()
    flops_per_sample = counter.get_total_flops() / args.batch_size
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(5):
            train_step()
        rates.append(5 * args.batch_size / (time.perf_counter() - start))
    samples_per_s = median_rate(rates)
    peak = matmul_peak_gflops(args.repeats)
    achieved = samples_per_s * flops_per_sample / 1e9
    params = sum(p.numel() for p in policy.parameters())
    print_table(
        ["figure", "value"],
        [
            ["parameters", f"{params / 1e6:.2f} M"],
            ["latency per chunk, batch 1 (median)", f"{median_rate(latencies):.2f} ms"],
            [f"training samples/s (batch {args.batch_size})", f"{samples_per_s:.0f}"],
            ["training GFLOP/s achieved", f"{achieved:.1f}"],
            ["fp32 matmul peak GFLOP/s (measured)", f"{peak:.1f}"],
            ["peak fraction", f"{achieved / peak:.1%}"],
        ],
    )
    write_json(
        args.json,
        {
            "latency_ms": median_rate(latencies),
            "train_samples_per_s": samples_per_s,
            "peak_fraction": achieved / peak,
            "train_gflops": achieved,
            "matmul_peak_gflops": peak,
            "flops_per_sample": flops_per_sample,
            "parameters": params,
            "config": args.config,
            "batch_size": args.batch_size,
        },
    )


if __name__ == "__main__":
    main()
