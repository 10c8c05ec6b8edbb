"""`embodied train-policy`: imitation learning of a policy on any LeRobot dataset.

The VLA by default; `--policy.type=act` (or `diffusion`) trains LeRobot's own policy on the
same data as a baseline, with the optimizer and scheduler LeRobot's presets give it.

In-process on one machine (the fast path on a CPU). Every `save_every` steps a checkpoint is
written to `checkpoints/<step>.tmp` and renamed when complete, then `checkpoints/last.json`
is replaced; a rerun with the same `output_dir` resumes from it exactly (weights, optimizer,
RNG state, and the data order, which is a function of the step).
"""

from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from embodied.config import ConfigError
from embodied.training import Trainable, TrainConfig, train
from policies.vla.configuration_vla import VLAConfig


@dataclass
class TrainPolicyConfig(TrainConfig):
    """Attributes (and those of embodied.training.TrainConfig: dataset, output_dir, cameras,
    steps, batch_size, grad_clip, seed, log_every, save_every, device, ray):
    policy: the policy's config: `type` (embodied_vla, the default; act, diffusion) and that
        type's fields, e.g. --policy.dim=256 (see policies/vla/configuration_vla.py).
    successful_only: imitate only episodes whose `next.success` is ever true. Our datasets
        mix in the experts' deliberate failures for the world model's success head; cloning
        those would teach the policy to fail.
    """

    policy: VLAConfig = field(default_factory=lambda: VLAConfig(device="cpu"))
    successful_only: bool = False

    def __post_init__(self):
        from embodied.policy_io import policy_settings

        self.policy: Any = policy_settings(self.policy)  # a dict of settings, typed


def train_policy(config: TrainPolicyConfig) -> Path:
    """Train (or resume) and return the folder of the final checkpoint.

    With `--ray.num_workers` > 1 the same loop runs data-parallel (DDP) on Ray Train workers,
    each taking its share of every global batch; rank 0 writes checkpoints and metrics.
    """
    from embodied.data.source import open_metadata

    open_metadata(config.dataset)  # fail on a bad dataset before any worker starts
    return train(config, partial(_build, config), "train-policy")


def _build(config: TrainPolicyConfig, resume: Path | None) -> Trainable:
    """Policy, processors, optimizer and LR scheduler (None for constant-LR policies): fresh,
    or the weights of the `resume` model folder. LeRobot's presets pick the optimizer and
    scheduler of each policy type, as `lerobot-train` does."""
    import torch
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    from embodied.data.dataset import CachedDataset
    from embodied.data.source import open_metadata
    from embodied.policy_io import load_policy, policy_config_for

    meta = open_metadata(config.dataset)
    if resume is not None:
        policy, pre, post = load_policy(resume, config.device)
    else:
        try:
            settings = replace(config.policy, device=config.device)
            policy_config = policy_config_for(meta, settings, config.cameras)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        torch.manual_seed(config.seed)
        policy = get_policy_class(policy_config.type)(policy_config)
        pre, post = make_pre_post_processors(policy_config, dataset_stats=meta.stats)
    optimizer = policy.config.get_optimizer_preset().build(policy.get_optim_params())
    preset = policy.config.get_scheduler_preset()
    deltas = resolve_delta_timestamps(policy.config, meta)
    frame_size = getattr(policy.config, "image_size", None)  # the VLA's; LeRobot's: as recorded
    dataset = CachedDataset(
        meta, deltas, cache_dir=config.dataset.cache_dir or None, frame_size=frame_size
    )
    rows = successful_rows(dataset) if config.successful_only else np.arange(len(dataset))

    def save(folder: Path) -> None:
        for part in (policy, pre, post):
            part.save_pretrained(folder)

    return Trainable(
        model=policy,
        optimizer=optimizer,
        scheduler=preset.build(optimizer, config.steps) if preset is not None else None,
        n_samples=len(rows),
        batch=lambda picked: pre(dataset.batch(rows[picked])),
        save=save,
    )


def successful_rows(dataset) -> np.ndarray:
    """Rows of the episodes that reach `next.success` at least once."""
    from embodied.types import SUCCESS

    if SUCCESS not in dataset.arrays:
        raise ConfigError(
            f"--successful_only needs a `{SUCCESS}` column; {dataset.meta.repo_id} has none"
        )
    episode = np.asarray(dataset.arrays["episode_index"])
    succeeded = np.unique(episode[np.asarray(dataset.arrays[SUCCESS]).reshape(-1) > 0])
    rows = np.flatnonzero(np.isin(episode, succeeded))
    if len(rows) == 0:
        raise ConfigError(f"--successful_only: no episode of {dataset.meta.repo_id} succeeds")
    return rows
