"""A LeRobot robot driven by a remote policy server: the arm-side loop.

    robot = make_robot_from_config(SO101FollowerConfig(...))   # any LeRobot Robot
    robot.connect()
    with PolicyClient(host, port, deadline_s=0.2) as client:
        driver = RemoteDriver(robot, client, instruction="pick up the cube", max_delta=5.0)
        driver.run(steps=600, fps=30)

Before the first action the driver checks that the robot gives every camera the checkpoint
reads, a state of the checkpoint's size, and actions of the checkpoint's size and names
(`ActionGuard`); a mismatch raises `SafetyError` naming both sides. Each tick it builds the
request from the robot's observation (cameras by name, floats in the robot's feature order
as `observation.state`), and sends a guarded action, or nothing when the guard holds.
"""

import time

import numpy as np

from embodied.deploy.safety import ActionGuard, ChunkedRemotePolicy, SafetyError
from embodied.types import IMAGE_PREFIX, STATE, TASK


class RemoteDriver:
    """Args:
    robot: a connected LeRobot `Robot`.
    client: a connected `PolicyClient`.
    instruction: the text given to the policy every tick.
    max_delta: per-tick limit on each action's change (see `ActionGuard`).
    """

    def __init__(self, robot, client, instruction: str = "", max_delta=None):
        spec = client.spec
        features = robot.observation_features
        cameras = [k for k, v in features.items() if isinstance(v, tuple)]
        self.state_names = [k for k, v in features.items() if v is float]
        self.camera_of = {key: key.removeprefix(IMAGE_PREFIX) for key in spec.cameras}
        missing = [c for c in self.camera_of.values() if c not in cameras]
        if missing:
            raise SafetyError(
                f"the checkpoint reads cameras {list(self.camera_of.values())}; "
                f"the robot has {cameras} (missing {missing})"
            )
        if len(self.state_names) != spec.state_dim:
            raise SafetyError(
                f"the checkpoint reads a {spec.state_dim}-D state; the robot gives "
                f"{len(self.state_names)} values ({self.state_names})"
            )
        self.robot, self.instruction = robot, instruction
        self.guard = ActionGuard(spec, list(robot.action_features), max_delta)
        self.policy = ChunkedRemotePolicy(client, self.guard)
        # joint-position arms name their targets as their readings: limit against those
        self.present_names = (
            self.guard.names if set(self.guard.names) <= set(self.state_names) else None
        )
        self.held = 0

    def request(self, obs: dict) -> dict:
        """A robot observation as a policy request."""
        out = {key: np.asarray(obs[camera]) for key, camera in self.camera_of.items()}
        out[STATE] = np.array([obs[n] for n in self.state_names], dtype=np.float32)
        out[TASK] = self.instruction
        return out

    def step(self) -> dict | None:
        """One tick: observe, ask, send. Returns the action sent, or None when holding."""
        obs = self.robot.get_observation()
        present = None
        if self.present_names is not None:
            present = np.array([obs[n] for n in self.present_names], dtype=float)
        action = self.policy(self.request(obs), present)
        if action is None:
            self.held += 1
            return None
        return self.robot.send_action(self.guard.as_robot_action(action))

    def run(self, steps: int, fps: float | None = None) -> int:
        """`steps` ticks, at `fps` when given (as fast as possible otherwise); returns how
        many ticks held the arm."""
        self.policy.reset()
        held_before = self.held
        for _ in range(steps):
            start = time.perf_counter()
            self.step()
            if fps:
                time.sleep(max(0.0, 1.0 / fps - (time.perf_counter() - start)))
        return self.held - held_before
