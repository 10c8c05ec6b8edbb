"""Building the VLA for a dataset, and loading checkpoints with checks LeRobot skips.

A policy checkpoint is LeRobot's `pretrained_model/` layout: `config.json`,
`model.safetensors` and the processor files (normalization statistics), so it loads with
`--policy.path=<dir>` here and in LeRobot's own tools.
"""

import json
from pathlib import Path
from typing import Any

from embodied.data.source import require_features
from embodied.types import ACTION, IMAGE_PREFIX, STATE

REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "policy_preprocessor.json",
    "policy_postprocessor.json",
)


class CheckpointError(ValueError):
    """A checkpoint folder that is incomplete or holds another kind of policy."""


def vla_config_for(meta: Any, settings: dict, cameras: tuple[str, ...] = ()) -> Any:
    """A `VLAConfig` with `settings` whose inputs and outputs are the dataset's features.

    `cameras` picks cameras by name (all of the dataset's by default); missing keys or
    cameras fail here, before any training.
    """
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.utils import dataset_to_policy_features

    from policies.vla.configuration_vla import VLAConfig

    require_features(meta, [STATE, ACTION], cameras=list(cameras), where="the VLA policy")
    features = dataset_to_policy_features(meta.features)
    image_keys = [IMAGE_PREFIX + c for c in cameras] or [
        k for k, f in features.items() if f.type is FeatureType.VISUAL
    ]
    if not image_keys:
        raise ValueError(f"dataset {meta.repo_id} has no camera; the VLA needs at least one")
    config = VLAConfig(**settings)
    config.input_features = {k: features[k] for k in [*image_keys, STATE]}
    config.output_features = {ACTION: features[ACTION]}
    config.validate_features()
    return config


def check_checkpoint(path: Path) -> dict:
    """The checkpoint's config as JSON, after checking every file is there and the type fits."""
    from policies.vla.configuration_vla import POLICY_TYPE

    if not path.is_dir():
        raise CheckpointError(f"policy checkpoint {path} does not exist")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"policy checkpoint {path} is incomplete: {missing} missing")
    try:
        config = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}/config.json is corrupt: {err}") from None
    if config.get("type") != POLICY_TYPE:
        raise CheckpointError(
            f"{path} holds a policy of type {config.get('type')!r}; expected {POLICY_TYPE!r}"
        )
    return config


def load_policy(path: str | Path, device: str = "cpu") -> tuple[Any, Any, Any]:
    """(policy, preprocessor, postprocessor) from a checkpoint folder, weights loaded strictly."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors
    from safetensors import SafetensorError

    from policies.vla.modeling_vla import VLAPolicy

    path = Path(path)
    check_checkpoint(path)
    config = PreTrainedConfig.from_pretrained(path)
    config.device = device
    try:
        policy = VLAPolicy.from_pretrained(path, config=config, strict=True)
    except (SafetensorError, RuntimeError) as err:
        raise CheckpointError(f"{path}/model.safetensors does not load: {err}") from None
    pre, post = make_pre_post_processors(
        config,
        pretrained_path=str(path),
        preprocessor_overrides={"device_processor": {"device": device}},
    )
    return policy, pre, post
