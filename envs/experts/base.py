"""Closed-loop scripted experts built from waypoints.

An expert is a generator script (`script()`) that yields one action per control step and
re-reads the privileged simulator state (object poses) every step, so it recovers from its
own action noise and from injected perturbations. Movements are proportional controllers on
end-effector position and orientation, written in robosuite's OSC delta-pose action units.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from envs.robosuite_env import RobosuiteEnv

POS_SCALE = 0.05  # metres per unit of OSC position action
ROT_SCALE = 0.5  # radians per unit of OSC rotation action
OPEN, CLOSE = -1.0, 1.0
PRECISE_NOISE_SCALE = 0.2  # share of the action noise kept while holding a door lever, etc.
NEAR_MISS = (0.025, 0.045)  # metres between a near miss's grasp point and the object's centre
DOWN = np.array([0.0, 0.0, -1.0])

Target = Callable[[], np.ndarray]


@dataclass(frozen=True)
class ExpertConfig:
    """How an expert varies its demonstrations.

    Attributes:
        noise_std: std of Gaussian noise added to the arm's action (action units).
        perturb_prob: chance per step of starting a perturbation: a few steps of a random push.
        perturb_steps: length of one perturbation.
        fail: sabotage the episode (let go of the object and wander off, or stall), so datasets
            hold realistic failures for a success classifier to learn from.
        near_miss: grasp once beside the object, `NEAR_MISS` away, lift, and give up: the
            failure a policy makes (experts that pick things up, in `pick`). The
            sabotaged episodes above show only failures no policy makes, so a world model
            trained on them never sees a grasp go wrong, and imagines every grasp a success.
    """

    noise_std: float = 0.0
    perturb_prob: float = 0.0
    perturb_steps: int = 5
    fail: bool = False
    near_miss: bool = False


class ScriptedExpert:
    """Base class: drives `script()` and adds noise, perturbations and sabotage."""

    gain = 10.0  # proportional gain on position error (per metre, in action units x POS_SCALE)
    rot_gain = 2.0

    def __init__(self, env: RobosuiteEnv, config: ExpertConfig, rng: np.random.Generator):
        self.env = env
        self.config = config
        self.rng = rng
        self._script = self.script()
        self._perturb_left = 0
        self._perturb = np.zeros(7)
        self._sabotage_at = int(rng.integers(15, 60)) if config.fail else None
        self.miss_by = np.zeros(3)  # where `pick` grasps, relative to the object
        if config.near_miss:
            angle, distance = rng.uniform(0, 2 * np.pi), rng.uniform(*NEAR_MISS)
            self.miss_by[:2] = distance * np.array([np.cos(angle), np.sin(angle)])
        self._drift = np.zeros(3)
        self._steps = 0
        self._last_grip = OPEN
        self.precise = False  # set by scripts during contact-rich moves: noise is damped

    # --- what subclasses write ------------------------------------------------------------

    def script(self) -> Iterator[np.ndarray]:
        raise NotImplementedError("script() -> Iterator[action (7,)]")

    # --- driving ---------------------------------------------------------------------------

    def act(self) -> np.ndarray:
        self._steps += 1
        if self._sabotage_at is not None and self._steps >= self._sabotage_at:
            action = self._sabotage_action()
        else:
            action = next(self._script, None)
            if action is None:  # script finished: hold still, keep the gripper as it is
                action = np.zeros(7)
                action[6] = self._last_grip
        self._last_grip = action[6]
        action = action.copy()
        noise_scale = PRECISE_NOISE_SCALE if self.precise else 1.0
        action[:6] += noise_scale * self.config.noise_std * self.rng.standard_normal(6)
        perturbation = self._perturbation()
        if not self.precise:
            action += perturbation
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _perturbation(self) -> np.ndarray:
        if self._perturb_left == 0 and self.rng.random() < self.config.perturb_prob:
            self._perturb_left = self.config.perturb_steps
            self._perturb = np.zeros(7)
            self._perturb[:3] = self.rng.uniform(-1, 1, 3)
        if self._perturb_left == 0:
            return np.zeros(7)
        self._perturb_left -= 1
        return self._perturb

    def _sabotage_action(self) -> np.ndarray:
        """Open the gripper and drift: the object is dropped or never reached."""
        if self._steps == self._sabotage_at:
            self._drift = self.rng.uniform(-0.6, 0.6, 3)
        action = np.zeros(7)
        action[:3] = self._drift
        action[6] = OPEN
        return action

    # --- reading the scene -----------------------------------------------------------------

    def obs(self, key: str) -> np.ndarray:
        return np.asarray(self.env.privileged[key], dtype=np.float64)

    def eef(self) -> np.ndarray:
        return self.obs("robot0_eef_pos")

    def eef_rotation(self) -> np.ndarray:
        return Rotation.from_quat(self.obs("robot0_eef_quat")).as_matrix()

    # --- motion primitives -----------------------------------------------------------------

    def rotation_action(self, finger_yaw: float | None) -> np.ndarray:
        """Turn the gripper to point straight down, fingers along `finger_yaw` (None: keep)."""
        current = self.eef_rotation()
        if finger_yaw is None:
            finger = current[:, 1].copy()
            finger[2] = 0.0
            finger /= np.linalg.norm(finger) + 1e-9
        else:
            finger = np.array([np.cos(finger_yaw), np.sin(finger_yaw), 0.0])
        target = np.column_stack([np.cross(finger, DOWN), finger, DOWN])
        delta = Rotation.from_matrix(target @ current.T).as_rotvec()
        return np.clip(self.rot_gain * delta / ROT_SCALE, -1, 1)

    def step_towards(self, target: np.ndarray, grip: float, finger_yaw: float | None = None):
        action = np.zeros(7)
        action[:3] = np.clip(self.gain * (target - self.eef()), -1, 1)
        action[3:6] = self.rotation_action(finger_yaw)
        action[6] = grip
        return action

    def move(
        self,
        target: Target,
        grip: float,
        tol: float = 0.01,
        max_steps: int = 80,
        finger_yaw: Callable[[], float | None] = lambda: None,
    ) -> Iterator[np.ndarray]:
        """Go to `target()` (re-evaluated each step) until within `tol` metres."""
        for _ in range(max_steps):
            goal = target()
            if np.linalg.norm(goal - self.eef()) < tol:
                return
            yield self.step_towards(goal, grip, finger_yaw())

    def hold(self, grip: float, steps: int) -> Iterator[np.ndarray]:
        """Stay in place for `steps` steps while the gripper opens or closes."""
        anchor = self.eef()
        for _ in range(steps):
            yield self.step_towards(anchor, grip)


def grasp_yaw(body_quat_xyzw: np.ndarray, current_finger_yaw: float, period: float) -> float:
    """The finger direction closest to the current one that lines up with the object's faces.

    A box looks the same every 90 degrees (period pi/2); picking the nearest equivalent keeps
    the wrist from spinning half a turn.
    """
    yaw = Rotation.from_quat(body_quat_xyzw).as_euler("xyz")[2]
    diff = (yaw - current_finger_yaw + period / 2) % period - period / 2
    return current_finger_yaw + diff
