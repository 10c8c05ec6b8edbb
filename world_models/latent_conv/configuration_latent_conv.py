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
    stochastic_vars: categorical variables drawn at every dynamics step (0: deterministic
        dynamics). With them the model is a conditional VAE over its next step, as
        DreamerV3's RSSM: training draws them from a posterior that sees the true next
        latent, imagination from a prior that sees only the history, state, action and
        instruction. A deterministic model trained by squared error predicts the mean of
        what may happen (a grasp half closed on the cube); a stochastic one commits to one
        outcome per draw, at the frequency the data shows after those actions.
    stochastic_classes: classes of each of those variables.
    kl_loss: weight of the KL between posterior and prior (DreamerV3: 0.5 on the prior's
        term, 0.1 on the posterior's; `StepNoise` keeps that ratio).
    free_nats: KL below this many nats per step is not penalized (DreamerV3's free bits),
        so the variables carry what the actions do not decide.
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
    stochastic_vars: int = 0
    stochastic_classes: int = 8
    kl_loss: float = 0.5
    free_nats: float = 1.0
