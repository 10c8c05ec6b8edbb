"""One expert episode as a stream of LeRobot-style frames."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from envs.experts.base import ExpertConfig, ScriptedExpert
from envs.robosuite_env import RobosuiteEnv


@dataclass
class Frame:
    """What was seen at step t, what was done, and what it led to (LeRobot's `next.*`)."""

    observation: dict
    action: np.ndarray
    reward: float
    success: bool
    done: bool
    start_state: dict | None = None  # on the first frame only: `env.get_state()` after reset


def expert_frames(
    env: RobosuiteEnv,
    expert_cls: type[ScriptedExpert],
    seed: int,
    instruction: str | None = None,
    config: ExpertConfig = ExpertConfig(),
    success_hold: int = 10,
) -> Iterator[Frame]:
    """Reset `env` with `seed` and let the expert act (see `episode_frames`)."""
    obs, _ = env.reset(seed=seed, options={"task": instruction} if instruction else None)
    expert = expert_cls(env, config, np.random.default_rng(seed))
    yield from episode_frames(env, obs, lambda _: expert.act(), success_hold)


def episode_frames(
    env: RobosuiteEnv,
    obs: dict,
    act: Callable[[dict], np.ndarray],
    success_hold: int = 10,
) -> Iterator[Frame]:
    """From a freshly reset `env` and its observation, act until success has been held for
    `success_hold` steps (so the data shows the finished state) or the horizon is reached.
    Experts record through this loop; policies record through the rollout driver."""
    held = 0
    start_state = env.get_state()
    while True:
        action = act(obs)
        next_obs, reward, _, truncated, info = env.step(action)
        held = held + 1 if info["is_success"] else 0
        done = held > success_hold or truncated
        yield Frame(obs, action, reward, info["is_success"], done, start_state)
        start_state = None
        if done:
            return
        obs = next_obs
