"""`embodied collect`: record scripted-expert episodes as a LeRobot v3.0 dataset.

Written through LeRobot's own `LeRobotDataset.create / add_frame / save_episode / finalize`,
so the result opens in LeRobot's tools unchanged. The dataset is built in `<root>.partial/`
(marked by an INCOMPLETE file) and renamed to `<root>` only once finalized: an interrupted
run never leaves a folder that looks like a finished dataset.
"""

import json
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from embodied.data.source import EPISODES_SIDECAR, INCOMPLETE_MARKER
from embodied.rollouts import Callback, Step
from embodied.seeds import episode_seed
from embodied.types import (
    ACTION,
    DONE,
    REWARD,
    STATE,
    SUCCESS,
    TASK,
    UserInputError,
    image_key,
)

FPS = 20


@dataclass
class CollectConfig:
    """Attributes:
    task: comma-separated task names; every task gets `episodes` episodes.
    episodes: episodes per task (instructions of multi-instruction tasks take turns).
    root: the dataset folder to create; it must not exist yet.
    repo_id: the dataset's LeRobot name.
    cameras: our camera names (see envs.robosuite_env.CAMERAS).
    image_size: square image side in pixels.
    seed: episode i of the k-th task uses seed `seed + 100_000 * k + i`.
    noise_std: action noise of the experts, so the data is not one narrow path.
    perturb_prob: chance per step of a random push the expert recovers from.
    failure_rate: share of episodes where the expert sabotages itself (negatives for
        success classifiers); labels always come from the simulator.
    near_miss_rate: share of the other episodes where the expert grasps once beside the
        object and gives up (`envs.experts.ExpertConfig.near_miss`): failures of the kind a
        policy makes, for the world model and the reward model to learn what one looks like.
    success_hold: steps still recorded after the task first succeeds.
    vcodec: video codec passed to LeRobot (libsvtav1 is its default).
    """

    task: str = "lift"
    episodes: int = 10
    root: str = ""
    repo_id: str = "local/embodied_experts"
    cameras: tuple[str, ...] = ("agentview", "wrist")
    image_size: int = 64
    seed: int = 0
    noise_std: float = 0.05
    perturb_prob: float = 0.02
    failure_rate: float = 0.0
    near_miss_rate: float = 0.0
    success_hold: int = 10
    vcodec: str = "libsvtav1"


def dataset_features(cameras: tuple[str, ...], image_size: int) -> dict:
    """LeRobot feature spec of the datasets we record."""
    from envs.robosuite_env import ACTION_NAMES, STATE_NAMES

    features = {
        image_key(c): {
            "dtype": "video",
            "shape": (image_size, image_size, 3),
            "names": ["height", "width", "channels"],
        }
        for c in cameras
    }
    features[STATE] = {"dtype": "float32", "shape": (len(STATE_NAMES),), "names": STATE_NAMES}
    features[ACTION] = {"dtype": "float32", "shape": (len(ACTION_NAMES),), "names": ACTION_NAMES}
    for key, dtype in ((REWARD, "float32"), (DONE, "bool"), (SUCCESS, "bool")):
        features[key] = {"dtype": dtype, "shape": (1,), "names": None}
    return features


def _check(config: CollectConfig) -> list:
    from envs.robosuite_env import check_cameras
    from envs.tasks import parse_tasks

    specs = parse_tasks(config.task)
    check_cameras(config.cameras)
    if not config.root:
        raise UserInputError("collect needs --root=DIR, the dataset folder to create")
    if Path(config.root).exists():
        raise FileExistsError(f"{config.root} already exists; choose a new --root or remove it")
    if config.episodes < 1:
        raise UserInputError(f"--episodes must be at least 1, got {config.episodes}")
    for name in ("failure_rate", "near_miss_rate"):
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise UserInputError(f"--{name} must be in [0, 1], got {getattr(config, name)}")
    if config.near_miss_rate > 0:
        from envs.experts import EXPERTS
        from envs.experts.manipulation import PickPlaceExpert

        for spec in specs:
            if not issubclass(EXPERTS[spec.name], PickPlaceExpert):
                raise UserInputError(f"--near_miss_rate: the {spec.name} expert grasps nothing "
                                     f"it could miss; record {spec.name} without it")  # fmt: skip
    return specs


