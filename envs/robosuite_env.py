"""Gymnasium environments over robosuite, speaking LeRobot's key names.

Observation (a dict):
    ``observation.images.<camera>``: uint8 (H, W, 3), upright (OpenCV convention).
    ``observation.state``: float32 (8,) = end-effector position in the world frame (3, metres),
        end-effector orientation as the axis-angle vector (3, radians) of its rotation from
        the gripper-pointing-down home pose (continuous, unlike world-frame axis-angle),
        gripper finger joint positions (2). LIBERO's layout, with a continuous orientation.
    ``task``: the instruction string.
Action: float32 (7,) in [-1, 1]: OSC delta position (3, x0.05 m), delta axis-angle rotation
    (3, x0.5 rad), gripper (-1 open, +1 close). robosuite's BASIC Panda controller.
Info: ``is_success`` (the task's own judge, per instruction).
"""

import contextlib
import logging
import string
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from scipy.spatial.transform import Rotation

from embodied.types import STATE, TASK, UserInputError, image_key
from envs.rendering import use_headless_gl
from envs.tasks import TaskSpec, check_instruction, get_task, sample_instruction

CAMERAS = {  # our names -> robosuite's
    "agentview": "agentview",
    "wrist": "robot0_eye_in_hand",
    "frontview": "frontview",
    "birdview": "birdview",
    "sideview": "sideview",
}
# robosuite's own names for the cameras of our tasks' scenes (a Panda at a table), as
# robomimic and MimicGen datasets name them; a policy trained on those reads them by name
ROBOSUITE_CAMERAS = ("agentview", "robot0_eye_in_hand", "frontview", "birdview", "sideview",
                     "robot0_robotview")  # fmt: skip
STATE_NAMES = ["eef_x", "eef_y", "eef_z", "eef_rx", "eef_ry", "eef_rz", "finger_l", "finger_r"]
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
STATE_DIM = len(STATE_NAMES)
ACTION_DIM = len(ACTION_NAMES)


@dataclass(frozen=True)
class EnvConfig:
    """How a simulated task is built.

    Attributes:
        task: a name from `envs.tasks.TASKS`.
        cameras: camera names in observation order: ours (keys of `CAMERAS`) or robosuite's
            (`ROBOSUITE_CAMERAS`); observations are keyed by the name given.
        image_size: square image side in pixels; small by default so CPUs can train on it.
        fast_render: switch off shadows and multisampling (about 16x faster on a CPU).
        horizon: control steps before truncation; None takes the task's own.
        camera_sizes: (height, width) of each camera; empty: image_size square for all.
        state: the robosuite observables `observation.state` is made of, in order, each with
            its size, e.g. (("robot0_eef_pos", 3), ("robot0_eef_quat", 4)); empty: our 8-D
            layout (STATE_NAMES).
    """

    task: str = "lift"
    cameras: tuple[str, ...] = ("agentview", "wrist")
    image_size: int = 64
    fast_render: bool = True
    horizon: int | None = None
    camera_sizes: tuple[tuple[int, int], ...] = ()
    state: tuple[tuple[str, int], ...] = ()

    def sizes(self) -> list[tuple[int, int]]:
        """(height, width) of each camera."""
        if not self.camera_sizes:
            return [(self.image_size, self.image_size)] * len(self.cameras)
        if len(self.camera_sizes) != len(self.cameras):
            raise ObservationSpecError(f"{len(self.camera_sizes)} camera sizes for cameras "
                                       f"{list(self.cameras)}")  # fmt: skip
        return [tuple(s) for s in self.camera_sizes]


class ObservationSpecError(UserInputError):
    """What a policy reads (cameras, state) that a simulated task cannot give."""


def check_cameras(cameras: tuple[str, ...]) -> None:
    unknown = [c for c in cameras if c not in CAMERAS and c not in ROBOSUITE_CAMERAS]
    if unknown:
        raise ObservationSpecError(
            f"unknown camera(s) {unknown}; the tasks have {sorted(CAMERAS)} (our names) and "
            f"{list(ROBOSUITE_CAMERAS)} (robosuite's)"
        )


