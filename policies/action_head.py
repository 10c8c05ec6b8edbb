"""A Gaussian over a chunk of actions, with the exact quantities RL needs.

The policy predicts, for each of H future steps and each of A action dimensions, a mean and a
log standard deviation (diagonal Gaussian). Chosen over discretized action tokens because
sampling, log-probabilities and entropy are closed-form and exact, and a temperature simply
scales the standard deviation. Actions are in the normalized space the policy works in; the
caller clips to the robot's range *after* sampling, so log-probabilities refer to the
unclipped samples.
"""

import math

import torch
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


class ChunkGaussian:
    """Diagonal Gaussian over action chunks. Shapes: mean, log_std (B, H, A)."""

    def __init__(self, mean: Tensor, log_std: Tensor):
        if mean.shape != log_std.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and log_std {tuple(log_std.shape)} differ")
        self.mean = mean
        self.log_std = log_std

    @property
    def mode(self) -> Tensor:
        """The deterministic action chunk (the mean)."""
        return self.mean

    def _log_std(self, temperature: float) -> Tensor:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        return self.log_std + math.log(temperature)

    def sample(self, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        # drawn where the generator lives (a CPU generator seeds a policy on cuda too)
        where = generator.device if generator is not None else self.mean.device
        noise = torch.randn(self.mean.shape, generator=generator, device=where,
                            dtype=self.mean.dtype).to(self.mean.device)  # fmt: skip
        return self.mean + self._log_std(temperature).exp() * noise

    def log_prob(
        self, actions: Tensor, mask: Tensor | None = None, temperature: float = 1.0
    ) -> Tensor:
        """log p(actions) summed over the chunk: (B,). `mask` (B, H) is True for steps to count."""
        log_std = self._log_std(temperature)
        z = (actions - self.mean) / log_std.exp()
        per_dim = -0.5 * (z**2 + LOG_2PI) - log_std  # (B, H, A)
        per_step = per_dim.sum(-1)
        if mask is not None:
            per_step = per_step * mask.to(per_step.dtype)
        return per_step.sum(-1)

    def entropy(self, mask: Tensor | None = None, temperature: float = 1.0) -> Tensor:
        """Entropy of the chunk distribution, (B,)."""
        per_step = (0.5 * (1.0 + LOG_2PI) + self._log_std(temperature)).sum(-1)
        if mask is not None:
            per_step = per_step * mask.to(per_step.dtype)
        return per_step.sum(-1)
