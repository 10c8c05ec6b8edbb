"""Configuration of the embodied VLA, registered with LeRobot as policy type ``embodied_vla``."""

from dataclasses import dataclass, field
from typing import ClassVar

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import NormalizationMode
from lerobot.optim.optimizers import AdamWConfig

POLICY_TYPE = "embodied_vla"


@PreTrainedConfig.register_subclass(POLICY_TYPE)
@dataclass
class VLAConfig(PreTrainedConfig):
    """Shapes: images (B, 3, H, W) per camera in [0, 1]; state (B, S); task: B strings;
    actions (B, chunk_size, A). `n_action_steps` of each chunk run before re-planning.

    Attributes:
        image_size: [height, width] every camera is resized to by the processor, whatever
            the camera's own size; the network's cost follows it.
        chunk_size: H, future actions predicted per observation.
        n_action_steps: actions of a chunk executed before the next prediction.
        dim: width of the transformer that fuses vision, language, state and action queries.
        depth: transformer layers; heads: attention heads.
        vision_channels: widths of the from-scratch CNN stages (each halves the resolution).
        vision_grid: each camera becomes vision_grid x vision_grid tokens.
        max_text_len: instruction tokens kept (bytes, or the pretrained tokenizer's tokens).
        vision_encoder, text_encoder: a Hugging Face model (local folder or Hub id) to use
            instead of the from-scratch CNN / byte embeddings; empty trains from scratch.
        freeze_encoders: keep the pretrained encoders' weights fixed (projections still train).
        min_log_std, max_log_std: bounds of the action head's log standard deviation.
        dropout: dropout in the transformer.
        optimizer_lr, optimizer_weight_decay: AdamW settings.
        action_names: the meaning of each action dimension, from the training data's
            feature names (e.g. a 6-joint arm's `shoulder_pan.pos`...); a robot's
            `action_features` are checked against them before the first action.
        state_names: the meaning of each state dimension, from the training data's feature
            names; a simulated task composes the same state from them (`embodied.obs_spec`).
    """

    n_obs_steps: int = 1
    image_size: tuple[int, int] = (64, 64)
    chunk_size: int = 10
    n_action_steps: int = 5
    dim: int = 128
    depth: int = 3
    heads: int = 4
    vision_channels: tuple[int, ...] = (32, 64, 128)
    vision_grid: int = 4
    max_text_len: int = 48
    vision_encoder: str = ""
    text_encoder: str = ""
    freeze_encoders: bool = False
    min_log_std: float = -5.0
    max_log_std: float = 1.0
    dropout: float = 0.0
    optimizer_lr: float = 3e-4
    optimizer_weight_decay: float = 1e-4
    action_names: list[str] = field(default_factory=list)
    state_names: list[str] = field(default_factory=list)
    normalization_mapping: dict[str, NormalizationMode] = field(
        default_factory=lambda: {
            "VISUAL": NormalizationMode.IDENTITY,
            "STATE": NormalizationMode.MEAN_STD,
            "ACTION": NormalizationMode.MEAN_STD,
        }
    )

    # set by the framework from the dataset and the command line, not policy settings
    framework_fields: ClassVar[tuple[str, ...]] = (
        "input_features", "output_features", "device", "use_amp", "use_peft", "push_to_hub",
        "repo_id", "private", "tags", "license", "pretrained_path", "action_names",
        "state_names",
    )  # fmt: skip

    def __post_init__(self):
        super().__post_init__()
        if self.n_obs_steps != 1:
            raise ValueError(
                f"embodied_vla reads one observation step, got n_obs_steps={self.n_obs_steps}"
            )
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ValueError(
                f"n_action_steps ({self.n_action_steps}) must be in "
                f"1..chunk_size ({self.chunk_size})"
            )
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(
                f"image_size must be [height, width], each >= 8; got {self.image_size}"
            )
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(lr=self.optimizer_lr, weight_decay=self.optimizer_weight_decay)

    def get_scheduler_preset(self) -> None:
        return None

    def validate_features(self) -> None:
        if not self.image_features:
            raise ValueError("embodied_vla needs at least one camera (observation.images.*)")
        if self.robot_state_feature is None:
            raise ValueError("embodied_vla needs observation.state")
        if self.action_feature is None:
            raise ValueError("embodied_vla needs an action output feature")

    @property
    def observation_delta_indices(self) -> None:
        return None

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.chunk_size))

    @property
    def reward_delta_indices(self) -> None:
        return None
