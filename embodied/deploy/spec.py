"""What a checkpoint expects and gives, as the server announces it to every client.

`PolicySpec` travels as the first message of every connection, so the robot's side knows the
cameras, state and action sizes, the meaning of each action dimension and the action range
the policy was trained on, without loading the checkpoint. The server checks every request
against it (`check_request`); a client can check before it sends.
"""

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from embodied.deploy.wire import WireError
from embodied.types import STATE, TASK


class RequestError(WireError):
    """A request that does not match the policy's spec; the message says what and where."""


@dataclass
class PolicySpec:
    """Attributes:
    policy_type: the checkpoint's LeRobot policy type (embodied_vla, act, ...).
    cameras: image key -> [3, H, W] the policy was trained on; frames of any size are
        accepted (the VLA's processor resizes them), as uint8 (H, W, 3).
    state_dim, action_dim: sizes of `observation.state` and of each action.
    action_names: what each action dimension means (empty when the data named none).
    action_min, action_max: the training data's action range, per dimension.
    chunk_size: actions per answer; n_action_steps: how many to execute before asking again.
    max_instruction_chars, max_image_side: request limits.
    """

    policy_type: str
    cameras: dict[str, list[int]]
    state_dim: int
    action_dim: int
    action_min: list[float]
    action_max: list[float]
    chunk_size: int
    n_action_steps: int
    action_names: list[str] = field(default_factory=list)
    max_instruction_chars: int = 1000
    max_image_side: int = 4096

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PolicySpec":
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as err:
            raise WireError(f"the server's spec is not valid: {err}") from None

    def check_request(self, message: dict) -> dict:
        """The observation in `message` (cameras, state, task), checked; RequestError
        naming the first problem otherwise. Keys other than these and `id` are refused."""
        expected = [*self.cameras, STATE]
        missing = [k for k in expected if k not in message]
        unknown = [k for k in message if k not in (*expected, TASK, "id")]
        if missing or unknown:
            raise RequestError(
                f"request keys: missing {missing}, unknown {unknown}; "
                f"expected {expected} and optionally {TASK!r}"
            )
        for key in self.cameras:
            self._check_image(key, message[key])
        state = message[STATE]
        if not isinstance(state, np.ndarray) or state.dtype.kind != "f":
            raise RequestError(f"{STATE} must be a float array, got {_describe(state)}")
        if state.shape != (self.state_dim,):
            raise RequestError(f"{STATE} must have shape ({self.state_dim},), got {state.shape}")
        if not np.isfinite(state).all():
            raise RequestError(f"{STATE} holds NaN or inf")
        task = message.get(TASK, "")
        if not isinstance(task, str):
            raise RequestError(f"{TASK} must be a string, got {type(task).__name__}")
        if len(task) > self.max_instruction_chars:
            raise RequestError(
                f"{TASK} has {len(task)} characters; at most {self.max_instruction_chars}"
            )
        return {**{k: message[k] for k in expected}, TASK: task}

    def _check_image(self, key: str, image: Any) -> None:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise RequestError(f"{key} must be a uint8 array (H, W, 3), got {_describe(image)}")
        if image.ndim != 3 or image.shape[2] != 3:
            raise RequestError(f"{key} must have shape (H, W, 3), got {image.shape}")
        if not 1 <= min(image.shape[:2]) <= max(image.shape[:2]) <= self.max_image_side:
            height, width = image.shape[:2]
            raise RequestError(f"{key} is {height}x{width}; sides must be 1..{self.max_image_side}")

    def check_answer(self, actions: Any) -> np.ndarray:
        """The chunk of an answer as float (chunk_size, action_dim)."""
        shape = (self.chunk_size, self.action_dim)
        if not isinstance(actions, np.ndarray) or actions.shape != shape:
            raise WireError(f"the server answered {_describe(actions)}; expected {shape}")
        return actions.astype(np.float64)

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        low, high = np.asarray(self.action_min, float), np.asarray(self.action_max, float)
        if not all(map(math.isfinite, [*low, *high])) or (low > high).any():
            raise WireError(f"the spec's action range is not valid: {low} .. {high}")
        return low, high


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array {value.dtype} {value.shape}"
    return type(value).__name__
