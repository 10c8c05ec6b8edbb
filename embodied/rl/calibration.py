"""Matching imagined success to real success: the threshold the reward model judges
imagined episodes with, set so that the current policy's imagined success rate equals its
success rate over the refresh's real MuJoCo episodes.

Why: the classifier is trained and thresholded on real frames, and imagined frames are
softer, so its scores on them are shifted: on the quickstart it imagined 47 % success for a
policy at 27 %, and after a refresh ~0 % for one at 30 %, which leaves GRPO no group with
mixed outcomes. GRPO uses only the ranking of episodes within each group, which the shift
keeps; correcting the rate on the policy's own real episodes restores mixed groups without
teaching anything the simulator did not show.
"""

from typing import Any

import numpy as np

from embodied.rollouts import Callback, Step


class BestScores(Callback):
    """Each episode's highest success probability while it ran."""

    def on_reset(self, obs: dict, info: dict) -> None:
        self.best = np.zeros(len(obs["task"]))

    def on_step(self, step: Step) -> None:
        self.best = np.maximum(self.best, np.where(step.alive, step.info["success_prob"], 0.0))


def threshold_for_rate(scores: np.ndarray, rate: float) -> float:
    """The threshold above which a `rate` share of `scores` lie (midway between the k-th and
    (k+1)-th highest, k = round(rate * n)), inside (0, 1)."""
    ranked = np.sort(np.asarray(scores, float))[::-1]
    k = int(round(rate * len(ranked)))
    if k <= 0:
        t = ranked[0] + 1e-6
    elif k >= len(ranked):
        t = ranked[-1] - 1e-6
    else:
        t = (ranked[k - 1] + ranked[k]) / 2
    return float(np.clip(t, 1e-6, 1 - 1e-6))


def match_imagined_rate(
    learner: Any, config: Any, models: Any, rate: float, seed: int, n_action_steps: int,
    episodes: int = 32,
) -> float:  # fmt: skip
    """Imagine the learner's policy from `episodes` start frames with `models`; the
    threshold at which a `rate` share of them succeed."""
    import torch

    from embodied.acting import ChunkSampler
    from embodied.data.dataset import CachedDataset
    from embodied.imagination import sample_groups
    from world_models.env import StartBank, WorldModelEnv
    from world_models.registry import load_world_model
    from world_models.reward_model import load_reward_model

    world, reward = load_world_model(models.world_model), load_reward_model(models.reward_model)
    bank = StartBank.from_dataset(CachedDataset.open(config.dataset), world.config)
    env = WorldModelEnv(
        world, bank, episodes, horizon=config.horizon, reward_model=reward, reward_threshold=2.0
    )  # nothing ends early: scored to the end
    actor = ChunkSampler(learner.policy, learner.pre, learner.post, n_action_steps,
                         config.algo.temperature, torch.Generator().manual_seed(seed))  # fmt: skip
    scores = BestScores()
    sample_groups(env, actor, episodes, 1, seed, [scores])
    return threshold_for_rate(scores.best, rate)
