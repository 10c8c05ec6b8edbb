"""B MuJoCo episodes behind the batched protocol the world-model environment speaks.

`BatchedTaskEnv` steps B `RobosuiteEnv`s one after another in this process and returns
their observations stacked along a leading B axis, so one rollout driver
(`embodied.rollouts.rollout`) runs a policy in MuJoCo and in a world model alike. As in
`world_models.env.WorldModelEnv`, episodes end together: a finished episode keeps its last
observation, gets zero reward and keeps its flags set until the next `reset()`.

An episode terminates once its task has been solved for `success_hold` steps after the
first success (0: at the first success, as evaluation wants; recordings hold a few more,
so the data shows the finished state), or is truncated at the task's horizon.
"""

from collections.abc import Sequence

import numpy as np

from embodied.types import TASK
from envs.robosuite_env import RobosuiteEnv, make_env


class BatchedTaskEnv:
    """`task` names every episode's task, or is a list of B task names, one per episode
    (their observations must share keys and shapes, as our tasks' do).

    A step of chunks (B, n, A) returns the observation after the last action; cameras render
    only for it (`RobosuiteEnv.step(look=...)`), unless `look_every_step`. An episode that
    ends inside a chunk is rendered when it ends.
    """

    def __init__(self, task: str | Sequence[str], num_envs: int, success_hold: int = 0,
                 look_every_step: bool = False, **env_kwargs):  # fmt: skip
        tasks = [task] * num_envs if isinstance(task, str) else list(task)
        if len(tasks) != num_envs:
            raise ValueError(f"BatchedTaskEnv: {len(tasks)} tasks for {num_envs} episodes")
        self.tasks = tasks
        self.envs: list[RobosuiteEnv] = [make_env(t, **env_kwargs) for t in tasks]
        self.num_envs, self.success_hold = num_envs, success_hold
        self.look_every_step = look_every_step
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space

    def reset(self, seed: int | None = None, options: dict | None = None):
        """`options["seeds"]` (B seeds) and `options["tasks"]` (B instructions) pick each
        episode; by default episode i gets seed `seed + i` and its seed's instruction. The
        info holds the seeds and each episode's simulator state after the reset."""
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
        n = self.num_envs
        self._terminated, self._truncated = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        self._success, self._now = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        self._held = np.zeros(n, dtype=np.int64)
        self._achieved: list[set[str]] = [set() for _ in range(n)]
        info = {"seeds": list(seeds), "start_states": [env.get_state() for env in self.envs]}
        return _stack(self._obs), info

    def step(self, actions: np.ndarray):
        """Info: `is_success` (the episode has succeeded at some step), `success_now` (its
        last step is a success), `achieved` (every goal reached so far), `steps`."""
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim == 2:
            actions = actions[:, None]
        if actions.ndim != 3 or actions.shape[0] != self.num_envs:
            raise ValueError(
                f"actions must be (B={self.num_envs}, A) or (B, n, A); got {actions.shape}"
            )
        reward = np.zeros(self.num_envs, dtype=np.float32)
        last = actions.shape[1] - 1
        for b, env in enumerate(self.envs):
            for i, action in enumerate(actions[b]):
                if self._terminated[b] or self._truncated[b]:
                    break
                look = i == last or self.look_every_step
                reward[b] += self._step_one(b, env, action, look)
                if not look and (self._terminated[b] or self._truncated[b]):
                    self._obs[b] = env.look_now()  # ended inside the chunk
        info = {
            "is_success": self._success.copy(),
            "success_now": self._now.copy(),
            "achieved": [sorted(a) for a in self._achieved],
            "steps": np.array([e.elapsed_steps for e in self.envs]),
        }
        return _stack(self._obs), reward, self._terminated.copy(), self._truncated.copy(), info

    def _step_one(self, b: int, env: RobosuiteEnv, action: np.ndarray, look: bool) -> float:
        self._obs[b], r, success, truncated, info = env.step(action, look=look)
        self._achieved[b].update(info["achieved"])
        self._now[b] = success
        self._success[b] |= success
        self._held[b] = self._held[b] + 1 if success else 0
        self._terminated[b] = self._held[b] > self.success_hold
        self._truncated[b] = truncated and not self._terminated[b]
        return r

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _stack(observations: list[dict]) -> dict:
    out = {k: np.stack([o[k] for o in observations]) for k in observations[0] if k != TASK}
    out[TASK] = [o[TASK] for o in observations]
    return out
