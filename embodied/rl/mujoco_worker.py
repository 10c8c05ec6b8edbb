"""RL directly in MuJoCo: the equal-budget baseline of RL in the world model.

The worker runs the same groups the imagined worker does (`starts` start states, each
`group_size` times with chunks sampled at the temperature), in `envs.batched.BatchedTaskEnv`
lockstep, judged by the simulator. A start state is a MuJoCo seed: G episodes with one seed
start from the same state, as G imagined episodes start from the same frame. Every episode
here is a real one and is counted against finetune's `real_episodes` budget, which is how
WMPO compares GRPO on real rollouts with RL in its world model.
"""

import numpy as np

from embodied.rl.rollout_worker import Models, PolicyWorker, WorkerSpec

# start-state seeds are drawn from here up, away from evaluation's (100_000 + i) and
# collect's (seed + 100_000 k + i) seeds, so RL never practises on an evaluated start
FIRST_START_SEED = 10_000_000


class MujocoWorker(PolicyWorker):
    def __init__(self, spec: WorkerSpec, device: str = "cpu"):
        from envs.tasks import parse_tasks

        super().__init__(spec, device)
        self.tasks = parse_tasks(spec.task)
        self.envs: dict[tuple[str, ...], object] = {}  # by the episodes' tasks

    def starts(self, seed: int) -> tuple[list, list[int], list[str]]:
        """The batch's start states: per group a task (start k of the batch gets task
        k + r mod the number of tasks, r drawn per batch, so every task gets its share),
        a MuJoCo seed and an instruction of that task; each repeated `group_size` times."""
        rng = np.random.default_rng(seed)
        offset, n = int(rng.integers(len(self.tasks))), len(self.tasks)
        specs = [self.tasks[(k + offset) % n] for k in range(self.spec.starts)]
        seeds = [int(rng.integers(FIRST_START_SEED, 2**31)) for _ in specs]
        texts = [s.instructions[int(rng.integers(len(s.instructions)))] for s in specs]
        g = self.spec.group_size
        specs, seeds, texts = ([x for x in xs for _ in range(g)] for xs in (specs, seeds, texts))
        return specs, seeds, texts

    def _env(self, specs: list) -> object:
        """The batched env of these episodes' tasks (built once, observing as the policy
        was trained: `embodied.obs_spec`)."""
        from embodied.obs_spec import env_settings
        from envs.batched import BatchedTaskEnv

        names = tuple(s.name for s in specs)
        if names not in self.envs:
            settings = env_settings(self.policy.config)
            self.envs[names] = BatchedTaskEnv(list(names), len(names), **settings)
        return self.envs[names]

    def sample(self, weights: dict[str, np.ndarray], seed: int,
               models: Models | None = None) -> dict[str, np.ndarray]:  # fmt: skip
        """Run one batch of groups in MuJoCo with these weights (`models` is unused: the
        simulator is the environment and the judge). An episode's reward is 1 at the
        decision during which it first succeeded (it ends there), as in imagination."""
        from embodied.rollouts import rollout

        self.set_weights(weights)
        specs, seeds, texts = self.starts(seed)
        seen = self.observed()
        result = rollout(self._env(specs), self.sampler(seed), seed=seed,
                         options={"seeds": seeds, "tasks": texts}, callbacks=[seen])  # fmt: skip
        success = np.asarray(result.info["is_success"], dtype=bool)
        result.rewards = (result.ended & result.alive & success[None]).astype(np.float32)
        start = np.repeat(np.arange(self.spec.starts), self.spec.group_size)
        return self.batch(result, seen, start, success, np.asarray(result.info["steps"]))
