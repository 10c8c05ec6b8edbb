"""The smallest policy and world model the tests train: seconds on a CPU, real classes."""

from pathlib import Path

POLICY = {"dim": 16, "depth": 1, "heads": 2, "vision_channels": (8,), "vision_grid": 2}
WORLD_MODEL = {"channels": (8, 8, 8), "latent_channels": 4, "dynamics_width": 8,
               "dynamics_blocks": 1, "text_dim": 8, "train_horizon": 2}  # fmt: skip
REWARD_MODEL = {"channels": (8,), "width": 8, "text_dim": 8}


def train_tiny(data, out: Path) -> tuple[Path, Path]:
    """(policy checkpoint, world-model checkpoint), two steps each on dataset `data`."""
    from embodied.train_policy import TrainPolicyConfig, train_policy
    from embodied.train_world_model import TrainWorldModelConfig, train_world_model

    policy = train_policy(
        TrainPolicyConfig(
            dataset=data, output_dir=str(out / "policy"), policy=dict(POLICY), steps=2, batch_size=4
        )  # fmt: skip
    )
    world_model = train_world_model(
        TrainWorldModelConfig(
            dataset=data,
            output_dir=str(out / "wm"),
            world_model=dict(WORLD_MODEL),
            steps=2,
            batch_size=2,
        )  # fmt: skip
    )
    return policy, world_model


def pipeline_config(out: Path):
    """configs/tiny.yaml, every stage of `embodied pipeline` at its smallest, run in `out`."""
    from embodied.config import load_config
    from embodied.pipeline import PipelineConfig

    config = Path(__file__).resolve().parents[1] / "configs/tiny.yaml"
    return load_config(PipelineConfig, [f"--output_dir={out}"], config_path=str(config))
