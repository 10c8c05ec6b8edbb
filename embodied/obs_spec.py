"""What a checkpoint's policy reads, as a simulated task must produce it.

A policy trained on the data we record reads our cameras (`agentview`, `wrist`) at 64x64 and
our 8-D state (`envs.robosuite_env.STATE_NAMES`). One trained on robosuite's own data
(robomimic and MimicGen datasets, once in LeRobot format) reads robosuite's camera names
(`robot0_eye_in_hand`) at their own size (84x84) and a state composed of named robosuite
observables, its dimensions named `<observable>.<i>` (`robot0_eef_pos.0`...). `env_settings`
turns a checkpoint's config into the env settings that give exactly that, so `embodied eval`
and the MuJoCo side of RL observe a task the way the policy was trained; what a task cannot
give is a one-line error before the first episode.
"""

from typing import Any

from embodied.types import IMAGE_PREFIX, STATE
from envs.robosuite_env import (
    ACTION_DIM,
    ACTION_NAMES,
    STATE_DIM,
    STATE_NAMES,
    ObservationSpecError,
    check_cameras,
)


def env_settings(config: Any) -> dict:
    """`make_env`/`BatchedTaskEnv` keyword arguments for a policy config: cameras (in the
    policy's order), each camera's size, and the state's observables."""
    keys = sorted(config.image_features)
    cameras = tuple(k.removeprefix(IMAGE_PREFIX) for k in keys)
    check_cameras(cameras)
    sizes = tuple(tuple(config.image_features[k].shape[-2:]) for k in keys)
    state_dim = config.input_features[STATE].shape[0]
    check_actions(config)
    return {
        "cameras": cameras,
        "camera_sizes": sizes,
        "state": state_observables(list(getattr(config, "state_names", []) or []), state_dim),
    }


def state_observables(names: list[str], dim: int) -> tuple[tuple[str, int], ...]:
    """The observables (and sizes) a state of these dimension names is made of: () for our
    8-D layout; `robot0_eef_pos.0..2, robot0_gripper_qpos.0..1` -> (("robot0_eef_pos", 3),
    ("robot0_gripper_qpos", 2)). A policy that names no dimensions (LeRobot's ACT, older
    checkpoints) reads our layout, if its state has our size."""
    if not names or names == STATE_NAMES:
        if dim != STATE_DIM:
            raise ObservationSpecError(
                f"the policy reads a {dim}-D state without naming its dimensions; the tasks "
                f"give our {STATE_DIM}-D state {STATE_NAMES} or named robosuite observables"
            )
        return ()
    if len(names) != dim:
        raise ObservationSpecError(f"the policy's state has {dim} values but {len(names)} names")
    blocks: list[list] = []
    for name in names:
        base, _, index = name.rpartition(".")
        observable = base if base and index.isdigit() else name
        if blocks and blocks[-1][0] == observable:
            blocks[-1][1] += 1
        else:
            blocks.append([observable, 1])
    return tuple((observable, size) for observable, size in blocks)


def check_actions(config: Any) -> None:
    """The policy's actions are the tasks' controller's: 7-D OSC deltas named ACTION_NAMES
    (a checkpoint that names none is checked by size only)."""
    size = config.output_features["action"].shape[0]
    names = list(getattr(config, "action_names", []) or [])
    if size != ACTION_DIM or (names and names != ACTION_NAMES):
        raise ObservationSpecError(
            f"the policy outputs {size}-D actions {names or ''}; the tasks take {ACTION_DIM}-D "
            f"OSC deltas {ACTION_NAMES}"
        )
