"""`latent_conv`: a frame autoencoder with deterministic, action-conditioned conv dynamics.

Why this design: on a 2-core CPU the model must train in minutes and imagine thousands of
steps per second, and RL needs a success judgement on every imagined frame.

- A conv encoder maps each camera's frame to a small latent grid (64x64x3 -> 8x8x16 by
  default); a mirrored decoder maps it back, with a mask that composites its output over
  the previous frame, so static pixels stay sharp. One encoder/decoder serves all cameras.
- Dynamics are residual conv blocks on the stacked latent grids of the last K frames,
  FiLM-conditioned on the (normalized) state, the action and an embedding of the
  instruction's bytes; they predict the change of every camera's latent and of the state.
- Heads read the predicted latent, state and instruction: success (so imagined episodes can
  be judged, per instruction) and episode end.
- Training unrolls H steps open-loop from real context frames and penalizes every step's
  decoded frames, latent, state and labels, so the model learns to correct its own drift.

Dynamics are deterministic. A stochastic variant (DreamerV3's per-step categorical
variables, posterior in training, prior in imagination; commit 4b147e2, reverted) left its
variables unused on the quickstart data (0.06 nats per step) and ranked GRPO groups worse
(`benchmarks/group_agreement`): what this model misses is not an outcome left open by the
history and the actions.

Convolutions keep the spatial layout, which is cheap on CPUs and scales by widening on GPUs
(`configs/world_model/base.yaml`); a diffusion or transformer family can sit beside it in
`world_models/` behind the same `WorldModel` interface.
"""

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from embodied.types import (
    ACTION,
    BYTE_VOCAB,
    DONE,
    PAD_SUFFIX,
    STATE,
    SUCCESS,
    TASK,
    byte_tokens,
)
from world_models.base import Prediction, WorldModel, per_model_step
from world_models.latent_conv.configuration_latent_conv import LatentConvConfig


def _norm(width: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, width), width)


