"""Building a policy for a dataset, and loading checkpoints with checks LeRobot skips.

Any LeRobot policy type trains and evaluates here: our VLA (`embodied_vla`, the default) and
LeRobot's own ACT or Diffusion as baselines (`--policy.type=act`). A checkpoint is LeRobot's
`pretrained_model/` layout: `config.json`, `model.safetensors` and the processor files
(normalization statistics), so it loads with `--policy.path=<dir>` here and in LeRobot's own
tools.
"""

from pathlib import Path
from typing import Any

from embodied.data.source import require_features
from embodied.files import read_json
from embodied.types import ACTION, IMAGE_PREFIX, STATE, UserInputError, feature_names

REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "policy_preprocessor.json",
    "policy_postprocessor.json",
)
# LeRobot's ResNet policies download ImageNet weights by default; nothing may need the network,
# so a setting left at such a default takes the offline value instead.
OFFLINE_DEFAULTS = {"act": {"pretrained_backbone_weights": None}}


class CheckpointError(UserInputError):
    """A checkpoint folder that is incomplete or holds another kind of policy."""


def policy_settings(settings: Any) -> Any:
    """A policy config section: a typed LeRobot policy config as it is, or a dict of settings
    (`type` picks the policy, the VLA by default) checked and typed by the config loader."""
    if not isinstance(settings, dict):
        return settings
    import lerobot.policies  # noqa: F401  (registers LeRobot's own policy types)

    from embodied.config import ConfigError, from_dict
    from policies.vla.configuration_vla import VLAConfig

    try:
        return from_dict(VLAConfig, settings, where="--policy")
    except ConfigError as err:
        raise ValueError(str(err)) from None


def policy_config_for(meta: Any, settings: Any, cameras: tuple[str, ...] = ()) -> Any:
    """A copy of the policy config `settings` (typed, or a dict: `policy_settings`) whose
    inputs and outputs are the dataset's features.

    `cameras` picks cameras by name (all of the dataset's by default); missing keys or
    cameras fail here, before any training.
    """
    import copy
    import dataclasses

    from lerobot.configs.types import FeatureType
    from lerobot.datasets.utils import dataset_to_policy_features

    config = copy.deepcopy(policy_settings(settings))
    policy_type = config.type
    require_features(
        meta, [STATE, ACTION], cameras=list(cameras), where=f"the {policy_type} policy"
    )
    features = dataset_to_policy_features(meta.features)
    image_keys = [IMAGE_PREFIX + c for c in cameras] or [
        k for k, f in features.items() if f.type is FeatureType.VISUAL
    ]
    if not image_keys:
        raise UserInputError(f"dataset {meta.repo_id} has no camera; the policy needs at least one")
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    for name, offline in OFFLINE_DEFAULTS.get(policy_type, {}).items():
        if getattr(config, name) == defaults[name]:  # left at a default that downloads
            setattr(config, name, offline)
    config.input_features = {k: features[k] for k in [*image_keys, STATE]}
    config.output_features = {ACTION: features[ACTION]}
    if hasattr(config, "action_names"):  # the VLA records what each dimension means
        config.action_names = feature_names(meta.features[ACTION])
        config.state_names = feature_names(meta.features[STATE])
    config.validate_features()
    return config


def check_checkpoint(path: Path, policy_type: str | None = None) -> dict:
    """The checkpoint's config as JSON, after checking every file is there and, when
    `policy_type` is given, that the checkpoint holds that type."""
    if not path.is_dir():
        raise CheckpointError(f"policy checkpoint {path} does not exist")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"policy checkpoint {path} is incomplete: {missing} missing")
    config = read_json(path / "config.json", CheckpointError)
    if policy_type is not None and config.get("type") != policy_type:
        raise CheckpointError(
            f"{path} holds a policy of type {config.get('type')!r}; expected {policy_type!r}"
        )
    return config


def load_policy(
    path: str | Path, device: str = "cpu", policy_type: str | None = None
) -> tuple[Any, Any, Any]:
    """(policy, preprocessor, postprocessor) from a checkpoint folder, weights loaded strictly.

    Any LeRobot policy type loads; `policy_type` insists on one (RL needs the VLA's exact
    log-probabilities).
    """
    from draccus.utils import DecodingError
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    from safetensors import SafetensorError

    import policies.vla.configuration_vla  # noqa: F401  (registers `embodied_vla`)

    path = Path(path)
    kind = check_checkpoint(path, policy_type).get("type")
    try:
        config = PreTrainedConfig.from_pretrained(path)
        cls = get_policy_class(config.type)
    except (DecodingError, ValueError) as err:
        raise CheckpointError(f"{path}/config.json is not a valid {kind!r} config: {err}") from None
    config.device = device
    try:
        policy = cls.from_pretrained(path, config=config, strict=True)
    except (SafetensorError, RuntimeError) as err:
        raise CheckpointError(f"{path}/model.safetensors does not load: {err}") from None
    check_processor_files(path)
    try:
        pre, post = make_pre_post_processors(
            config,
            pretrained_path=str(path),
            preprocessor_overrides={"device_processor": {"device": device}},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"the processor files of {path} do not load: {err!r}") from None
    return policy, pre, post


def check_processor_files(path: Path) -> None:
    """Every processor file of the checkpoint reads: the JSON pipelines and the statistics
    they point to, of the features' sizes. LeRobot would fail on a corrupt one with a
    traceback that names no file, or mid-episode."""
    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        steps = read_json(path / name, CheckpointError).get("steps")
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            raise CheckpointError(f"{path / name} is corrupt: 'steps' is not a list of steps")
        for step in steps:
            config = step.get("config", {})
            if not isinstance(step.get("registry_name"), str) or not isinstance(config, dict):
                raise CheckpointError(f"{path / name} is corrupt: a step reads {step!r}")
            if "state_file" in step:
                _check_statistics(path, name, step["state_file"], config.get("features") or {})


def _check_statistics(path: Path, pipeline: str, state: Any, features: dict) -> None:
    """A normalizer's statistics file loads, holds finite numbers, and each statistic has
    its feature's size (per element, or per channel for images)."""
    import math

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not isinstance(state, str) or not (path / state).is_file():
        raise CheckpointError(f"{path / pipeline} names a state file {state!r} that is missing")
    try:
        tensors = load_file(path / state)
    except SafetensorError as err:
        raise CheckpointError(f"{path / state} does not load: {err}") from None
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not tensor.isfinite().all():
            raise CheckpointError(f"{path / state} is corrupt: {key} is not finite")
        feature, stat = key.rsplit(".", 1) if "." in key else (key, "")
        shape = (features.get(feature) or {}).get("shape")
        sizes = (math.prod(shape), shape[0]) if shape else ()
        if stat in ("mean", "std", "min", "max") and sizes and tensor.numel() not in sizes:
            raise CheckpointError(f"{path / state} is corrupt: {key} has shape "
                                  f"{tuple(tensor.shape)}, its feature {list(shape)}")  # fmt: skip
