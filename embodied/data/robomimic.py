"""`embodied convert-robomimic FILE.hdf5 --root DIR`: robomimic / MimicGen data as LeRobot v3.0.

robomimic's `demo.hdf5` (MimicGen's and WMPO's benchmark data share it) holds, per episode
`data/demo_<i>`: `actions` (T, 7), `rewards`, `dones`, the flattened MuJoCo `states`
(T, D) and `obs/<key>`: robosuite's observables (`robot0_eef_pos`, `robot0_eef_quat`,
`robot0_gripper_qpos`, ...) and, when images were kept, `<camera>_image` (T, H, W, 3),
upright. `data.attrs["env_args"]` names the robosuite env and its controller.

The converted dataset keeps robosuite's names: cameras `observation.images.<camera>` at the
file's size, and `observation.state` made of the chosen observables, its dimensions named
`<observable>.<i>`, so a policy trained on it evaluates in the matching task observing
exactly that (`embodied.obs_spec`). A file without images has its cameras rendered from the
recorded states in our build of the task. `meta/embodied_source.json` records the file, its
env_args and the observables.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embodied.data.integrity import DatasetError
from embodied.types import ACTION, DONE, REWARD, STATE, SUCCESS, TASK, UserInputError, image_key

# robosuite env names -> our tasks of the same scene
ENV_TASKS = {"Lift": "lift", "Stack": "stack", "PickPlaceCan": "pick_place_can", "Door": "door"}
SOURCE_FILE = "meta/embodied_source.json"


@dataclass
class ConvertRobomimicConfig:
    """Attributes:
    file: the robomimic / MimicGen `demo.hdf5` (also given as the first argument).
    root: the LeRobot dataset folder to create; it must not exist yet.
    repo_id: the dataset's LeRobot name.
    task: our task the data is of (empty: from env_args' env name, e.g. Lift -> lift).
    instruction: the episodes' text (empty: the task's first instruction).
    cameras: robosuite cameras to keep (empty: every `<camera>_image` in the file). A file
        without images gets these rendered from its states (agentview and the wrist camera
        when empty).
    image_size: side of rendered cameras (files with images keep their size).
    state: the observables `observation.state` is made of, in order.
    vcodec: video codec passed to LeRobot.
    """

    file: str = ""
    root: str = ""
    repo_id: str = "local/robomimic"
    task: str = ""
    instruction: str = ""
    cameras: tuple[str, ...] = ()
    image_size: int = 84
    state: tuple[str, ...] = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
    vcodec: str = "libsvtav1"


def convert_robomimic(config: ConvertRobomimicConfig) -> Path:
    """Write the LeRobot dataset; returns its root."""
    import h5py

    from embodied.data.record import lerobot_dataset_written

    path, root = Path(config.file), Path(config.root)
    if not config.root or root.exists():
        raise UserInputError(f"--root must name a folder that does not exist yet: {root}")
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(f"{path} is not a readable hdf5 file ({err})") from None
    with h5:
        env_args, demos = _contents(path, h5)
        task, instruction = _task(config, env_args)
        first = h5["data"][demos[0]]["obs"]
        cameras = list(config.cameras) or [k.removesuffix("_image") for k in first
                                           if k.endswith("_image")]  # fmt: skip
        stored = all(f"{c}_image" in first for c in cameras) and bool(cameras)
        render = None if stored else _renderer(task, cameras or None, config.image_size)
        cameras = cameras if stored else list(render.config.cameras)
        sizes = (
            _sizes(h5, demos[0], cameras) if stored else [render.config.sizes()[0]] * len(cameras)
        )
        features = _features(cameras, sizes, _state_sizes(path, first, config.state))
        with lerobot_dataset_written(root, config.repo_id, features, config.vcodec) as dataset:
            for demo in demos:
                for frame in _frames(h5["data"][demo], cameras, config.state, render):
                    dataset.add_frame({**frame, TASK: instruction})
                dataset.save_episode()
            source = {"file": str(path.resolve()), "env_args": env_args, "task": task,
                      "state_observables": list(config.state), "episodes": demos}  # fmt: skip
            (Path(dataset.root) / SOURCE_FILE).write_text(json.dumps(source, indent=2))
    if render is not None:
        render.close()
    return root


def _contents(path: Path, h5: Any) -> tuple[dict, list[str]]:
    """env_args, and the episodes in index order (demo_2 before demo_10)."""
    if "data" not in h5 or "env_args" not in h5["data"].attrs:
        raise DatasetError(f"{path} is not a robomimic dataset: no data group with env_args")
    try:
        env_args = json.loads(h5["data"].attrs["env_args"])
    except (TypeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{path}: data.attrs['env_args'] is not JSON ({err})") from None
    demos = sorted((k for k in h5["data"] if k.startswith("demo_")),
                   key=lambda k: int(k.removeprefix("demo_")))  # fmt: skip
    if not demos:
        raise DatasetError(f"{path} holds no episode (data/demo_*)")
    controller = json.dumps(env_args.get("env_kwargs", {}).get("controller_configs", {}))
    if "OSC_POSE" not in controller and "BASIC" not in controller:
        raise DatasetError(f"{path}: actions of controller {controller[:80]}; our tasks take "
                           "OSC_POSE deltas")  # fmt: skip
    return env_args, demos


def _task(config: ConvertRobomimicConfig, env_args: dict) -> tuple[str, str]:
    from envs.tasks import get_task

    name = config.task or ENV_TASKS.get(env_args.get("env_name", ""))
    if not name:
        raise UserInputError(f"robosuite env {env_args.get('env_name')!r} is none of ours "
                             f"({sorted(ENV_TASKS)}); give --task")  # fmt: skip
    spec = get_task(name)
    return name, config.instruction or spec.instructions[0]


def _sizes(h5: Any, demo: str, cameras: list[str]) -> list[tuple[int, int]]:
    return [tuple(h5["data"][demo]["obs"][f"{c}_image"].shape[1:3]) for c in cameras]


def _state_sizes(path: Path, obs: Any, state: tuple[str, ...]) -> list[tuple[str, int]]:
    missing = [k for k in state if k not in obs]
    if missing:
        raise DatasetError(f"{path} has no observable {missing}; it has {sorted(obs)}")
    return [(k, int(np.prod(obs[k].shape[1:]))) for k in state]


def _features(cameras: list[str], sizes: list[tuple[int, int]],
              state: list[tuple[str, int]]) -> dict:  # fmt: skip
    from envs.robosuite_env import ACTION_NAMES

    features = {
        image_key(c): {
            "dtype": "video",
            "shape": (h, w, 3),
            "names": ["height", "width", "channels"],
        }
        for c, (h, w) in zip(cameras, sizes, strict=True)
    }
    names = [f"{k}.{i}" for k, n in state for i in range(n)]
    features[STATE] = {"dtype": "float32", "shape": (len(names),), "names": names}
    features[ACTION] = {"dtype": "float32", "shape": (len(ACTION_NAMES),), "names": ACTION_NAMES}
    for key, dtype in ((REWARD, "float32"), (DONE, "bool"), (SUCCESS, "bool")):
        features[key] = {"dtype": dtype, "shape": (1,), "names": None}
    return features


def _renderer(task: str, cameras: list[str] | None, size: int) -> Any:
    from envs.robosuite_env import make_env

    env = make_env(task, cameras=tuple(cameras or ("agentview", "robot0_eye_in_hand")),
                   image_size=size)  # fmt: skip
    env.reset(seed=0)  # the scene's bodies exist; each frame then sets its recorded state
    return env


def _frames(demo: Any, cameras: list[str], state: tuple[str, ...], render: Any):
    """The episode's LeRobot frames (without the task text)."""
    actions = np.asarray(demo["actions"], dtype=np.float32)
    if actions.ndim != 2 or actions.shape[1] != 7:
        raise DatasetError(f"{demo.name}: actions of shape {actions.shape}; our tasks take 7-D")
    rewards = np.asarray(demo["rewards"], dtype=np.float32)
    success = np.maximum.accumulate(rewards > 0)
    obs = demo["obs"]
    states = np.concatenate([np.asarray(obs[k]).reshape(len(actions), -1) for k in state], 1)
    for t in range(len(actions)):
        images = ({image_key(c): np.asarray(obs[f"{c}_image"][t]) for c in cameras}
                  if render is None else _rendered(render, demo["states"][t]))  # fmt: skip
        yield {
            **images,
            STATE: states[t].astype(np.float32),
            ACTION: actions[t],
            REWARD: rewards[t : t + 1],
            DONE: np.array([t == len(actions) - 1]),
            SUCCESS: success[t : t + 1],
        }


def _rendered(env: Any, state: np.ndarray) -> dict:
    """The cameras of `env` at a recorded flattened MuJoCo state."""
    from embodied.types import IMAGE_PREFIX

    sim = env.sim_env.sim
    expected = len(sim.get_state().flatten())
    if len(state) != expected:
        raise DatasetError(f"the file's MuJoCo states have {len(state)} values; our "
                           f"{env.config.task} has {expected}")  # fmt: skip
    sim.set_state_from_flattened(np.asarray(state))
    sim.forward()
    return {k: v for k, v in env.look_now().items() if k.startswith(IMAGE_PREFIX)}
