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
from embodied.types import IMAGE_PREFIX

# start-state seeds are drawn from here up, away from evaluation's (100_000 + i) and
# collect's (seed + 100_000 k + i) seeds, so RL never practises on an evaluated start
FIRST_START_SEED = 10_000_000


class MujocoWorker(PolicyWorker):
    def __init__(self, spec: WorkerSpec):
        from envs.batched import BatchedTaskEnv
        from envs.tasks import parse_tasks

        super().__init__(spec)
        self.specs = parse_tasks(spec.task)
        slots = [self.specs[k % len(self.specs)] for k in range(spec.starts)]
        self.slots = [s for s in slots for _ in range(spec.group_size)]
        cameras = tuple(k.removeprefix(IMAGE_PREFIX) for k in self.image_keys)
        size = self.policy.config.image_features[self.image_keys[0]].shape[-1]
        self.env = BatchedTaskEnv([s.name for s in self.slots], len(self.slots),
                                  cameras=cameras, image_size=size)  # fmt: skip

    def starts(self, seed: int) -> tuple[list[int], list[str]]:
        """The batch's episodes' MuJoCo seeds and instructions: one random start (seed and
        instruction of its task) per group, repeated `group_size` times."""
        rng = np.random.default_rng(seed)
        seeds, texts = [], []
        for spec in self.specs_of_starts():
            seeds.append(int(rng.integers(FIRST_START_SEED, 2**31)))
            texts.append(spec.instructions[int(rng.integers(len(spec.instructions)))])
        g = self.spec.group_size
        return [s for s in seeds for _ in range(g)], [t for t in texts for _ in range(g)]

    def specs_of_starts(self) -> list:
        return self.slots[:: self.spec.group_size]

    def sample(self, weights: dict[str, np.ndarray], seed: int,
               models: Models | None = None) -> dict[str, np.ndarray]:  # fmt: skip
        """Run one batch of groups in MuJoCo with these weights (`models` is unused: the
        simulator is the environment and the judge). An episode's reward is 1 at the
        decision during which it first succeeded (it ends there), as in imagination."""
        from embodied.rollouts import rollout

        self.set_weights(weights)
        seeds, texts = self.starts(seed)
        seen = self.observed()
        result = rollout(self.env, self.sampler(seed), seed=seed,
                         options={"seeds": seeds, "tasks": texts}, callbacks=[seen])  # fmt: skip
        success = np.asarray(result.info["is_success"], dtype=bool)
        result.rewards = (result.ended & result.alive & success[None]).astype(np.float32)
        start = np.repeat(np.arange(self.spec.starts), self.spec.group_size)
        return self.batch(result, seen, start, success, np.asarray(result.info["steps"]))
