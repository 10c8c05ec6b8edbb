"""Scripted experts for the pick-and-place family: Lift, Stack, PickPlaceCan, and the
instruction-dependent two-cube scene."""

from collections.abc import Iterator

import numpy as np

from envs.experts.base import CLOSE, OPEN, ScriptedExpert, grasp_yaw

UP = np.array([0.0, 0.0, 1.0])


class PickPlaceExpert(ScriptedExpert):
    """Shared moves: hover above an object, descend, close, lift; carry, lower, release."""

    def finger_yaw_now(self) -> float:
        finger = self.eef_rotation()[:, 1]
        return float(np.arctan2(finger[1], finger[0]))

    def pick(
        self,
        pos_key: str,
        quat_key: str | None,
        avoid_key: str | None = None,
        grasp_dz: float = 0.0,
        lift: float = 0.12,
        attempts: int = 3,
    ) -> Iterator[np.ndarray]:
        """Grasp the object at `pos_key` and lift it, trying again if it was not picked up.

        `quat_key=None` marks a round object (the wrist is kept as it is). For a box, of the
        two finger directions that fit its faces, the one pointing away from the object at
        `avoid_key` is taken, so an open finger does not land on a neighbour. A near miss
        (`ExpertConfig.near_miss`) grasps `miss_by` off the object once and does not retry.
        """
        target = lambda: self.obs(pos_key) + self.miss_by  # noqa: E731
        obj = lambda: self.obs(pos_key)  # noqa: E731
        for _ in range(1 if self.config.near_miss else attempts):
            yaw = self._grasp_yaw(obj(), quat_key, avoid_key)
            aligned = lambda yaw=yaw: yaw  # noqa: E731
            rest_z = obj()[2]
            yield from self.move(lambda: target() + 0.08 * UP, OPEN, tol=0.02, finger_yaw=aligned)
            yield from self.move(lambda: target() + 0.04 * UP, OPEN, tol=0.01, finger_yaw=aligned)
            yield from self.move(
                lambda: target() + grasp_dz * UP, OPEN, tol=0.006, max_steps=40,
                finger_yaw=aligned,
            )  # fmt: skip
            yield from self.hold(CLOSE, 10)
            start = self.eef()
            yield from self.move(lambda start=start: start + lift * UP, CLOSE, tol=0.02)
            if obj()[2] > rest_z + lift / 2:
                return
            yield from self.hold(OPEN, 5)  # missed: let go and try again

    def _grasp_yaw(self, obj: np.ndarray, quat_key: str | None, avoid_key: str | None) -> float:
        now = self.finger_yaw_now()
        if quat_key is None:
            return now
        yaw = grasp_yaw(self.obs(quat_key), now, np.pi / 2)
        if avoid_key is None:
            return yaw
        away = self.obs(avoid_key)[:2] - obj[:2]
        along = abs(np.cos(np.arctan2(away[1], away[0]) - yaw))  # 1: fingers point at it
        return (
            yaw
            if along < np.cos(np.pi / 4)
            else grasp_yaw(self.obs(quat_key), yaw + np.pi / 2, np.pi / 2)
        )

    def place(self, target: np.ndarray, carry_height: float) -> Iterator[np.ndarray]:
        """Carry to above `target` at `carry_height`, lower to `target`, release, back off."""
        above = np.array([target[0], target[1], carry_height])
        yield from self.move(lambda: np.array([*self.eef()[:2], carry_height]), CLOSE, tol=0.02)
        yield from self.move(lambda: above, CLOSE, tol=0.015)
        yield from self.move(lambda: target, CLOSE, tol=0.008)
        yield from self.hold(OPEN, 8)
        yield from self.move(lambda: target + 0.1 * UP, OPEN, tol=0.02)


class LiftExpert(PickPlaceExpert):
    def script(self) -> Iterator[np.ndarray]:
        yield from self.pick("cube_pos", "cube_quat", lift=0.15)


class StackExpert(PickPlaceExpert):
    def script(self) -> Iterator[np.ndarray]:
        yield from self.pick("cubeA_pos", "cubeA_quat", avoid_key="cubeB_pos", lift=0.1)
        red_half = self.env.sim_env.cubeA.size[2]
        green_half = self.env.sim_env.cubeB.size[2]
        green = self.obs("cubeB_pos")
        target = green + (green_half + red_half + 0.005) * UP
        yield from self.place(target, carry_height=green[2] + 0.12)


class CubesExpert(PickPlaceExpert):
    """Does what the episode's instruction says in the two-cube scene."""

    def script(self) -> Iterator[np.ndarray]:
        instruction = self.env.instruction
        if instruction == "lift the red cube":
            yield from self.pick("cubeA_pos", "cubeA_quat", avoid_key="cubeB_pos", lift=0.15)
        elif instruction == "lift the green cube":
            yield from self.pick("cubeB_pos", "cubeB_quat", avoid_key="cubeA_pos", lift=0.15)
        else:
            raise KeyError(f"no expert script for the instruction {instruction!r}")


class PickPlaceCanExpert(PickPlaceExpert):
    def script(self) -> Iterator[np.ndarray]:
        sim_env = self.env.sim_env
        yield from self.pick("Can_pos", None, grasp_dz=0.01, lift=0.15)
        # The can's quadrant is the far corner of the bin; its centre is at the edge of the
        # arm's reach, so aim for the quadrant's corner nearest the robot instead.
        bin_id = sim_env.object_to_id["can"]
        low = sim_env.bin2_pos[:2] - np.where(
            [bin_id in (0, 2), bin_id < 2], sim_env.bin_size[:2] / 2, 0
        )
        target = np.array([low[0] + 0.06, low[1] + 0.07, sim_env.bin2_pos[2] + 0.09])
        yield from self.place(target, carry_height=sim_env.bin2_pos[2] + 0.25)
