"""Deployment through LeRobot's own tools: `lerobot-eval` runs checkpoints of every origin.

The checkpoints are trained on LeRobot's PushT data (../shared) and judged by LeRobot's own
`lerobot-eval` in LeRobot's PushT env, as a user would: a subprocess, no helper of ours.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from embodied.data.source import DatasetConfig
from embodied.policy_io import load_policy

BIN = Path(sys.executable).parent
POLICY = {"dim": 16, "depth": 1, "heads": 2, "vision_channels": (8,), "vision_grid": 2}
WORLD_MODEL = {"channels": (8, 8, 8), "latent_channels": 4, "dynamics_width": 8,
               "dynamics_blocks": 1, "text_dim": 8, "train_horizon": 2}  # fmt: skip


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args[0]} failed:\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def pusht_checkpoints(lerobot_fixture, tmp_path_factory) -> dict[str, Path]:
    """A tiny VLA on PushT from each origin: `train-policy`, `finetune` (RL in a world model
    of the same data) and LeRobot's own `lerobot-train`."""
    from embodied.ray_utils import RaySettings
    from embodied.refs import PolicyRef, WorldModelRef
    from embodied.rl.finetune import AlgoSettings, FinetuneConfig, finetune
    from embodied.train_policy import TrainPolicyConfig, train_policy
    from embodied.train_world_model import TrainWorldModelConfig, train_world_model

    root = lerobot_fixture("pusht_fixture")
    out = tmp_path_factory.mktemp("pusht")
    data = DatasetConfig(root=str(root))
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
    finetuned = finetune(
        FinetuneConfig(
            iterations=1,
            horizon=4,
            save_every=1,
            ray=RaySettings(num_workers=0),
            algo=AlgoSettings(group_size=2, starts=1, minibatch_size=4),
            policy=PolicyRef(str(policy)),
            world_model=WorldModelRef(str(world_model)),
            dataset=data,
            output_dir=str(out / "rl"),
        )  # fmt: skip
    )
    flags = [f"--policy.{k}={list(v) if isinstance(v, tuple) else v}" for k, v in POLICY.items()]
    _run(
        [str(BIN / "lerobot-train"), "--policy.type=embodied_vla", "--policy.push_to_hub=false",
         "--policy.device=cpu", *flags, "--dataset.repo_id=local/pusht_fixture",
         f"--dataset.root={root}", "--dataset.video_backend=pyav", "--steps=2",
         "--batch_size=4", "--save_freq=2", "--num_workers=0", "--wandb.enable=false",
         f"--output_dir={out / 'lerobot_train'}"],
        cwd=out,
    )  # fmt: skip
    lerobot_trained = out / "lerobot_train/checkpoints/last/pretrained_model"
    return {"train-policy": policy, "finetune": finetuned, "lerobot-train": lerobot_trained}


@pytest.mark.parametrize("origin", ["train-policy", "finetune", "lerobot-train"])
def test_lerobot_eval_runs_our_checkpoints_on_pusht(pusht_checkpoints, origin, tmp_path):
    checkpoint = pusht_checkpoints[origin]
    _run(
        [str(BIN / "lerobot-eval"), f"--policy.path={checkpoint}", "--policy.device=cpu",
         "--env.type=pusht", "--env.episode_length=8", "--eval.n_episodes=2",
         "--eval.batch_size=2", f"--output_dir={tmp_path / 'eval'}"],
        cwd=tmp_path,
    )  # fmt: skip
    info = json.loads((tmp_path / "eval/eval_info.json").read_text())
    assert info["overall"]["n_episodes"] == 2


def test_cameras_of_any_size_are_resized_to_the_models_resolution(pusht_checkpoints):
    """PushT's 96x96 camera is read at the VLA's `image_size` (64x64): the processor resizes
    whatever size arrives, so a 480x640 frame of the same scene gives the same action."""
    policy, pre, _ = load_policy(pusht_checkpoints["train-policy"])
    assert tuple(policy.config.image_size) == (64, 64)
    scene = torch.rand(1, 3, 8, 8)
    chunks = []
    for size in [(96, 96), (480, 640), (64, 64)]:
        frame = torch.nn.functional.interpolate(scene, size=size, mode="nearest")[0]
        batch = pre({"observation.image": frame, "observation.state": torch.zeros(2), "task": ""})
        assert tuple(batch["observation.image"].shape) == (1, 3, 64, 64)
        chunks.append(policy.predict_action_chunk(batch))
    assert torch.allclose(chunks[0], chunks[1], atol=1e-2)  # resampling differs at edges
    assert torch.allclose(chunks[0], chunks[2], atol=1e-2)
    with pytest.raises(ValueError, match="expected float images in"):
        pre({"observation.image": torch.zeros(3, 96, 96, dtype=torch.uint8),
             "observation.state": torch.zeros(2), "task": ""})  # fmt: skip
