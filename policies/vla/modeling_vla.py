"""The embodied VLA network and its LeRobot `PreTrainedPolicy`.

One transformer reads everything as tokens: a grid of tokens per camera (one vision encoder
shared across cameras, plus a camera embedding), the instruction's tokens (see
`policies.encoders`: from scratch or pretrained), one state token and
`chunk_size` learned action queries; the queries' outputs become a Gaussian over the chunk
(`policies.action_head.ChunkGaussian`), whose mean is the deterministic action.
"""

from collections import deque

import torch
from lerobot.policies.pretrained import PreTrainedPolicy
from torch import Tensor, nn

from embodied.types import ACTION, PAD_SUFFIX, STATE, TASK, feature_names
from policies.action_head import ChunkGaussian
from policies.encoders import make_text, make_vision
from policies.vla.configuration_vla import POLICY_TYPE, VLAConfig


class VLANet(nn.Module):
    """Images, state and instruction tokens -> mean and log std of an action chunk."""

    def __init__(self, config: VLAConfig, n_cameras: int, state_dim: int, action_dim: int):
        super().__init__()
        self.config = config
        dim = config.dim
        freeze = config.freeze_encoders
        self.vision = make_vision(
            config.vision_encoder, config.vision_channels, config.vision_grid, dim, freeze
        )
        self.camera = nn.Parameter(torch.zeros(n_cameras, dim))
        self.text = make_text(config.text_encoder, config.max_text_len, dim, freeze)
        self.state = nn.Linear(state_dim, dim)
        self.queries = nn.Parameter(torch.randn(config.chunk_size, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim,
            config.heads,
            4 * dim,
            config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 2 * action_dim)
        with torch.no_grad():  # start with a standard deviation of about one
            low, high = config.min_log_std, config.max_log_std
            self.head.bias[action_dim:] = torch.atanh(
                torch.tensor(2 * (0 - low) / (high - low) - 1)
            )

    def forward(
        self, images: list[Tensor], state: Tensor, texts: list[str]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """-> mean and log std of the chunk (B, H, A), and pooled features (B, dim) that
        RL's value heads read."""
        batch = state.shape[0]
        # One memory layout whoever built the batch: frames permuted from HWC arrays are
        # channels-last, LeRobot's tools hand over contiguous CHW, and the convolutions pick
        # different kernels (last-bit differences that turn some contact-rich episodes).
        images = [img.contiguous() for img in images]
        parts = [self.vision(img) + self.camera[i] for i, img in enumerate(images)]
        text, text_pad = self.text(texts)
        parts += [text, self.state(state)[:, None]]
        parts.append(self.queries.expand(batch, -1, -1))
        x = torch.cat(parts, dim=1)
        pad = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        start = sum(p.shape[1] for p in parts[: len(images)])
        pad[:, start : start + text.shape[1]] = text_pad
        queries = self.norm(self.transformer(x, src_key_padding_mask=pad))[
            :, -self.config.chunk_size :
        ]
        mean, raw_log_std = self.head(queries).chunk(2, dim=-1)
        low, high = self.config.min_log_std, self.config.max_log_std
        log_std = low + 0.5 * (high - low) * (torch.tanh(raw_log_std) + 1.0)
        return mean, log_std, queries.mean(1)


class VLAPolicy(PreTrainedPolicy):
    """The VLA as a LeRobot policy: `forward` gives the imitation loss, `select_action` runs
    action chunks with re-planning every `n_action_steps`, `distribution` gives the exact
    Gaussian RL needs. Inputs are normalized by the processor pipeline (processor_vla)."""

    config_class = VLAConfig
    name = POLICY_TYPE

    def __init__(self, config: VLAConfig, dataset_meta=None, **kwargs):
        """`dataset_meta`: the LeRobot dataset LeRobot's tools build the policy for
        (lerobot-train's data, lerobot-record's robot): its action names are recorded in a
        fresh config, and must equal a trained one's, so that a policy never drives motors
        whose order or meaning differs from those it learned."""
        super().__init__(config)
        config.validate_features()
        if dataset_meta is not None:
            _match_action_names(config, feature_names(dataset_meta.features.get(ACTION, {})))
            if not config.state_names:  # a fresh policy: record what its state holds
                config.state_names = feature_names(dataset_meta.features.get(STATE, {}))
        self.camera_keys = sorted(config.image_features)
        self.model = VLANet(
            config,
            n_cameras=len(self.camera_keys),
            state_dim=config.robot_state_feature.shape[0],
            action_dim=config.action_feature.shape[0],
        )
        self.reset()

    def reset(self) -> None:
        """Forget queued actions: call at the start of every episode."""
        self._queue: deque[Tensor] = deque()

    def get_optim_params(self):
        return self.parameters()

    def distribution(self, batch: dict, with_features: bool = False):
        """The action-chunk distribution for a (normalized) batch of observations; with
        `with_features`, also the pooled features (B, dim) a value head can read."""
        missing = [key for key in self.camera_keys if key not in batch]
        if missing:
            given = sorted(k for k in batch if k.startswith("observation.image"))
            raise ValueError(
                f"embodied_vla reads cameras {self.camera_keys}; the observation lacks "
                f"{missing} (it has {given})"
            )
        images = [_last_frame(batch[key]) for key in self.camera_keys]
        state = batch[STATE]
        state = state[:, -1] if state.dim() == 3 else state
        texts = batch.get(TASK) or [""] * state.shape[0]
        if isinstance(texts, str):
            texts = [texts] * state.shape[0]
        mean, log_std, features = self.model(images, state, list(texts))
        dist = ChunkGaussian(mean, log_std)
        return (dist, features) if with_features else dist

    def forward(self, batch: dict) -> tuple[Tensor, dict]:
        """Imitation loss on a batch with `action` (B, H, A) and `action_is_pad` (B, H).

        The mean is fitted by squared error and the standard deviation by the Gaussian
        likelihood with the mean held fixed, so an early, large std cannot slow the mean down.
        """
        dist = self.distribution(batch)
        target = batch[ACTION]
        valid = (
            ~batch[ACTION + PAD_SUFFIX]
            if ACTION + PAD_SUFFIX in batch
            else torch.ones(target.shape[:2], dtype=torch.bool, device=target.device)
        )
        weight = valid[..., None].to(target.dtype)
        count = weight.sum() * target.shape[-1]
        mse = (((dist.mean - target) ** 2) * weight).sum() / count
        fixed = ChunkGaussian(dist.mean.detach(), dist.log_std)
        nll = -fixed.log_prob(target, mask=valid).sum() / count
        return mse + nll, {"mse": mse.item(), "nll": nll.item()}

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict, **kwargs) -> Tensor:
        """Deterministic chunk (B, H, A), normalized action space."""
        return self.distribution(batch).mode

    @torch.no_grad()
    def select_action(
        self, batch: dict, temperature: float | None = None, generator=None, **kwargs
    ) -> Tensor:
        """The next action (B, A); a new chunk is predicted every `n_action_steps` calls: the
        distribution's mean, or a sample at `temperature` (how RL's policy acts)."""
        if not self._queue:
            dist = self.distribution(batch)
            chunk = dist.mode if temperature is None else dist.sample(temperature, generator)
            self._queue.extend(chunk[:, : self.config.n_action_steps].transpose(0, 1))
        return self._queue.popleft()


def _match_action_names(config: VLAConfig, names: list[str]) -> None:
    if not config.action_names:
        config.action_names = names  # a fresh policy (lerobot-train): record what they mean
    elif names and names != config.action_names:
        raise ValueError(
            f"this embodied_vla checkpoint's actions are {config.action_names}; the robot or "
            f"dataset it is asked to drive takes {names}"
        )


def _last_frame(image: Tensor) -> Tensor:
    """(B, 3, H, W) as is; (B, T, 3, H, W) -> its last frame."""
    return image[:, -1] if image.dim() == 5 else image
