"""The one rollout driver, for MuJoCo and for world models, and rollouts on disk (zarr, mp4).

Both `envs.batched.BatchedTaskEnv` and `world_models.env.WorldModelEnv` speak the same
batched protocol: `reset(seed, options) -> (obs, info)` and
`step(actions (B, A) or (B, n, A)) -> (obs, reward, terminated, truncated, info)` with
observations in the tasks' keys stacked along B and flags that stay set once an episode
has ended. `rollout` drives either with an actor (`embodied.acting`: deterministic, or
sampled and returning log-probs), until every episode has ended. Evaluation, RL in either
env, recording the policy's episodes, judging real episodes in a world model and videos all
run through it; what each needs beyond the returned `Rollout` (frames, goals reached, a
LeRobot dataset) is a callback.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodied.types import IMAGE_PREFIX, TASK

# batched observation -> actions (B, n, A), or (actions, extras: per-episode arrays such as
# log-probs, stacked over calls into `Rollout.extras`)
Act = Callable[[dict], np.ndarray | tuple[np.ndarray, dict]]


@dataclass
class Step:
    """One call of the driver: the observation acted on, the actions sent (B, n, A), the
    actor's extras, what the env returned, and which episodes were still running (alive)
    when the actions were sent."""

    t: int
    obs: dict
    actions: np.ndarray
    extras: dict
    next_obs: dict
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    info: dict
    alive: np.ndarray


class Callback:
    """Sees every reset and step of a rollout; subclasses override what they need."""

    def on_reset(self, obs: dict, info: dict) -> None:
        pass

    def on_step(self, step: Step) -> None:
        pass


@dataclass
class Rollout:
    """A batch of episodes. T = number of `step` calls (each may run a chunk of n actions).

    Attributes:
        frames: per image key, uint8 (T + 1, B, H, W, 3) when recorded, else empty.
        actions: float32 (T, B, n, A).
        rewards: float32 (T, B).
        ended: bool (T, B): the episode had ended after this call.
        alive: bool (T, B): the episode was still running when call t was made.
        extras: the actor's extras, per key (T, B, ...).
        instructions: B instructions.
        info: the last step's info.
    """

    frames: dict[str, np.ndarray] = field(default_factory=dict)
    actions: np.ndarray = None
    rewards: np.ndarray = None
    ended: np.ndarray = None
    alive: np.ndarray = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    instructions: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def returns(self) -> np.ndarray:
        return self.rewards.sum(0)


class _Frames(Callback):
    """Every image of the observations, the reset one first: (T + 1, B, H, W, 3) per key."""

    def __init__(self):
        self.frames: dict[str, list] = {}

    def on_reset(self, obs: dict, info: dict) -> None:
        self.frames = {k: [obs[k]] for k in obs if k.startswith(IMAGE_PREFIX)}

    def on_step(self, step: Step) -> None:
        for key, frames in self.frames.items():
            frames.append(step.next_obs[key])


def rollout(
    env: Any,
    act: Act,
    max_calls: int | None = None,
    seed: int | None = None,
    options: dict | None = None,
    record: bool = False,
    callbacks: Sequence[Callback] = (),
) -> Rollout:
    """Run B episodes until all have ended (or `max_calls` calls were made). The actor's
    `reset()`, if it has one, is called after the env's."""
    frames = _Frames() if record else None
    callbacks = [*callbacks, *([frames] if frames else [])]
    obs, info = env.reset(seed=seed, options=options)
    if hasattr(act, "reset"):
        act.reset()
    for callback in callbacks:
        callback.on_reset(obs, info)
    alive = np.ones(len(obs[TASK]), dtype=bool)
    calls: list[Step] = []
    while max_calls is None or len(calls) < max_calls:
        out = act(obs)
        actions, extras = out if isinstance(out, tuple) else (out, {})
        actions = np.asarray(actions, dtype=np.float32)
        actions = actions[:, None] if actions.ndim == 2 else actions
        next_obs, reward, terminated, truncated, info = env.step(actions)
        step = Step(len(calls), obs, actions, extras, next_obs, reward, terminated, truncated,
                    info, alive)  # fmt: skip
        for callback in callbacks:
            callback.on_step(step)
        calls.append(step)
        obs, alive = next_obs, ~(terminated | truncated)
        if not alive.any():
            break
    return Rollout(
        frames={k: np.stack(v) for k, v in frames.frames.items()} if frames else {},
        actions=np.stack([s.actions for s in calls]),
        rewards=np.stack([s.reward for s in calls]),
        ended=np.stack([s.terminated | s.truncated for s in calls]),
        alive=np.stack([s.alive for s in calls]),
        extras={k: np.stack([s.extras[k] for s in calls]) for k in calls[0].extras},
        instructions=list(obs[TASK]),
        info=calls[-1].info,
    )


class Replay:
    """Recorded actions (B, T, A) as an actor: `per_call` of them each call, zeros past T
    (an episode shorter than the batch's longest has ended by then)."""

    def __init__(self, actions: np.ndarray, per_call: int):
        self.actions, self.per_call, self.t = actions, per_call, 0

    def reset(self) -> None:
        self.t = 0

    def __call__(self, obs: dict) -> np.ndarray:
        B, _, A = self.actions.shape
        chunk = np.zeros((B, self.per_call, A), dtype=np.float32)
        part = self.actions[:, self.t : self.t + self.per_call]
        chunk[:, : part.shape[1]] = part
        self.t += self.per_call
        return chunk


def write_zarr(path: str | Path, result: Rollout) -> Path:
    """Imagined (or simulated) rollouts as a zarr store: frames, actions, rewards, ended,
    instructions; written to a temporary name and renamed, so a reader never sees half a store."""
    import zarr

    from embodied.files import folder_written_atomically

    path = Path(path)
    with folder_written_atomically(path) as tmp:
        root = zarr.open_group(str(tmp), mode="w")
        for key, frames in result.frames.items():
            root.create_array(f"frames/{key}", data=frames, chunks=(1, *frames.shape[1:]))
        for name in ("actions", "rewards", "ended"):
            root.create_array(name, data=getattr(result, name))
        root.attrs["instructions"] = result.instructions
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
        instructions=list(root.attrs["instructions"]),
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
