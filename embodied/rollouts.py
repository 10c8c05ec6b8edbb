"""One rollout driver for MuJoCo and for world models, start frames from datasets, and
imagined rollouts on disk (zarr) and as mp4.

Both `envs.batched.BatchedTaskEnv` and `world_models.env.WorldModelEnv` speak the same
batched protocol: `reset(seed, options) -> (obs, info)` and
`step(actions (B, A) or (B, n, A)) -> (obs, reward, terminated, truncated, info)` with
observations in the tasks' keys stacked along B and flags that stay set once an episode
has ended. `rollout` drives either with a function from observations to action chunks.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodied.types import IMAGE_PREFIX, STATE, TASK

Act = Callable[[dict], np.ndarray]  # batched observation -> actions (B, n, A)


@dataclass
class Rollout:
    """A batch of episodes. T = number of `step` calls (each may run a chunk of n actions).

    Attributes:
        frames: per image key, uint8 (T + 1, B, H, W, 3) when recorded, else empty.
        actions: float32 (T, B, n, A).
        rewards: float32 (T, B).
        ended: bool (T, B): the episode had ended after this call.
        tasks: B instructions.
        info: the last step's info.
    """

    frames: dict[str, np.ndarray] = field(default_factory=dict)
    actions: np.ndarray = None
    rewards: np.ndarray = None
    ended: np.ndarray = None
    tasks: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def returns(self) -> np.ndarray:
        return self.rewards.sum(0)


def rollout(
    env: Any,
    act: Act,
    max_calls: int,
    seed: int | None = None,
    options: dict | None = None,
    record: bool = False,
) -> Rollout:
    """Run B episodes until all have ended or `max_calls` chunks have been sent."""
    obs, _ = env.reset(seed=seed, options=options)
    keys = [k for k in obs if k.startswith(IMAGE_PREFIX)]
    frames = {k: [obs[k]] for k in keys} if record else {}
    actions, rewards, ended = [], [], []
    info: dict = {}
    for _ in range(max_calls):
        chunk = np.asarray(act(obs), dtype=np.float32)
        obs, reward, terminated, truncated, info = env.step(chunk)
        actions.append(chunk if chunk.ndim == 3 else chunk[:, None])
        rewards.append(reward)
        ended.append(terminated | truncated)
        for k in frames:
            frames[k].append(obs[k])
        if ended[-1].all():
            break
    return Rollout(
        frames={k: np.stack(v) for k, v in frames.items()},
        actions=np.stack(actions),
        rewards=np.stack(rewards),
        ended=np.stack(ended),
        tasks=list(obs[TASK]),
        info=info,
    )


def policy_act(policy: Any, pre: Any, post: Any, n_action_steps: int | None = None) -> Act:
    """A LeRobot policy as an `Act`: the first `n_action_steps` actions of its deterministic
    chunk (the policy's own setting by default), in the env's action units."""
    import torch

    n = n_action_steps or policy.config.n_action_steps
    keys = sorted(policy.config.image_features)

    @torch.no_grad()
    def act(obs: dict) -> np.ndarray:
        chunk = policy.predict_action_chunk(pre(policy_batch(obs, keys)))[:, :n]
        return post(chunk).cpu().numpy()

    return act


def policy_batch(obs: dict, image_keys: list[str]) -> dict:
    """Batched env observations -> a LeRobot batch: float CHW images in [0, 1], float state."""
    import torch

    batch = {
        k: torch.from_numpy(np.asarray(obs[k])).permute(0, 3, 1, 2).float() / 255.0
        for k in image_keys
    }
    batch[STATE] = torch.from_numpy(np.asarray(obs[STATE], dtype=np.float32))
    batch[TASK] = list(obs[TASK])
    return batch


def write_zarr(path: str | Path, result: Rollout) -> Path:
    """Imagined (or simulated) rollouts as a zarr store: frames, actions, rewards, ended,
    tasks; written to a temporary name and renamed, so a reader never sees half a store."""
    import zarr

    from embodied.files import folder_written_atomically

    path = Path(path)
    with folder_written_atomically(path) as tmp:
        root = zarr.open_group(str(tmp), mode="w")
        for key, frames in result.frames.items():
            root.create_array(f"frames/{key}", data=frames, chunks=(1, *frames.shape[1:]))
        for name in ("actions", "rewards", "ended"):
            root.create_array(name, data=getattr(result, name))
        root.attrs["tasks"] = result.tasks
    return path


def read_zarr(path: str | Path) -> Rollout:
    import zarr

    root = zarr.open_group(str(path), mode="r")
    group = root.get("frames")
    return Rollout(
        frames={k: group[k][:] for k in group.array_keys()} if group is not None else {},
        actions=root["actions"][:],
        rewards=root["rewards"][:],
        ended=root["ended"][:],
        tasks=list(root.attrs["tasks"]),
    )


def zarr_to_mp4(path: str | Path, out_dir: str | Path, fps: int = 20) -> list[Path]:
    """One mp4 per episode of a rollout store, cameras side by side."""
    from embodied.video import write_mp4

    result = read_zarr(path)
    keys = sorted(result.frames)
    if not keys:
        raise ValueError(f"{path} holds no frames (the rollout was not recorded)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    videos = []
    for b in range(result.actions.shape[1]):
        length = int(np.argmax(result.ended[:, b])) + 2 if result.ended[:, b].any() else None
        frames = np.concatenate([result.frames[k][:length, b] for k in keys], axis=2)
        videos.append(out_dir / f"episode_{b:03d}.mp4")
        write_mp4(videos[-1], list(frames), fps=fps)
    return videos
