"""Pre/post-processing of the embodied VLA, built from LeRobot's own processor steps.

Pre: renaming of observation keys (empty; `lerobot-eval` and `lerobot-record` set it from
their `rename_map` and refuse a pipeline without it), batch dimension, device, every camera
resized to the model's `image_size`, normalization of state and action with the dataset's
mean/std (images stay in [0, 1]; the network normalizes them itself). Post: un-normalize
actions, back to the CPU. LeRobot finds this module by name
(`make_embodied_vla_pre_post_processors`).
"""

from dataclasses import dataclass
from typing import Any

import torch
from lerobot.configs.types import FeatureType, PipelineFeatureType, PolicyFeature
from lerobot.processor import (
    AddBatchDimensionProcessorStep,
    DeviceProcessorStep,
    NormalizerProcessorStep,
    ObservationProcessorStep,
    PolicyAction,
    PolicyProcessorPipeline,
    ProcessorStepRegistry,
    RenameObservationsProcessorStep,
    UnnormalizerProcessorStep,
)
from lerobot.processor.converters import policy_action_to_transition, transition_to_policy_action
from lerobot.utils.constants import (
    POLICY_POSTPROCESSOR_DEFAULT_NAME,
    POLICY_PREPROCESSOR_DEFAULT_NAME,
)

from policies.vla.configuration_vla import VLAConfig


def make_embodied_vla_pre_post_processors(
    config: VLAConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]:
    features = {**config.input_features, **config.output_features}
    pre = [
        RenameObservationsProcessorStep(rename_map={}),
        AddBatchDimensionProcessorStep(),
        DeviceProcessorStep(device=config.device),
        ResizeImagesProcessorStep(size=list(config.image_size)),
        NormalizerProcessorStep(
            features=features,
            norm_map=config.normalization_mapping,
            stats=dataset_stats,
            device=config.device,
        ),
    ]
    post = [
        UnnormalizerProcessorStep(
            features=config.output_features,
            norm_map=config.normalization_mapping,
            stats=dataset_stats,
        ),
        DeviceProcessorStep(device="cpu"),
    ]
    return (
        PolicyProcessorPipeline[dict[str, Any], dict[str, Any]](
            steps=pre, name=POLICY_PREPROCESSOR_DEFAULT_NAME
        ),
        PolicyProcessorPipeline[PolicyAction, PolicyAction](
            steps=post,
            name=POLICY_POSTPROCESSOR_DEFAULT_NAME,
            to_transition=policy_action_to_transition,
            to_output=transition_to_policy_action,
        ),
    )


@dataclass
@ProcessorStepRegistry.register(name="embodied_resize_images")
class ResizeImagesProcessorStep(ObservationProcessorStep):
    """Every camera (`observation.image*`, float (B, 3, H, W) or (B, T, 3, H, W) in [0, 1])
    resized to `size` = [height, width], area-averaged when shrinking.

    Cameras of any size then drive the same network, and the convolutions cost what the
    model's resolution costs, not the camera's (a 480x640 arm camera is 75x a 64x64 one).
    A frame already at `size` passes untouched, so data cached at the model's size pays
    nothing here.
    """

    size: list[int]

    def observation(self, observation: dict) -> dict:
        height, width = self.size
        for key, value in observation.items():
            if not key.startswith("observation.image") or not isinstance(value, torch.Tensor):
                continue
            if value.dim() not in (4, 5) or value.shape[-3] != 3:
                raise ValueError(
                    f"{key}: expected float images (B, 3, H, W), got shape {tuple(value.shape)}"
                )
            if not value.is_floating_point():
                raise ValueError(f"{key}: expected float images in [0, 1], got {value.dtype}")
            if tuple(value.shape[-2:]) != (height, width):
                observation[key] = resize_images(value, (height, width))
        return observation

    def get_config(self) -> dict[str, Any]:
        return {"size": list(self.size)}

    def transform_features(
        self, features: dict[PipelineFeatureType, dict[str, PolicyFeature]]
    ) -> dict[PipelineFeatureType, dict[str, PolicyFeature]]:
        out = dict(features)
        out[PipelineFeatureType.OBSERVATION] = {
            key: PolicyFeature(FeatureType.VISUAL, (3, *self.size))
            if feature.type is FeatureType.VISUAL
            else feature
            for key, feature in features.get(PipelineFeatureType.OBSERVATION, {}).items()
        }
        return out


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(..., 3, H, W) float -> (..., 3, *size): antialiased bilinear, values kept in [0, 1]."""
    flat = images.reshape(-1, *images.shape[-3:])
    out = torch.nn.functional.interpolate(
        flat, size=size, mode="bilinear", antialias=True, align_corners=False
    )
    return out.clamp_(0.0, 1.0).reshape(*images.shape[:-2], *size)
