"""The two RL objectives, as plain functions of tensors (checked by hand in the tests).

A *decision* is one predicted action chunk, of which the first n actions were executed; its
log-probability is that of those n actions under the policy's Gaussian at the sampling
temperature. Shapes: N decisions.

- GRPO (the recipe World-Gymnast and WMPO use): every episode's binary success is compared
  with the other G episodes from the same start state; the normalized difference is the
  advantage of each of its decisions. Groups whose success rate is outside
  (min_rate, max_rate) carry no signal and are dropped. Asymmetric clipping 0.2 / 0.28,
  no KL term by default.
- PPO: advantages from GAE over each episode's decisions with a learned value.
"""

import torch
from torch import Tensor


def group_advantages(
    returns: Tensor, groups: Tensor, min_rate: float = 0.0, max_rate: float = 1.0, eps: float = 1e-6
) -> tuple[Tensor, Tensor]:
    """Per-episode (advantage, keep): `returns` (E,) in [0, 1], `groups` (E,) group ids.

    advantage = (return - group mean) / (group std + eps), population std; `keep` is False
    for episodes of groups whose mean return is <= min_rate or >= max_rate.
    """
    advantages = torch.zeros_like(returns)
    keep = torch.zeros_like(returns, dtype=torch.bool)
    for g in torch.unique(groups):
        members = groups == g
        r = returns[members]
        mean, std = r.mean(), r.std(unbiased=False)
        advantages[members] = (r - mean) / (std + eps)
        keep[members] = bool(min_rate < mean.item() < max_rate)
    return advantages, keep


def clipped_surrogate(
    log_prob: Tensor,
    old_log_prob: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
) -> tuple[Tensor, dict]:
    """PPO's clipped objective with asymmetric clipping, averaged over kept decisions.

    loss = -mean(min(r A, clip(r, 1 - clip_low, 1 + clip_high) A)), r = exp(log_prob - old).
    """
    ratio = torch.exp(log_prob - old_log_prob)
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    per = -torch.minimum(ratio * advantages, clipped * advantages)
    weight = mask.to(per.dtype)
    count = weight.sum().clamp_min(1.0)
    loss = (per * weight).sum() / count
    with torch.no_grad():
        clip_frac = (((ratio - clipped).abs() > 0).to(per.dtype) * weight).sum() / count
        approx_kl = (((ratio - 1) - torch.log(ratio)) * weight).sum() / count
    return loss, {"clip_frac": clip_frac.item(), "approx_kl": approx_kl.item()}


def gae(
    rewards: Tensor, values: Tensor, alive: Tensor, gamma: float = 0.99, lam: float = 0.95
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation over decisions: (advantages, returns), both (T, B).

    `rewards`, `values` (T, B); `alive` (T, B) is True where the episode took decision t.
    An episode ends at its last live decision with no bootstrap: success and the horizon are
    part of the task, as in robosuite.
    """
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    alive = alive.to(rewards.dtype)
    for t in reversed(range(T)):
        next_alive = alive[t + 1] if t + 1 < T else torch.zeros_like(alive[t])
        next_value = values[t + 1] * next_alive if t + 1 < T else torch.zeros_like(values[t])
        delta = rewards[t] + gamma * next_value - values[t]
        running = (delta + gamma * lam * next_alive * running) * alive[t]
        advantages[t] = running
    return advantages, advantages + values


def gaussian_kl(mean: Tensor, log_std: Tensor, ref_mean: Tensor, ref_log_std: Tensor) -> Tensor:
    """KL(policy || reference) of diagonal Gaussians, summed over the last two axes: (N,)."""
    var, ref_var = (2 * log_std).exp(), (2 * ref_log_std).exp()
    kl = ref_log_std - log_std + (var + (mean - ref_mean) ** 2) / (2 * ref_var) - 0.5
    return kl.flatten(1).sum(1)
