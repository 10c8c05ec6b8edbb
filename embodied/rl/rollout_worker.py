"""RL's rollout workers: each a copy of the world model and of the policy, imagining
batches of episodes from real start frames with the policy's current weights.

`RolloutWorker` runs in the learner's process (tests, `--ray.num_workers=0`) or as a
long-lived Ray actor (`Workers`, from the runtime's one actor pool). Rollouts are a function
of (weights, seed): a restarted actor that repeats a task returns the same episodes, which
keeps runs reproducible through worker failures.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from embodied.types import STATE


@dataclass
class Models:
    """What the workers imagine with; it changes at refreshes and goes with every call, so
    an actor restarted from its spec imagines as the others do.

    Attributes:
        world_model: the world model's checkpoint folder.
        reward_model: the reward model's (empty: the world model's own success head).
        start_roots: datasets of the policy's own real episodes to start from as well.
        imagined_threshold: the threshold imagined episodes are judged at, when matched to
            the policy's real success rate (`embodied.rl.calibration`); -1: the reward
            model's own, chosen on real frames.
    """

    world_model: str
    reward_model: str = ""
    start_roots: tuple[str, ...] = ()
    imagined_threshold: float = -1.0


@dataclass
class WorkerSpec:
    """What a worker needs to build itself (plain data, so it travels to Ray actors).

    Attributes:
        policy_path, world_model_path: checkpoint folders.
        dataset: `DatasetConfig` of the start frames.
        starts: start states per batch; each is repeated `group_size` times.
        group_size: G, episodes per start state.
        horizon: env steps before an imagined episode is truncated.
        n_action_steps: actions of each chunk executed before re-planning (0: the policy's).
        temperature: sampling temperature (scales the policy's standard deviation).
        success_threshold: success probability at which an imagined episode succeeds (the
            world model's own head; a reward model brings its own threshold).
        reward_model_path: the reward model judging imagined episodes (empty: the world
            model's success head).
        keyframe_every: also start from every n-th frame (before success) of the real
            episodes, the dataset's and the policy's own (0: episode starts only).
    """

    policy_path: str
    world_model_path: str
    dataset: Any
    starts: int
    group_size: int
    horizon: int
    n_action_steps: int
    temperature: float
    success_threshold: float = 0.5
    reward_model_path: str = ""
    keyframe_every: int = 0


class RolloutWorker:
    def __init__(self, spec: WorkerSpec):
        from embodied.data.dataset import CachedDataset
        from embodied.policy_io import load_policy
        from world_models.env import StartBank, WorldModelEnv
        from world_models.registry import load_world_model
        from world_models.reward_model import load_reward_model

        self.spec = spec
        self.policy, self.pre, self.post = load_policy(spec.policy_path, policy_type="embodied_vla")
        self.policy.eval()
        model = load_world_model(spec.world_model_path)
        dataset = CachedDataset.open(spec.dataset)
        bank = StartBank.from_dataset(dataset, model.config, keyframe_every=spec.keyframe_every)
        self.data_starts, self.start_roots = bank, ()
        reward = load_reward_model(spec.reward_model_path) if spec.reward_model_path else None
        self.models = Models(str(spec.world_model_path), str(spec.reward_model_path))
        self.env = WorldModelEnv(
            model,
            bank,
            num_envs=spec.starts * spec.group_size,
            horizon=spec.horizon,
            success_threshold=spec.success_threshold,
            reward_model=reward,
        )
        self.image_keys = sorted(self.policy.config.image_features)

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        import torch

        # Ray hands the arrays over read-only; torch.tensor copies them
        self.policy.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})

    def use(self, models: Models) -> None:
        """Imagine with these models and starts from now on (after a refresh)."""
        from world_models.registry import load_world_model
        from world_models.reward_model import load_reward_model

        if models.world_model != self.models.world_model:
            self.env.model = load_world_model(models.world_model).eval()
        if models.reward_model != self.models.reward_model:
            self.env.reward_model = load_reward_model(models.reward_model)
        if self.env.reward_model is not None:
            own = self.env.reward_model.config.threshold
            matched = models.imagined_threshold
            self.env.reward_threshold = matched if matched >= 0 else own
        self.use_starts(tuple(models.start_roots))
        self.models = models

    def use_starts(self, roots: tuple[str, ...]) -> None:
        """Start from the data's frames and from those of these datasets of the policy's
        own real episodes (the refreshes' recordings) from now on."""
        from embodied.data.dataset import CachedDataset
        from embodied.data.source import DatasetConfig
        from world_models.env import StartBank

        if tuple(roots) == self.start_roots:
            return
        config, every = self.env.model.config, self.spec.keyframe_every
        banks = [StartBank.from_dataset(CachedDataset.open(DatasetConfig(root=r)), config,
                                        keyframe_every=every) for r in roots]  # fmt: skip
        self.env.starts = StartBank.concatenate([self.data_starts, *banks])
        self.start_roots = tuple(roots)

    def sample(
        self, weights: dict[str, np.ndarray], seed: int, models: Models | None = None
    ) -> dict[str, np.ndarray]:
        """Imagine one batch of episodes with these weights (and `models`, the ones in use
        when None). Returns per decision t and
        episode b: `obs/<key>` (T, B, ...), `actions` (T, B, H, A) normalized chunks,
        `log_prob` (T, B), `reward` (T, B), `alive` (T, B), and per episode `start` (B,),
        `group` (B,), `success` (B,), `steps` (B,)."""
        import torch

        from embodied.acting import ChunkSampler
        from embodied.imagination import Observations, sample_groups

        spec = self.spec
        self.set_weights(weights)
        self.use(models or self.models)
        n = spec.n_action_steps or self.policy.config.n_action_steps
        generator = torch.Generator().manual_seed(seed)
        actor = ChunkSampler(self.policy, self.pre, self.post, n, spec.temperature, generator)
        seen = Observations([*self.image_keys, STATE])
        result, start = sample_groups(self.env, actor, spec.starts, spec.group_size, seed, [seen])
        return {
            **{f"obs/{k}": v for k, v in seen.stacked().items()},
            "actions": result.extras["chunk"],
            "log_prob": result.extras["log_prob"],
            "alive": result.alive,
            "reward": result.rewards,
            "task": np.array(result.instructions),
            "start": start,
            "group": np.repeat(np.arange(spec.starts), spec.group_size),
            "success": result.returns > 0,
            "steps": self.env.steps.copy(),
        }


class Workers:
    """The rollout workers: Ray actors, or one worker in this process."""

    def __init__(self, spec: WorkerSpec, ray: Any):
        from embodied.ray_utils import actors

        self.count = max(1, ray.num_workers)
        self.local = RolloutWorker(spec) if ray.num_workers <= 0 else None
        self.actors = [] if self.local else actors(RolloutWorker, ray, spec)

    def sample(self, weights: dict[str, np.ndarray], seeds: list[int], models: Models) -> list:
        """One batch per worker, imagined with `models`."""
        if self.local is not None:
            return [self.local.sample(weights, s, models) for s in seeds]
        import ray

        ref = ray.put(weights)
        calls = [a.sample.remote(ref, s, models) for a, s in zip(self.actors, seeds, strict=True)]
        return ray.get(calls)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
