"""The gym env lerobot-eval steps: one of our tasks with lerobot-eval's observation layout."""

import gymnasium as gym
import numpy as np

from embodied.types import STATE, image_key
from envs.robosuite_env import ACTION_DIM, STATE_DIM, EnvConfig, RobosuiteEnv
from envs.tasks import TASKS, check_instruction, get_task

GYM_NAMESPACE = "embodied"


class LeRobotTaskEnv(gym.Env):
    """A `RobosuiteEnv` whose observations are ``{"pixels": {camera: frame}, "agent_pos":
    state}``, with the attributes lerobot-eval reads: `task_description` (this episode's
    instruction), `task`, `_max_episode_steps`, and ``info["is_success"]``. An episode
    terminates at the first success, as `embodied eval` counts it."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        task: str = "lift",
        cameras=("agentview", "wrist"),
        image_size: int = 64,
        instruction: str = "",
        horizon: int | None = None,
        render_mode: str = "rgb_array",
    ):
        spec = get_task(task)
        if instruction:
            check_instruction(spec, instruction)
        self.env = RobosuiteEnv(EnvConfig(task=task, cameras=tuple(cameras),
                                          image_size=image_size, horizon=horizon))  # fmt: skip
        self.cameras, self.instruction, self.render_mode = list(cameras), instruction, render_mode
        self.task = task
        self._max_episode_steps = self.env.horizon
        frame = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict({
            "pixels": gym.spaces.Dict({c: frame for c in self.cameras}),
            "agent_pos": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
        })  # fmt: skip
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self._obs: dict = {}

    @property
    def task_description(self) -> str:
        return self.env.instruction

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = {"task": self.instruction} if self.instruction else None
        self._obs, info = self.env.reset(seed=seed, options=options)
        return self._observation(), info

    def step(self, action):
        self._obs, reward, terminated, truncated, info = self.env.step(np.asarray(action))
        return self._observation(), reward, terminated, truncated, info

    def render(self) -> np.ndarray:
        return self._obs[image_key(self.cameras[0])]

    def close(self) -> None:
        self.env.close()

    def _observation(self) -> dict:
        pixels = {c: self._obs[image_key(c)] for c in self.cameras}
        return {"pixels": pixels, "agent_pos": self._obs[STATE]}


def register_tasks(register) -> None:
    """Register `embodied/<task>-v0` for every task, unwrapped (no order enforcing or time
    limit: the env truncates itself), so lerobot-eval sees `task_description`."""
    for name in TASKS:
        gym_id = f"{GYM_NAMESPACE}/{name}-v0"
        if gym_id not in gym.registry:
            register(id=gym_id, entry_point=LeRobotTaskEnv, kwargs={"task": name},
                     order_enforce=False, disable_env_checker=True)  # fmt: skip
