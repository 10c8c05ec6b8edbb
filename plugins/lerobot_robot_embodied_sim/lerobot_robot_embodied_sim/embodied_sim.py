"""Our MuJoCo tasks as a LeRobot `Robot`: the hardware-free end of the real-arm path.

Observation: one float per state dimension (named as in our datasets: eef_x ... finger_r)
and one uint8 (H, W, 3) frame per camera, so `lerobot-record` builds `observation.state` and
`observation.images.<camera>` exactly as our recorded datasets hold them. Action: one float
per action dimension (dx ... gripper), the env's units in [-1, 1].

Episodes are seeded: episode k starts from `seed + k`, the seeds `embodied eval` uses, and
executes at most `episode_steps` actions (eval's horizon), so a policy's success through
`lerobot-record` compares with `embodied eval`'s episode by episode. lerobot-record tells a
robot nothing of its episodes, which it ends by the clock; with `episode_time_s` set to the
same value the scene resets at the first observation once that long has passed since the
episode's first action (so never within one of lerobot-record's episodes, and never during
its reset phase, which sends no actions). Each finished episode's seed, instruction and
success (at any step, as eval counts it) is appended to `outcomes_path`.
"""

import json
import logging
import time
from functools import cached_property
from pathlib import Path

import numpy as np
from lerobot.robots.robot import Robot

from lerobot_robot_embodied_sim.config_embodied_sim import EmbodiedSimConfig

log = logging.getLogger(__name__)


class EmbodiedSim(Robot):
    config_class = EmbodiedSimConfig
    name = "embodied_sim"

    def __init__(self, config: EmbodiedSimConfig):
        from envs.robosuite_env import check_cameras
        from envs.tasks import check_instruction, get_task

        super().__init__(config)
        self.config = config
        spec = get_task(config.task)  # an unknown task fails here, before connecting
        if config.instruction:
            check_instruction(spec, config.instruction)
        check_cameras(tuple(config.camera_names))
        self.horizon = config.episode_steps or spec.horizon
        self.cameras = {name: None for name in config.camera_names}  # LeRobot counts them
        self.env = None
        self.episode = 0
        self.steps = 0
        self.succeeded = False
        self._obs: dict | None = None
        self._first_action_at: float | None = None

    @cached_property
    def observation_features(self) -> dict:
        from envs.robosuite_env import STATE_NAMES

        size = self.config.image_size
        return {**dict.fromkeys(STATE_NAMES, float),
                **{c: (size, size, 3) for c in self.config.camera_names}}  # fmt: skip

    @cached_property
    def action_features(self) -> dict:
        from envs.robosuite_env import ACTION_NAMES

        return dict.fromkeys(ACTION_NAMES, float)

    @property
    def is_connected(self) -> bool:
        return self.env is not None

    @property
    def is_calibrated(self) -> bool:
        return True

    def calibrate(self) -> None:
        """Nothing to calibrate in simulation."""

    def configure(self) -> None:
        """Nothing to configure in simulation."""

    def connect(self, calibrate: bool = True) -> None:
        from envs.robosuite_env import make_env

        if self.env is None:
            config = self.config
            self.env = make_env(
                config.task,
                cameras=tuple(config.camera_names),
                image_size=config.image_size,
                horizon=self.horizon,
            )
            self._reset()

    def _reset(self) -> None:
        options = {"task": self.config.instruction} if self.config.instruction else None
        self._obs, info = self.env.reset(seed=self.config.seed + self.episode, options=options)
        self.steps, self.succeeded = 0, bool(info["is_success"])
        self._first_action_at = None

    def _episode_over(self) -> bool:
        if self.config.episode_time_s > 0:
            started = self._first_action_at
            return started is not None and time.monotonic() - started >= self.config.episode_time_s
        return self.steps >= self.horizon

    def get_observation(self) -> dict:
        from embodied.types import STATE, image_key
        from envs.robosuite_env import STATE_NAMES

        self._require_connection()
        if self._episode_over():  # the next episode starts here
            self._write_outcome()
            self.episode += 1
            self._reset()
        obs = {name: float(v) for name, v in zip(STATE_NAMES, self._obs[STATE], strict=True)}
        for camera in self.config.camera_names:
            obs[camera] = self._obs[image_key(camera)]
        return obs

    def send_action(self, action: dict) -> dict:
        self._require_connection()
        names = list(self.action_features)
        missing = [n for n in names if n not in action]
        if missing:
            raise ValueError(f"embodied_sim: action lacks {missing}; it takes {names}")
        values = np.array([float(action[n]) for n in names])
        if not np.isfinite(values).all():
            raise ValueError(f"embodied_sim: refusing a non-finite action {values.tolist()}")
        if self.steps >= self.horizon:  # the episode has run its length: the arm stays
            return dict.fromkeys(names, 0.0)
        if self._first_action_at is None:
            self._first_action_at = time.monotonic()
        sent = np.clip(values, -1.0, 1.0)
        self._obs, _, _, _, info = self.env.step(sent)
        self.steps += 1
        self.succeeded |= bool(info["is_success"])
        return dict(zip(names, sent.tolist(), strict=True))

    def _write_outcome(self) -> None:
        outcome = {"episode": self.episode, "seed": self.config.seed + self.episode,
                   "instruction": self.env.instruction, "success": self.succeeded,
                   "steps": self.steps}  # fmt: skip
        log.info("embodied_sim episode %d: %s", self.episode, outcome)
        if self.config.outcomes_path:
            path = Path(self.config.outcomes_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as sink:
                sink.write(json.dumps(outcome) + "\n")

    def disconnect(self) -> None:
        if self.env is not None:
            if self.steps:  # the last episode ends here
                self._write_outcome()
            self.env.close()
            self.env = None

    def _require_connection(self) -> None:
        if self.env is None:
            raise ConnectionError("embodied_sim is not connected; call connect() first")
