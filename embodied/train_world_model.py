"""`embodied train-world-model`: fit a world model on any LeRobot dataset.

The same loop as `train-policy` (`embodied.training`): progress bar, `metrics.jsonl`,
atomic checkpoints (`checkpoints/<step>/pretrained_model/{config.json,model.safetensors}`),
exact resume, and data-parallel training on Ray Train with `--ray.num_workers`.

Every `holdout_every`-th episode is left out of training and the split is saved in the
model's config, so `eval-world-model` and the RL refresh measure and mix in data as
training split it.
"""

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from embodied.config import ConfigError, from_dict
from embodied.training import Trainable, TrainConfig, on_device, train
from embodied.types import ACTION, DONE, IMAGE_PREFIX, STATE, SUCCESS
from world_models.latent_conv.configuration_latent_conv import LatentConvConfig
from world_models.windows import holdout_mask, window_deltas


@dataclass
class TrainWorldModelConfig(TrainConfig):
    """Attributes (and those of embodied.training.TrainConfig: dataset, output_dir, cameras,
    steps, batch_size, grad_clip, seed, log_every, save_every, device, ray); the dataset
    should hold recorded failures, so the success head sees negatives:
    world_model: the model's config: `type` (latent_conv, the default) and that family's
        fields, e.g. --world_model.dynamics_width=64 (world_models/<family>/configuration_*.py);
        cameras, sizes and statistics are set from the dataset.
    holdout_every: every n-th episode (index % n == n - 1) is held out; 0 trains on all.
        Not split by outcome as the reward model is: holding out one of the quickstart's 8
        failures made imagination pass 97-100 % of the pretrained policy's episodes (3
        seeds; 13 % and 53 % with this split), so the world model keeps its failures.
        Saved in the model's config (evaluation and refresh use the same split).
    """

    world_model: LatentConvConfig = field(default_factory=LatentConvConfig)
    holdout_every: int = 5
    steps: int = 3000
    batch_size: int = 16

    def __post_init__(self):
        if isinstance(self.world_model, dict):  # a dict of settings, typed
            self.world_model = from_dict(LatentConvConfig, self.world_model, "world_model")


def train_world_model(config: TrainWorldModelConfig) -> Path:
    """Train (or resume) and return the model folder of the final checkpoint."""
    from embodied.data.source import open_metadata

    world_model_config_for(open_metadata(config.dataset), config.world_model, config.cameras)
    if config.holdout_every < 0:
        raise ConfigError(f"--holdout_every must be >= 0, got {config.holdout_every}")
    return train(config, partial(_build, config), "train-world-model")


def world_model_config_for(meta: Any, settings: Any, cameras: tuple[str, ...] = ()) -> Any:
    """A copy of the world model's config `settings` for a dataset: its cameras, image size,
    state and action sizes and normalization statistics; missing keys or labels fail here,
    before work."""
    import copy

    from embodied.data.source import DatasetError, require_features

    if isinstance(settings, dict):
        settings = from_dict(LatentConvConfig, settings, "world_model")
    config = copy.deepcopy(settings)
    keys = tuple(IMAGE_PREFIX + c for c in cameras) or tuple(meta.camera_keys)
    labels = [SUCCESS, DONE] if config.success_head else []
    try:
        require_features(meta, [STATE, ACTION, *keys], where="the world model")
        require_features(meta, labels, where="the world model's success head")
    except DatasetError as err:
        if labels and "success head" in str(err):
            raise DatasetError(
                f"{err}. Train without the head only if you mean it: "
                "--world_model.success_head=false"
            ) from None
        raise
    shapes = {tuple(meta.features[k]["shape"]) for k in keys}
    if len(shapes) != 1 or (shape := shapes.pop())[0] != shape[1]:
        raise DatasetError(f"the world model needs square frames of one size; got {shapes}")
    config.image_keys, config.image_size = keys, shape[0]
    config.state_dim = meta.features[STATE]["shape"][0]
    config.action_dim = meta.features[ACTION]["shape"][0]
    config.stats = {
        key: {s: np.asarray(meta.stats[key][s]).tolist() for s in ("mean", "std")}
        for key in (STATE, ACTION)
    }
    return config


def _build(config: TrainWorldModelConfig, resume: Path | None) -> Trainable:
    import torch

    from embodied.data.dataset import CachedDataset
    from embodied.data.source import open_metadata
    from world_models.registry import build, load_world_model

    meta = open_metadata(config.dataset)
    if resume is not None:
        model = load_world_model(resume, config.device).train()
    else:
        torch.manual_seed(config.seed)
        model_config = world_model_config_for(meta, config.world_model, config.cameras)
        model_config.holdout_every = config.holdout_every
        model = build(model_config)
        model.to(config.device)
    dataset = CachedDataset(
        meta, window_deltas(model.config, meta.fps), cache_dir=config.dataset.cache_dir or None
    )
    train_rows = np.flatnonzero(
        ~holdout_mask(np.asarray(dataset.arrays["episode_index"]), model.config.holdout_every)
    )
    if len(train_rows) == 0:
        raise ConfigError(f"--holdout_every={config.holdout_every} leaves no training episode")
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=model.config.lr, weight_decay=model.config.weight_decay
    )

    scheduler = None
    if model.config.final_lr_fraction != 1.0:
        from lerobot.optim.schedulers import CosineDecayWithWarmupSchedulerConfig

        lr = model.config.lr
        scheduler = CosineDecayWithWarmupSchedulerConfig(
            num_warmup_steps=0,
            num_decay_steps=config.steps,
            peak_lr=lr,
            decay_lr=lr * model.config.final_lr_fraction,
        ).build(optimizer, config.steps)

    def batch(rows: np.ndarray) -> dict:
        return on_device(dataset.batch(train_rows[rows]), config.device)

    return Trainable(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        n_samples=len(train_rows),
        batch=batch,
        save=model.save_pretrained,
    )
