"""What every world-model family provides, and how checkpoints of any family load.

A family is one folder (`world_models/<family>/`: configuration and modeling) whose model
subclasses `WorldModel` and is listed in `world_models.registry.FAMILIES`. Callers (training,
the batched environment, metrics) use only this interface:

    model(batch) -> (loss, info)                      training on windows of a dataset
    model.start(context) -> carry                     K context frames -> recurrent carry
    model.step(carry, action) -> (carry, Prediction)  one imagined step

A model step spans `frame_stride` (s) environment steps: the model takes s actions at once
and predicts the frame s steps later. Frames in windows and contexts are s steps apart.

Shapes (B batch, K context frames, H future model steps, S state dim, A action dim):
    training batch: `observation.images.<cam>` (B, K+H, 3, h, w) float in [0, 1],
        `observation.state` (B, K+H, S), `action` (B, H*s, A), `next.success` and
        `next.done` (B, H*s, 1), each with `<key>_is_pad` (B, T), and `task` (B strings).
        Frame K-1 is "now"; actions i*s .. i*s+s-1 move frame K-1+i to frame K+i, whose
        labels are those actions' next.* (any success among them counts).
    context: the same image and state keys with T = K only, and `task`.
    step action: (B, s, A); (B, A) also when s is 1.
    Prediction: images (B, 3, h, w) per camera in [0, 1], state (B, S), success and done
        probabilities (B,).

A checkpoint folder holds `config.json` (with the family's `type`) and `model.safetensors`;
normalization statistics are buffers inside the weights, so the folder is self-describing.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from embodied.files import read_json
from embodied.types import ACTION, STATE, UserInputError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class WorldModelCheckpointError(UserInputError):
    """A world-model folder that is missing, incomplete, corrupt or of an unknown family."""


@dataclass
class WorldModelConfig:
    """Settings every family shares; families add their own fields.

    Attributes:
        image_keys: the camera keys the model sees and predicts (set from the dataset), e.g.
            `observation.images.wrist`.
        image_size: square frame side in pixels (set from the dataset).
        state_dim, action_dim: sizes of observation.state and action (set from the dataset).
        context: K, frames the model reads before imagining.
        train_horizon: H, model steps unrolled open-loop in each training window.
        frame_stride: s, environment steps per model step. An imagined episode of T steps
            is T / s predictions, so errors compound over s times fewer of them: with 1,
            the CPU benchmark's model blurred the arm within 20 of a 250-step episode.
            The policy's executed chunk (n_action_steps) must be a multiple of it.
        success_head: train the success head (needs `next.success` in the dataset).
        lr, weight_decay: AdamW settings.
        final_lr_fraction: the learning rate decays (cosine) from lr to lr x this over the
            training run; 1 keeps it constant. A refresh fine-tunes at the final rate.
        holdout_every: every n-th episode (index % n == n - 1) was held out of training
            (0: none). Saved with the weights, so evaluation and the refresh split the data
            as training did (`world_models.windows.holdout_mask`).
        stats: mean/std of state and action (set from the dataset; stored in the weights).
    """

    type: ClassVar[str] = ""
    # set from the dataset and by train-world-model, not world-model settings
    framework_fields: ClassVar[tuple[str, ...]] = (
        "image_keys", "image_size", "state_dim", "action_dim", "holdout_every", "stats",
    )  # fmt: skip
    image_keys: tuple[str, ...] = ()
    image_size: int = 64
    state_dim: int = 0
    action_dim: int = 0
    context: int = 2
    train_horizon: int = 6
    frame_stride: int = 1
    success_head: bool = True
    lr: float = 1e-3
    weight_decay: float = 1e-4
    final_lr_fraction: float = 1.0
    holdout_every: int = 5
    stats: dict = field(default_factory=dict, repr=False)

    @classmethod
    def get_choice_class(cls, name: str) -> "type[WorldModelConfig]":
        """The config class of family `name` (the config loader's choice protocol)."""
        from world_models.registry import FAMILIES

        return FAMILIES[name].config_class

    @classmethod
    def get_known_choices(cls) -> dict:
        from world_models.registry import FAMILIES

        return dict(FAMILIES)

    def to_json(self) -> dict:
        """The config saved beside the weights (statistics live in the weights)."""
        from embodied.config import to_dict

        return {k: v for k, v in to_dict(self).items() if k != "stats"}


@dataclass
class Prediction:
    images: dict[str, Tensor]
    state: Tensor
    success: Tensor
    done: Tensor


class WorldModel(nn.Module):
    """Base of every family: normalization buffers, the step contract, save and load."""

    config_class: ClassVar[type[WorldModelConfig]] = WorldModelConfig

    def __init__(self, config: WorldModelConfig):
        super().__init__()
        if not config.image_keys or not config.state_dim or not config.action_dim:
            raise ValueError(
                "a world model needs image_keys, state_dim and action_dim (set them from a dataset)"
            )
        if config.frame_stride < 1:
            raise ValueError(f"frame_stride must be at least 1, got {config.frame_stride}")
        self.config = config
        for key, dim in ((STATE, config.state_dim), (ACTION, config.action_dim)):
            stats = config.stats.get(key, {})
            mean = torch.as_tensor(stats.get("mean", torch.zeros(dim)), dtype=torch.float32)
            std = torch.as_tensor(stats.get("std", torch.ones(dim)), dtype=torch.float32)
            name = key.replace(".", "_")
            self.register_buffer(f"{name}_mean", mean.reshape(dim))
            self.register_buffer(f"{name}_std", std.reshape(dim).clamp_min(1e-6))

    def normalize(self, key: str, x: Tensor) -> Tensor:
        name = key.replace(".", "_")
        return (x - getattr(self, f"{name}_mean")) / getattr(self, f"{name}_std")

    def unnormalize(self, key: str, x: Tensor) -> Tensor:
        name = key.replace(".", "_")
        return x * getattr(self, f"{name}_std") + getattr(self, f"{name}_mean")

    def forward(self, batch: dict) -> tuple[Tensor, dict]:
        raise NotImplementedError("forward(batch) -> (loss, info)")

    def start(self, context: dict) -> Any:
        raise NotImplementedError("start(context) -> carry")

    def step(self, carry: Any, action: Tensor) -> tuple[Any, Prediction]:
        raise NotImplementedError("step(carry, action) -> (carry, Prediction)")

    def check_context(self, context: dict) -> None:
        """Fail with a clear message on frames or states the model was not trained for."""
        c, size = self.config, self.config.image_size
        for key in c.image_keys:
            if key not in context:
                raise ValueError(f"context lacks {key}; this world model sees {c.image_keys}")
            shape = tuple(context[key].shape[-3:])
            if shape != (3, size, size):
                raise ValueError(
                    f"context {key} frames are {shape}; this world model takes (3, {size}, {size})"
                )
        if context[STATE].shape[-1] != c.state_dim:
            raise ValueError(
                f"context state has {context[STATE].shape[-1]} dims; the model takes {c.state_dim}"
            )

    def check_action(self, action: Tensor) -> None:
        """One model step's actions: (B, s, A); (B, A) also when frame_stride is 1."""
        if action.shape[-1] != self.config.action_dim:
            raise ValueError(
                f"actions have {action.shape[-1]} dims; this world model was trained on "
                f"{self.config.action_dim}-D actions"
            )
        s, dim = self.config.frame_stride, self.config.action_dim
        if action.dim() == 2 and s == 1:
            return
        if tuple(action.shape[1:]) != (s, dim):
            raise ValueError(
                f"one step of this world model takes actions of shape (B, {s}, {dim}) "
                f"(frame_stride={s}); got {tuple(action.shape)}"
            )

    def step_actions(self, action: Tensor) -> Tensor:
        """One model step's normalized actions, flattened: (B, s, A) or (B, A) -> (B, s * A)."""
        x = self.normalize(ACTION, action)
        return x.flatten(1) if x.dim() == 3 else x

    def save_pretrained(self, folder: str | Path) -> None:
        save_folder(self, self.config.to_json(), folder)


def save_folder(model: nn.Module, config: dict, folder: str | Path) -> None:
    """A self-describing model folder: config.json and model.safetensors."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / WEIGHTS_FILE)


def load_folder(path: str | Path, families: dict[str, type], device: str = "cpu") -> Any:
    """A model of one of `families` from its folder, weights loaded strictly, in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(path)
    config = read_config(folder, families)
    model = families[config.type](config)
    try:
        model.load_state_dict(load_file(folder / WEIGHTS_FILE, device=device), strict=True)
    except (SafetensorError, RuntimeError) as err:
        raise WorldModelCheckpointError(f"{folder}/{WEIGHTS_FILE} does not load: {err}") from None
    return model.to(device).eval()


def per_model_step(x: Tensor, stride: int) -> Tensor:
    """Per environment step (B, H*s, ...) -> per model step (B, H, s, ...)."""
    return x.reshape(x.shape[0], -1, stride, *x.shape[2:])


def read_config(folder: Path, families: dict[str, type[WorldModel]]) -> WorldModelConfig:
    """The config of a checkpoint folder, after checking it is complete and of a known family."""
    if not folder.is_dir():
        raise WorldModelCheckpointError(f"world-model checkpoint {folder} does not exist")
    missing = [n for n in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / n).is_file()]
    if missing:
        raise WorldModelCheckpointError(f"world-model checkpoint {folder} lacks {missing}")
    raw = read_json(folder / CONFIG_FILE, WorldModelCheckpointError)
    from embodied.config import ConfigError, from_dict

    kind = raw.get("type")
    if kind not in families:
        raise WorldModelCheckpointError(
            f"{folder} holds a world model of type {kind!r}; known: {sorted(families)}"
        )
    try:
        return from_dict(families[kind].config_class, raw, f"{folder}/{CONFIG_FILE}")
    except ConfigError as err:
        raise WorldModelCheckpointError(f"{err} (a {kind} checkpoint)") from None
