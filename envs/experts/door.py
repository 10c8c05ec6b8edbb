"""Scripted expert for robosuite's Door, whose spring latch must be turned before it opens.

The lever sticks out of the door panel towards the robot and turns about the panel's normal.
The expert grips the lever from above (fingers closing across it, along the normal), presses
it down to free the latch, and pulls along the normal while holding it down.
"""

from collections.abc import Iterator

import numpy as np

from envs.experts.base import CLOSE, OPEN, ScriptedExpert

UP = np.array([0.0, 0.0, 1.0])


class DoorExpert(ScriptedExpert):
    press_depth = 0.2  # how far the lever is pushed down to turn the latch (~1.3 rad) free
    grip_offset = 0.02  # metres outwards from the lever centre where the hand aims

    def outward_normal(self) -> np.ndarray:
        """Unit vector from the door panel towards the robot (the door's local -y)."""
        sim_env = self.env.sim_env
        rot = sim_env.sim.data.body_xmat[sim_env.object_body_ids["door"]].reshape(3, 3)
        return -rot[:, 1]

    def handle(self) -> np.ndarray:
        return np.asarray(self.env.sim_env._handle_xpos, dtype=np.float64)

    def script(self) -> Iterator[np.ndarray]:
        normal = self.outward_normal()
        yaw = float(np.arctan2(normal[1], normal[0]))
        current = self.eef_rotation()[:, 1]
        if np.dot([np.cos(yaw), np.sin(yaw)], current[:2]) < 0:  # turn the short way round
            yaw += np.pi
        aligned = lambda: yaw  # noqa: E731
        # The hand is wide along the finger axis and meets the panel before the fingers are
        # centred on the lever: aim a little outwards and let the closing fingers centre it.
        grip_at = lambda: self.handle() + self.grip_offset * self.outward_normal()  # noqa: E731
        yield from self.move(lambda: grip_at() + 0.08 * UP, OPEN, tol=0.015, finger_yaw=aligned)
        yield from self.move(grip_at, OPEN, tol=0.008, max_steps=30, finger_yaw=aligned)
        self.precise = True  # from here on the lever is in hand: noise would shake it loose
        yield from self.hold(CLOSE, 10)
        press = self.eef() - self.press_depth * UP
        yield from self.move(lambda: press, CLOSE, tol=0.01, max_steps=25)
        for _ in range(150):
            target = self.eef() + 0.04 * self.outward_normal()
            target[2] = press[2]
            yield self.step_towards(target, CLOSE)
