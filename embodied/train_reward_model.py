"""`embodied train-reward-model`: fit the success classifier RL is rewarded by, on real frames.

The same loop as the other trainers (`embodied.training`: progress bar, metrics.jsonl,
atomic checkpoints, exact resume). It learns from the dataset's training episodes and from
any `extra_roots` (the policy's own MuJoCo episodes: the failures RL will produce), in
batches balanced between positive and negative clips (`embodied.reward`). Afterwards the
threshold is chosen on the held-out real episodes by an F1 sweep and written into the final
checkpoint's config.json, with the held-out precision and recall in `threshold.json`.
"""

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from embodied.config import ConfigError, from_dict
from embodied.reward import calibrate
from embodied.training import Trainable, TrainConfig, on_device, train
from world_models.reward_model import RewardModelConfig


@dataclass
class TrainRewardModelConfig(TrainConfig):
    """Attributes (and those of embodied.training.TrainConfig: dataset, output_dir, cameras,
    steps, batch_size, grad_clip, seed, log_every, save_every, device, ray):
    reward_model: the classifier's config (clip, frame_stride, widths); cameras and sizes
        are set from the dataset.
    extra_roots: more LeRobot datasets of real episodes to learn from (same cameras), such as
        the policy's own MuJoCo episodes.
    holdout_every: every n-th successful and every n-th failed episode of each dataset is
        held out to choose the threshold (`world_models.windows.holdout_by_outcome`).
    """

    reward_model: RewardModelConfig = field(default_factory=RewardModelConfig)
    extra_roots: tuple[str, ...] = ()
    holdout_every: int = 5
    steps: int = 1000
    batch_size: int = 32

    def __post_init__(self):
        if isinstance(self.reward_model, dict):  # a dict of settings, typed
            self.reward_model = from_dict(RewardModelConfig, self.reward_model, "reward_model")


def train_reward_model(config: TrainRewardModelConfig) -> Path:
    """Train (or resume), choose the threshold; returns the final model folder."""
    if config.holdout_every < 2:
        raise ConfigError("--holdout_every must be at least 2: the threshold is chosen on "
                          "held-out episodes")  # fmt: skip
    reward_model_config_for(_datasets(config), config)  # fail on bad data before training
    folder = train(config, partial(_build, config), "train-reward-model")
    calibrate(folder, _datasets(config))
    return folder


def _datasets(config: TrainRewardModelConfig) -> list[Any]:
    from dataclasses import replace

    from embodied.data.dataset import CachedDataset

    extra = [replace(config.dataset, root=root, repo_id="") for root in config.extra_roots]
    return [CachedDataset.open(d) for d in [config.dataset, *extra]]


def reward_model_config_for(datasets: list[Any], config: TrainRewardModelConfig) -> Any:
    """A copy of the reward model's config with the dataset's cameras and frame size."""
    import copy

    from embodied.data.source import require_features
    from embodied.types import IMAGE_PREFIX, SUCCESS

    meta = datasets[0].meta
    keys = tuple(IMAGE_PREFIX + c for c in config.cameras) or tuple(meta.camera_keys)
    for dataset in datasets:
        require_features(dataset.meta, [SUCCESS, *keys], where="the reward model")
    shapes = {tuple(meta.features[k]["shape"]) for k in keys}
    if len(shapes) != 1 or (shape := shapes.pop())[0] != shape[1]:
        raise ConfigError(f"the reward model needs square frames of one size; got {shapes}")
    out = copy.deepcopy(config.reward_model)
    out.image_keys, out.image_size, out.holdout_every = keys, shape[0], config.holdout_every
    return out


def _build(config: TrainRewardModelConfig, resume: Path | None) -> Trainable:
    import torch

    from embodied.reward import ClipPool
    from world_models.reward_model import REWARD_FAMILIES, load_reward_model

    datasets = _datasets(config)
    if resume is not None:
        model = load_reward_model(resume, config.device).train()
    else:
        torch.manual_seed(config.seed)
        model_config = reward_model_config_for(datasets, config)
        model = REWARD_FAMILIES[model_config.type](model_config).to(config.device)
    pool = ClipPool(datasets, model.config, held_out=False)
    ids = pool.balanced()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=model.config.lr, weight_decay=model.config.weight_decay
    )

    def batch(rows: Any) -> dict:
        return on_device(pool.batch(ids[rows]), config.device)

    return Trainable(model, optimizer, None, len(ids), batch, model.save_pretrained)
