"""B MuJoCo episodes behind the batched protocol the world-model environment speaks.

`BatchedTaskEnv` steps B `RobosuiteEnv`s one after another in this process and returns
their observations stacked along a leading B axis, so one rollout driver
(`embodied.rollouts.rollout`) runs a policy in MuJoCo and in a world model alike. As in
`world_models.env.WorldModelEnv`, episodes end together: a finished episode keeps its last
observation, gets zero reward and keeps its flags set until the next `reset()`.
"""

import numpy as np

from embodied.types import TASK
from envs.robosuite_env import RobosuiteEnv, make_env


class BatchedTaskEnv:
    def __init__(self, task: str, num_envs: int, **env_kwargs):
        self.envs: list[RobosuiteEnv] = [make_env(task, **env_kwargs) for _ in range(num_envs)]
        self.num_envs = num_envs
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space

    def reset(self, seed: int | None = None, options: dict | None = None):
        """`options["seeds"]` (B seeds) and `options["tasks"]` (B instructions) pick each
        episode; by default episode i gets seed `seed + i` and its seed's instruction."""
        options = options or {}
        seeds = options.get("seeds")
        if seeds is None:
            base = 0 if seed is None else seed
            seeds = [base + i for i in range(self.num_envs)]
        tasks = options.get("tasks") or [None] * self.num_envs
        if len(seeds) != self.num_envs or len(tasks) != self.num_envs:
            raise ValueError(f"options need {self.num_envs} seeds and tasks")
        results = [
            env.reset(seed=int(s), options={"task": t} if t else None)
            for env, s, t in zip(self.envs, seeds, tasks, strict=True)
        ]
        self._obs = [obs for obs, _ in results]
        self._terminated = np.zeros(self.num_envs, dtype=bool)
        self._truncated = np.zeros(self.num_envs, dtype=bool)
        self._success = np.zeros(self.num_envs, dtype=bool)
        return _stack(self._obs), {"seeds": list(seeds)}

    def step(self, actions: np.ndarray):
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim == 2:
            actions = actions[:, None]
        if actions.ndim != 3 or actions.shape[0] != self.num_envs:
            raise ValueError(
                f"actions must be (B={self.num_envs}, A) or (B, n, A); got {actions.shape}"
            )
        reward = np.zeros(self.num_envs, dtype=np.float32)
        for b, env in enumerate(self.envs):
            for action in actions[b]:
                if self._terminated[b] or self._truncated[b]:
                    break
                self._obs[b], r, terminated, truncated, info = env.step(action)
                reward[b] += r
                self._success[b] |= info["is_success"]
                self._terminated[b], self._truncated[b] = terminated, truncated
        info = {
            "is_success": self._success.copy(),
            "steps": np.array([e.elapsed_steps for e in self.envs]),
        }
        return _stack(self._obs), reward, self._terminated.copy(), self._truncated.copy(), info

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _stack(observations: list[dict]) -> dict:
    out = {k: np.stack([o[k] for o in observations]) for k in observations[0] if k != TASK}
    out[TASK] = [o[TASK] for o in observations]
    return out
