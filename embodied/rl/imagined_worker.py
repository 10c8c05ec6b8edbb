"""RL in the world model: a worker imagining groups of episodes from real start frames
(the data's, and the policy's own real episodes recorded by refreshes), judged by the
reward model."""

import numpy as np

from embodied.rl.rollout_worker import Models, PolicyWorker, WorkerSpec


class ImaginedWorker(PolicyWorker):
    def __init__(self, spec: WorkerSpec, device: str = "cpu"):
        from embodied.data.dataset import CachedDataset
        from world_models.env import StartBank, WorldModelEnv
        from world_models.registry import load_world_model
        from world_models.reward_model import load_reward_model

        super().__init__(spec, device)
        model = load_world_model(spec.world_model_path, device)
        dataset = CachedDataset.open(spec.dataset)
        bank = StartBank.from_dataset(dataset, model.config, keyframe_every=spec.keyframe_every)
        self.data_starts, self.start_roots = bank, ()
        path = spec.reward_model_path
        reward = load_reward_model(path, device) if path else None
        self.models = Models(str(spec.world_model_path), str(spec.reward_model_path))
        self.env = WorldModelEnv(
            model,
            bank,
            num_envs=spec.starts * spec.group_size,
            horizon=spec.horizon,
            success_threshold=spec.success_threshold,
            reward_model=reward,
            device=device,
        )

    def use(self, models: Models) -> None:
        """Imagine with these models and starts from now on (after a refresh)."""
        from world_models.registry import load_world_model
        from world_models.reward_model import load_reward_model

        if models.world_model != self.models.world_model:
            self.env.model = load_world_model(models.world_model, self.device).eval()
        if models.reward_model != self.models.reward_model:
            self.env.reward_model = load_reward_model(models.reward_model, self.device)
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

    def sample(self, weights: dict[str, np.ndarray], seed: int,
               models: Models | None = None) -> dict[str, np.ndarray]:  # fmt: skip
        """Imagine one batch of episodes with these weights (and `models`, the ones in use
        when None): `spec.starts` random start frames, each `group_size` times."""
        from embodied.imagination import sample_groups

        self.set_weights(weights)
        self.use(models or self.models)
        seen = self.observed()
        spec = self.spec
        result, start = sample_groups(self.env, self.sampler(seed), spec.starts,
                                      spec.group_size, seed, [seen])  # fmt: skip
        return self.batch(result, seen, start, result.returns > 0, self.env.steps.copy())