def collect(config: CollectConfig) -> Path:
    """Record the dataset and return its root."""
    specs = _check(config)
    from envs.experts import EXPERTS, ExpertConfig, expert_frames
    from envs.robosuite_env import make_env

    def episodes():
        for k, spec in enumerate(specs):
            env = make_env(spec.name, cameras=config.cameras, image_size=config.image_size)
            rng = np.random.default_rng([config.seed, k])
            for i in range(config.episodes):
                seed = episode_seed(config.seed, k, i)
                instruction = spec.instructions[i % len(spec.instructions)]
                fail = bool(rng.random() < config.failure_rate)
                # a near miss is drawn only when asked for: datasets without one stay the same
                rate = config.near_miss_rate
                miss = bool(not fail and rate > 0 and rng.random() < rate)
                expert_config = ExpertConfig(noise_std=config.noise_std,
                                             perturb_prob=config.perturb_prob, fail=fail,
                                             near_miss=miss)  # fmt: skip
                row = {"task": spec.name, "instruction": instruction, "seed": seed,
                       "sabotaged": fail, "near_miss": miss}  # fmt: skip
                yield (
                    row,
                    expert_frames(
                        env,
                        EXPERTS[spec.name],
                        seed,
                        instruction,
                        expert_config,
                        config.success_hold,
                    ),
                )
            env.close()

    return write_dataset(
        Path(config.root),
        episodes(),
        total=len(specs) * config.episodes,
        repo_id=config.repo_id,
        cameras=config.cameras,
        image_size=config.image_size,
        vcodec=config.vcodec,
    )


def write_dataset(
    root: Path,
    episodes: Iterable[tuple[dict, Iterable]],
    total: int,
    repo_id: str,
    cameras: tuple[str, ...],
    image_size: int,
    vcodec: str = "libsvtav1",
) -> Path:
    """Write `(row, frames)` episodes (frames: `envs.experts.Frame`s, from an expert or a
    policy) as a LeRobot dataset at `root`, each row (plus index, success, length and start
    state) into the episodes sidecar. Built in `<root>.partial` and renamed when complete."""
    features = dataset_features(cameras, image_size)
    with lerobot_dataset_written(root, repo_id, features, vcodec) as dataset:
        sidecar = []
        bar = tqdm(total=total, desc="recording episodes", unit="ep")
        successes = 0
        for row, frames in episodes:
            for t, frame in enumerate(frames):
                if t == 0:
                    start_state = frame.start_state
                dataset.add_frame(_lerobot_frame(frame))
            dataset.save_episode()
            successes += frame.success
            sidecar.append(
                {
                    "episode_index": len(sidecar),
                    **row,
                    "success": bool(frame.success),
                    "length": t + 1,
                    "start_state": start_state["mujoco_state"].tolist(),
                }
            )
            bar.update(1)
            bar.set_postfix(success=f"{successes / len(sidecar):.0%}")
        bar.close()
        with open(Path(dataset.root) / EPISODES_SIDECAR, "w") as f:
            for row in sidecar:
                f.write(json.dumps(row) + "\n")
    return root


@contextmanager
def lerobot_dataset_written(root: Path, repo_id: str, features: dict,
                            vcodec: str = "libsvtav1") -> Iterator[Any]:  # fmt: skip
    """A new `LeRobotDataset` to add episodes to, built in `<root>.partial` (marked
    INCOMPLETE) and finalized and renamed to `root` when the block ends: an interrupted
    writer never leaves a folder that looks like a finished dataset."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    partial = root.with_name(root.name + ".partial")
    if partial.exists():
        print(f"removing {partial}, left by an interrupted recording")
        shutil.rmtree(partial)
    partial.parent.mkdir(parents=True, exist_ok=True)
    dataset = LeRobotDataset.create(repo_id, fps=FPS, features=features, root=partial,
                                    robot_type="panda", use_videos=True, vcodec=vcodec)  # fmt: skip
    (partial / INCOMPLETE_MARKER).write_text("recording was interrupted; this is not a dataset\n")
    yield dataset
    dataset.finalize()
    (partial / INCOMPLETE_MARKER).unlink()
    partial.rename(root)


class EpisodeFrames(Callback):
    """A rollout's episodes as `envs.experts.Frame` lists (for `write_dataset`), recorded
    while each runs; the actor must send one action per call."""

    def on_reset(self, obs: dict, info: dict) -> None:
        self.start_states = info["start_states"]
        self.episodes: list[list] = [[] for _ in self.start_states]

    def on_step(self, step: Step) -> None:
        from envs.experts import Frame

        if step.actions.shape[1] != 1:
            raise ValueError(f"recording needs one action per call, got {step.actions.shape[1]}")
        ended = step.terminated | step.truncated
        for b in np.flatnonzero(step.alive):
            observation = {k: v[b] for k, v in step.obs.items() if k != TASK}
            observation[TASK] = step.obs[TASK][b]
            start = None if self.episodes[b] else self.start_states[b]
            self.episodes[b].append(Frame(observation, step.actions[b, 0], float(step.reward[b]),
                                          bool(step.info["success_now"][b]), bool(ended[b]),
                                          start))  # fmt: skip


def _lerobot_frame(frame) -> dict:
    out = {k: v for k, v in frame.observation.items() if k != "task"}
    out["task"] = frame.observation["task"]
    out[ACTION] = np.asarray(frame.action, dtype=np.float32)
    out[REWARD] = np.array([frame.reward], dtype=np.float32)
    out[DONE] = np.array([frame.done], dtype=bool)
    out[SUCCESS] = np.array([frame.success], dtype=bool)
    return out