class FrameCodec(nn.Module):
    """Frames (N, 3, H, W) in [0, 1] <-> latents (N, C, H / 2**stages, W / 2**stages).

    The decoder also returns a per-pixel mask in [0, 1] that says where its output replaces
    the previous frame (see `LatentConvWorldModel.decode`).
    """

    def __init__(self, channels: tuple[int, ...], latent: int):
        super().__init__()
        down, previous = [], 3
        for width in channels:
            down += [nn.Conv2d(previous, width, 4, stride=2, padding=1), _norm(width), nn.SiLU()]
            previous = width
        self.encoder = nn.Sequential(*down, nn.Conv2d(previous, latent, 1))
        up = [nn.Conv2d(latent, previous, 1)]
        for width in reversed(channels[:-1]):
            up += [_norm(previous), nn.SiLU(), nn.ConvTranspose2d(previous, width, 4, 2, 1)]
            previous = width
        up += [_norm(previous), nn.SiLU(), nn.ConvTranspose2d(previous, 4, 4, 2, 1)]
        self.decoder = nn.Sequential(*up)
        with torch.no_grad():  # start near "keep the previous frame": the mask earns pixels
            self.decoder[-1].bias[3] = -2.0

    def encode(self, frames: Tensor) -> Tensor:
        return self.encoder(frames * 2 - 1)

    def decode(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        """-> frames (N, 3, H, W) and masks (N, 1, H, W).

        The mask is a stretched sigmoid clipped to [0, 1], so it reaches exactly 0: a pixel
        the model leaves alone is copied unchanged step after step, instead of taking in a
        little blur at every step of a long imagined rollout.
        """
        out = self.decoder(latent)
        mask = (1.2 * torch.sigmoid(out[:, 3:]) - 0.1).clamp(0.0, 1.0)
        return torch.sigmoid(out[:, :3]), mask


class TextEmbedding(nn.Module):
    """Instruction bytes -> one vector (B, dim): embeddings, a conv over neighbours, masked mean."""

    def __init__(self, dim: int, max_len: int):
        super().__init__()
        self.max_len = max_len
        self.embed = nn.Embedding(BYTE_VOCAB, dim)
        self.conv = nn.Conv1d(dim, dim, 5, padding=2)

    def forward(self, texts: list[str]) -> Tensor:
        device = self.embed.weight.device
        tokens, pad = (torch.from_numpy(x).to(device) for x in byte_tokens(texts, self.max_len))
        x = F.gelu(self.conv(self.embed(tokens).transpose(1, 2))).transpose(1, 2)
        keep = (~pad).unsqueeze(-1).to(x.dtype)
        return (x * keep).sum(1) / keep.sum(1).clamp_min(1.0)


class FiLMBlock(nn.Module):
    def __init__(self, width: int, cond: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(width), nn.Conv2d(width, width, 3, padding=1)
        self.norm2, self.conv2 = _norm(width), nn.Conv2d(width, width, 3, padding=1)
        self.film = nn.Linear(cond, 2 * width)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.film(cond)[:, :, None, None].chunk(2, dim=1)
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h) * (1 + scale) + shift
        return x + self.conv2(F.silu(h))


class LatentConvWorldModel(WorldModel):
    config_class = LatentConvConfig

    def __init__(self, config: LatentConvConfig):
        super().__init__(config)
        c = config
        n_cams, z = len(c.image_keys), c.latent_channels
        self.codec = FrameCodec(tuple(c.channels), z)
        self.text = TextEmbedding(c.text_dim, c.max_text_len)
        width, cond = c.dynamics_width, c.dynamics_width
        self.cond = nn.Sequential(
            nn.Linear(c.state_dim + c.frame_stride * c.action_dim + c.text_dim, cond),
            nn.SiLU(),
            nn.Linear(cond, cond),
        )
        self.inp = nn.Conv2d(c.context * n_cams * z, width, 3, padding=1)
        self.blocks = nn.ModuleList(FiLMBlock(width, cond) for _ in range(c.dynamics_blocks))
        self.out = nn.Sequential(
            _norm(width), nn.SiLU(), nn.Conv2d(width, n_cams * z, 3, padding=1)
        )
        self.state_head = nn.Linear(width + cond, c.state_dim)
        # Per camera, how much its latent moved -> whether its view changes at all: a gate on
        # the compositing mask that reaches exactly 0, so a view where nothing moves (the arm
        # out of sight, a held pose) is copied exactly rather than repainted. Starts open.
        self.gate = nn.Linear(z, 1)
        nn.init.zeros_(self.gate.weight), nn.init.constant_(self.gate.bias, 2.0)
        nn.init.zeros_(self.out[-1].weight), nn.init.zeros_(self.out[-1].bias)
        nn.init.zeros_(self.state_head.weight), nn.init.zeros_(self.state_head.bias)
        self.judge_conv = nn.Sequential(nn.Conv2d(n_cams * z, width, 3, padding=1), nn.SiLU())
        self.judge = nn.Sequential(
            nn.Linear(width + c.state_dim + c.text_dim, width), nn.SiLU(), nn.Linear(width, 2)
        )

    # --- pieces -------------------------------------------------------------------------
    def encode(self, frames: dict[str, Tensor]) -> Tensor:
        """Per camera (..., 3, H, W) -> stacked latents (..., n_cams * C, h, w)."""
        keys = self.config.image_keys
        lead = frames[keys[0]].shape[:-3]
        flat = torch.cat([frames[k].reshape(-1, *frames[k].shape[-3:]) for k in keys])
        z = self.codec.encode(flat)
        z = z.reshape(len(keys), -1, *z.shape[1:]).transpose(0, 1).flatten(1, 2)
        return z.reshape(*lead, *z.shape[1:])

    def decode(
        self, z: Tensor, previous: dict[str, Tensor] | None = None, change: Tensor | None = None
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Stacked latents (B, n_cams * C, h, w) -> frames (B, 3, H, W) per camera, and the
        masks (B, n_cams, 1, H, W). `change` is the latents' predicted step (same shape as
        `z`); it gates each camera's mask.

        With the `previous` frames, each new frame is composited: the decoder's pixels where
        its mask is high, the previous frame's elsewhere. What does not move (most of a
        fixed camera's view) then stays sharp instead of passing through the latent
        bottleneck, and the dynamics spend their capacity on what moves. Training charges
        `mask_loss` per unit of open mask, so a view where nothing moves is copied exactly.
        """
        keys, n = self.config.image_keys, z.shape[0]
        per_cam = z.reshape(n * len(keys), -1, *z.shape[2:])
        rgb, mask = self.codec.decode(per_cam)
        rgb = rgb.reshape(n, len(keys), 3, *self.frame_hw)
        mask = mask.reshape(n, len(keys), 1, *self.frame_hw)
        if change is not None:
            moved = change.reshape(n, len(keys), -1, *change.shape[2:]).abs().mean((3, 4))
            gate = (1.2 * torch.sigmoid(self.gate(moved)) - 0.1).clamp(0.0, 1.0)  # (n, cams, 1)
            mask = mask * gate[..., None, None]
        if previous is None:
            return {k: rgb[:, i] for i, k in enumerate(keys)}, mask
        frames = {
            k: mask[:, i] * rgb[:, i] + (1 - mask[:, i]) * previous[k] for i, k in enumerate(keys)
        }
        return frames, mask

    @property
    def frame_hw(self) -> tuple[int, int]:
        return self.config.image_size, self.config.image_size

    def dynamics(self, history: Tensor, state: Tensor, action: Tensor, text: Tensor):
        """(B, K, Z, h, w) latents, normalized state (B, S), one model step's normalized
        actions (B, s * A), text (B, E) ->
        next latent (B, Z, h, w) and next normalized state (B, S)."""
        cond = self.cond(torch.cat([state, action, text], dim=-1))
        x = self.inp(history.flatten(1, 2))
        for block in self.blocks:
            x = block(x, cond)
        z_next = history[:, -1] + self.out(x)
        s_next = state + self.state_head(torch.cat([x.mean((2, 3)), cond], dim=-1))
        return z_next, s_next

    def judge_logits(self, z: Tensor, state: Tensor, text: Tensor) -> Tensor:
        """(B, 2) logits of success and episode end for a latent, its state and instruction."""
        pooled = self.judge_conv(z).mean((2, 3))
        return self.judge(torch.cat([pooled, state, text], dim=-1))

    # --- training -----------------------------------------------------------------------
    def forward(self, batch: dict) -> tuple[Tensor, dict]:
        c = self.config
        K, H = c.context, c.train_horizon
        frames = {k: batch[k] for k in c.image_keys}  # (B, K+H, 3, h, w)
        z_all = self.encode(frames)  # (B, K+H, Z, h, w)
        state = self.normalize(STATE, batch[STATE])
        per_step = {k: per_model_step(batch[k], c.frame_stride) for k in (ACTION, SUCCESS, DONE)
                    if k in batch}  # fmt: skip
        action = self.normalize(ACTION, per_step[ACTION]).flatten(-2)  # (B, H, s * A)
        text = self.text(list(batch[TASK]))
        valid = ~batch[c.image_keys[0] + PAD_SUFFIX][:, K:]  # (B, H) future frame exists
        weight = valid.to(z_all.dtype)
        count = weight.sum().clamp_min(1.0)

        recon, _ = self.decode(z_all[:, :K].flatten(0, 1))
        recon_loss = sum(F.mse_loss(recon[k], frames[k][:, :K].flatten(0, 1)) for k in frames)
        history, s = z_all[:, :K], state[:, K - 1]
        previous = {k: frames[k][:, K - 1] for k in frames}
        zero = torch.zeros((), device=z_all.device)
        image_loss = latent_loss = state_loss = judge_loss = mask_loss = zero
        for i in range(H):
            z_next, s = self.dynamics(history, s, action[:, i], text)
            w = weight[:, i]
            predicted, mask = self.decode(z_next, previous, z_next - history[:, -1])
            previous = predicted
            mask_loss = mask_loss + (mask.mean((1, 2, 3, 4)) * w).sum() / count
            for k in frames:
                err = (predicted[k] - frames[k][:, K + i]).pow(2).mean((1, 2, 3))
                image_loss = image_loss + (err * w).sum() / count
            z_true = z_all[:, K + i].detach()
            latent_loss = latent_loss + ((z_next - z_true).pow(2).mean((1, 2, 3)) * w).sum() / count
            state_loss = state_loss + ((s - state[:, K + i]).pow(2).mean(1) * w).sum() / count
            if c.success_head:
                labels = torch.stack(
                    [per_step[k][:, i].flatten(1).amax(1) for k in (SUCCESS, DONE)], -1
                )
                judge_loss = judge_loss + self._judge_loss(labels, z_next, s, text, w, count)
                teacher = self._judge_loss(labels, z_true, state[:, K + i], text, w, count)
                judge_loss = judge_loss + teacher
            history = torch.cat([history[:, 1:], z_next[:, None]], dim=1)
        loss = (
            recon_loss
            + image_loss
            + c.latent_loss * latent_loss
            + state_loss
            + c.success_loss * judge_loss
            + c.mask_loss * mask_loss
        )
        info = {
            "recon": recon_loss.item(),
            "image": image_loss.item() / H,
            "latent": latent_loss.item() / H,
            "state": state_loss.item() / H,
            "judge": judge_loss.item() / H,
            "mask": mask_loss.item() / H,
        }
        return loss, info

    def _judge_loss(self, labels, z, state, text, w, count) -> Tensor:
        """labels (B, 2): success and episode end within the step."""
        logits = self.judge_logits(z, state, text)
        err = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none").sum(-1)
        return (err * w).sum() / count

    # --- imagination --------------------------------------------------------------------
    def start(self, context: dict) -> dict[str, Any]:
        self.check_context(context)
        frames = {k: context[k] for k in self.config.image_keys}
        return {
            "history": self.encode(frames),
            "frames": {k: v[:, -1] for k, v in frames.items()},
            "state": self.normalize(STATE, context[STATE][:, -1]),
            "text": self.text(list(context[TASK])),
        }

    def step(self, carry: dict, action: Tensor) -> tuple[dict, Prediction]:
        self.check_action(action)
        history, text = carry["history"], carry["text"]
        z_next, s_next = self.dynamics(history, carry["state"], self.step_actions(action), text)
        success, done = torch.sigmoid(self.judge_logits(z_next, s_next, text)).unbind(-1)
        images, _ = self.decode(z_next, carry["frames"], z_next - history[:, -1])
        carry = {
            "history": torch.cat([history[:, 1:], z_next[:, None]], dim=1),
            "frames": images,
            "state": s_next,
            "text": text,
        }
        prediction = Prediction(
            images=images,
            state=self.unnormalize(STATE, s_next),
            success=success,
            done=done,
        )
        return carry, prediction