def robosuite_camera(camera: str) -> str:
    """robosuite's name for a camera given by our name or its own."""
    return CAMERAS.get(camera, camera)


# The gripper pointing straight down, fingers along the world y axis: a half turn about x.
HOME_ROTATION = Rotation.from_rotvec([np.pi, 0.0, 0.0])


def orientation_from_home(quat_xyzw: np.ndarray) -> np.ndarray:
    """Axis-angle (radians) of the end effector's rotation away from `HOME_ROTATION`.

    Measured from home rather than from the world frame, because a downward-pointing gripper
    sits at a half turn from the world frame, where axis-angle jumps between +pi and -pi.
    """
    return (HOME_ROTATION.inv() * Rotation.from_quat(quat_xyzw)).as_rotvec()


def _robosuite_class(name: str) -> type:
    import robosuite

    return robosuite.environments.REGISTERED_ENVS[name]


@contextlib.contextmanager
def _numpy_global_seed(seed: int):
    """Seed NumPy's global generator for the block, then give the caller's state back."""
    outer = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(outer)


class RobosuiteEnv(gym.Env):
    """One robosuite task as a gymnasium env with LeRobot observation keys.

    Resets are seeded without touching NumPy's global generator for longer than the reset
    itself (robosuite's placement samplers draw from it). `get_state()` / `reset_to(state)`
    replay an episode exactly from its seed, instruction and actions.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, config: EnvConfig = EnvConfig()):
        self.config = config
        self.spec_task: TaskSpec = get_task(config.task)
        check_cameras(config.cameras)
        self.horizon = config.horizon or self.spec_task.horizon
        self.instruction = self.spec_task.instructions[0]
        self._seeds = np.random.default_rng()
        self.episode_seed: int | None = None
        self._actions: list[np.ndarray] = []
        self._raw: dict[str, np.ndarray] = {}
        self._look = True
        sizes = config.sizes()
        self.sim_env = self._make_robosuite()
        self._render_only_when_looked_at()
        self._check_state_observables()
        state_dim = sum(n for _, n in config.state) if config.state else STATE_DIM
        self.observation_space = gym.spaces.Dict(
            {
                **{
                    image_key(c): gym.spaces.Box(0, 255, (h, w, 3), np.uint8)
                    for c, (h, w) in zip(config.cameras, sizes, strict=True)
                },
                STATE: gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32),
                TASK: gym.spaces.Text(max_length=256, charset=string.printable),
            }
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)

    def _make_robosuite(self) -> Any:
        use_headless_gl()
        cls = _robosuite_class(self.spec_task.robosuite_env)  # imports robosuite, which sets
        logging.getLogger("robosuite_logs").setLevel(logging.ERROR)  # its logger's level
        # imported after robosuite: in a slim install the error then names robosuite
        from envs.lean_robosuite import lean_env_class, make_robots_lean

        cls = lean_env_class(cls, self.config.fast_render)
        # robosuite draws some scene properties (Lift's cube size) from NumPy's global
        # generator when it builds the model: fix it so every instance is the same scene.
        with _numpy_global_seed(0):
            env = self._build(cls)
        make_robots_lean(env)
        return env

    def _check_state_observables(self) -> None:
        """Every observable the state is made of exists in this task (sizes are checked on
        the first observation, when robosuite has computed them)."""
        known = sorted(k for k in self.sim_env._observables if not k.endswith("_image"))
        unknown = [name for name, _ in self.config.state if name not in known]
        if unknown:
            raise ObservationSpecError(f"task {self.config.task} has no observable {unknown} "
                                       f"for the state; it has {known}")  # fmt: skip

    def _build(self, cls: type) -> Any:
        from robosuite.controllers import load_composite_controller_config

        return cls(
            robots="Panda",
            controller_configs=load_composite_controller_config(controller="BASIC", robot="Panda"),
            has_renderer=False,
            has_offscreen_renderer=bool(self.config.cameras),
            use_camera_obs=bool(self.config.cameras),
            camera_names=[robosuite_camera(c) for c in self.config.cameras] or "agentview",
            camera_heights=[h for h, _ in self.config.sizes()] or self.config.image_size,
            camera_widths=[w for _, w in self.config.sizes()] or self.config.image_size,
            control_freq=20,
            horizon=self.horizon,
            ignore_done=True,
            hard_reset=False,
            reward_shaping=False,
            **self.spec_task.env_kwargs,
        )

    # --- gymnasium API -------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``options={"task": instruction}`` picks the instruction.

        Every episode gets its own seed (drawn from the env's seed sequence when none is
        given), which fixes robosuite's object placement and the sampled instruction.
        """
        super().reset(seed=seed)
        if seed is not None:
            self._seeds = np.random.default_rng(seed)
            self.episode_seed = int(seed)
        else:
            self.episode_seed = int(self._seeds.integers(2**31 - 1))
        wanted = (options or {}).get("task")
        self.instruction = (
            check_instruction(self.spec_task, wanted)
            if wanted is not None
            else sample_instruction(self.spec_task, np.random.default_rng(self.episode_seed))
        )
        with _numpy_global_seed(self.episode_seed):  # robosuite's placement samplers use it
            self._raw = self.sim_env.reset()
        self._actions: list[np.ndarray] = []
        return self._observation(), self._info()

    def _render_only_when_looked_at(self) -> None:
        """Cameras render only on steps whose observation is looked at (`step(look=True)`).

        robosuite renders each camera when its observable samples, at a physics substep fixed
        by the observable's own timer, whose phase drifts with float rounding. Disabling the
        observable would reset that timer and move the substep, so the timers keep running
        and only the render call is skipped: a looked-at frame is the very frame rendering
        every step would have given (tests check they are bit-identical).
        """
        from robosuite.utils.observables import sensor

        for camera in self.config.cameras:
            name = f"{robosuite_camera(camera)}_image"
            observable = self.sim_env._observables[name]  # robosuite keeps them private
            rendered, blank = observable._sensor, np.zeros((1, 1, 3), np.uint8)

            @sensor(modality=observable.modality)
            def when_looked_at(obs_cache, rendered=rendered, blank=blank):
                return rendered(obs_cache) if self._look else blank

            self.sim_env.modify_observable(name, "sensor", when_looked_at)

    def step(self, action: np.ndarray, look: bool = True):
        """One control step. `look=False`: the observation it returns is not going to be
        read (an action inside an executed chunk), so no camera renders and the observation
        holds the state and instruction only; physics is the same either way."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (ACTION_DIM,):
            raise ValueError(f"action must have shape ({ACTION_DIM},), got {action.shape}")
        action = np.clip(action, -1.0, 1.0)
        self._look = look
        try:
            self._raw, _, _, _ = self.sim_env.step(action)
        finally:
            self._look = True
        self._actions.append(action)
        info = self._info()
        terminated = info["is_success"]
        truncated = self.elapsed_steps >= self.horizon
        return self._observation(images=look), float(terminated), terminated, truncated, info

    def render(self) -> np.ndarray:
        return self._observation()[image_key(self.config.cameras[0])]

    def close(self) -> None:
        self.sim_env.close()

    # --- replay ----------------------------------------------------------------------------

    def get_state(self) -> dict:
        """What replays this episode up to now, exactly: its seed, instruction and actions.

        robosuite keeps state outside MuJoCo (controller caches, the gripper's integrated
        command, object placements written into the model), so restoring `mj_setState`
        alone drifts. Re-simulating from the seeded reset is exact by construction; the
        MuJoCo state is kept too, to check the replay and for tools that want it.
        """
        import mujoco

        model, data = self._mujoco()
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        physics = np.empty(mujoco.mj_stateSize(model, spec))
        mujoco.mj_getState(model, data, physics, spec)
        return {
            "task": self.spec_task.name,
            "instruction": self.instruction,
            "seed": self.episode_seed,
            "actions": np.array(self._actions, dtype=np.float64).reshape(-1, ACTION_DIM),
            "mujoco_state": physics,
        }

    def reset_to(self, state: dict):
        """Put the env in a state from `get_state()` and return its observation."""
        if state.get("task") != self.spec_task.name:
            raise ValueError(
                f"state is from task {state.get('task')!r}, this env is {self.spec_task.name!r}"
            )
        self.reset(seed=int(state["seed"]), options={"task": state["instruction"]})
        for action in np.asarray(state["actions"], dtype=np.float64).reshape(-1, ACTION_DIM):
            self._raw, _, _, _ = self.sim_env.step(action)
            self._actions.append(action)
        replayed = self.get_state()["mujoco_state"]
        if "mujoco_state" in state and not np.array_equal(replayed, state["mujoco_state"]):
            raise RuntimeError(f"{self.spec_task.name}: replay diverged from the recorded state")
        return self._observation(), self._info()

    def _grippers(self) -> list:
        return [g for robot in self.sim_env.robots for g in robot.gripper.values()]

    def _mujoco(self):
        sim = self.sim_env.sim
        return sim.model._model, sim.data._data

    # --- helpers ---------------------------------------------------------------------------

    @property
    def elapsed_steps(self) -> int:
        return len(self._actions)

    @property
    def privileged(self) -> dict[str, np.ndarray]:
        """robosuite's own observation dict (object poses and more), for scripted experts."""
        return self._raw

    def is_success(self) -> bool:
        return self.spec_task.judge(self.sim_env, self.instruction)

    def achieved(self) -> list[str]:
        """Every instruction of this task whose goal holds now. In a scene with several
        goals it tells a policy that did the wrong thing (lifted the other cube) from one
        that did nothing."""
        return [i for i in self.spec_task.instructions if self.spec_task.judge(self.sim_env, i)]

    def _info(self) -> dict:
        achieved = self.achieved()
        return {"is_success": self.instruction in achieved, "task": self.instruction,
                "achieved": achieved}  # fmt: skip

    def look_now(self) -> dict:
        """The observation of the current state, its cameras rendered now: for an episode
        that ended on a step that was not looked at (not the frame rendering every step
        would have given, which robosuite renders early in the step)."""
        for camera in self.config.cameras:
            name = f"{robosuite_camera(camera)}_image"
            self._raw[name] = self.sim_env._observables[name]._sensor({})
        return self._observation()

    def _observation(self, images: bool = True) -> dict:
        raw = self._raw
        cameras = self.config.cameras if images else ()
        obs = {image_key(c): raw[f"{robosuite_camera(c)}_image"][::-1].copy() for c in cameras}
        obs[STATE] = self._state()
        obs[TASK] = self.instruction
        return obs

    def _state(self) -> np.ndarray:
        raw = self._raw
        if not self.config.state:  # our layout
            parts = [raw["robot0_eef_pos"], orientation_from_home(raw["robot0_eef_quat"]),
                     raw["robot0_gripper_qpos"]]  # fmt: skip
            return np.concatenate(parts).astype(np.float32)
        parts = [np.ravel(raw[name]) for name, _ in self.config.state]
        for (name, size), part in zip(self.config.state, parts, strict=True):
            if part.size != size:
                raise ObservationSpecError(
                    f"observable {name} of task {self.config.task} has {part.size} values; "
                    f"the state expects {size}"
                )
        return np.concatenate(parts).astype(np.float32)


def make_env(task: str = "lift", **kwargs: Any) -> RobosuiteEnv:
    """Build a task's env: `make_env("lift", cameras=("agentview",), image_size=84)`."""
    return RobosuiteEnv(EnvConfig(task=task, **kwargs))
