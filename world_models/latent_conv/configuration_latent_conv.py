"""Configuration of the `latent_conv` world model (see modeling_latent_conv for the design)."""

from dataclasses import dataclass

from world_models.base import WorldModelConfig


@dataclass
class LatentConvConfig(WorldModelConfig):
    """Attributes (besides the shared ones in WorldModelConfig):
    channels: widths of the frame encoder's stride-2 stages (the decoder mirrors them);
        the latent grid is image_size / 2**len(channels) on a side.
    latent_channels: channels of each camera's latent grid.
    dynamics_width: width of the residual conv blocks that predict the next latent.
    dynamics_blocks: number of those blocks.
    text_dim: width of the instruction embedding (bytes, a small conv, masked mean).
    max_text_len: instruction bytes kept.
    latent_loss: weight of the latent-consistency loss (predicted vs encoded next latent).
    success_loss: weight of the success and done classification losses.
    mask_loss: weight of the mean compositing mask (an L1 penalty): without it the mask stays
        a little open where nothing moves, and a static view is blurred instead of copied.
    """

    type = "latent_conv"
    channels: tuple[int, ...] = (32, 64, 96)
    latent_channels: int = 16
    dynamics_width: int = 128
    dynamics_blocks: int = 4
    text_dim: int = 32
    max_text_len: int = 48
    latent_loss: float = 1.0
    success_loss: float = 0.1
    mask_loss: float = 0.002
