"""The world model as a batched environment that speaks the MuJoCo tasks' language.

`WorldModelEnv` runs B imagined episodes at once. Observations have the tasks' keys, dtypes
and per-episode shapes (uint8 HWC frames per camera, float32 `observation.state`, the
instruction under `task`), batched along a leading B axis; actions are the tasks' 7-D
actions, one step (B, A) or a chunk (B, n, A) per call. Each episode starts from a real
start frame (with its state and instruction) drawn from a `StartBank` taken from a dataset.

Episodes do not reset one by one: a finished episode keeps its last observation and gets
zero reward until `reset()` starts a new batch, which is what group-based RL wants (G
episodes from one start state, judged together).
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from embodied.types import STATE, TASK
from world_models.base import WorldModel


@dataclass
class StartBank:
    """Real start states to imagine from.

    Attributes:
        images: per image key, uint8 (N, K, H, W, 3): the K context frames of each start.
        state: float32 (N, K, S).
        instructions: N instructions.
    """

    images: dict[str, np.ndarray]
    state: np.ndarray
    instructions: list[str]

    def __len__(self) -> int:
        return len(self.instructions)

    @classmethod
    def from_dataset(cls, dataset, config, episodes=None, keyframe_every: int = 0) -> "StartBank":
        """The first frame of each episode (of `episodes`, all by default) of a dataset
        (`embodied.data.CachedDataset`) with the K frames of context a world model with this
        `config` reads (the first frame repeated, as LeRobot pads history), state and
        instruction; with `keyframe_every` = n, also every n-th frame of each episode
        before its first success (WoVR's keyframes: imagined episodes that start midway
        compound their errors over fewer predictions; frames after a success would only
        start episodes already won)."""
        from embodied.types import SUCCESS
        from world_models.windows import context_deltas

        history = context_deltas(config, dataset.meta.fps)
        image_keys = list(config.image_keys)
        view = dataset.with_deltas({k: history for k in [*image_keys, STATE]})
        starts = np.asarray(dataset.meta.episodes["dataset_from_index"])
        if episodes is not None:
            starts = starts[np.asarray(list(episodes), dtype=np.int64)]
        if keyframe_every > 0:
            index = np.asarray(dataset.arrays["episode_index"])
            frame = np.asarray(dataset.arrays["frame_index"])
            done = np.zeros(len(frame), dtype=bool)
            if SUCCESS in dataset.arrays:  # a frame at or after its episode's first success
                success = np.asarray(dataset.arrays[SUCCESS]).reshape(-1) > 0
                for e in np.unique(index[success]):
                    mine = np.flatnonzero(index == e)
                    done[mine[np.argmax(success[mine]) :]] = True
            chosen = np.isin(index, index[starts]) & (frame % keyframe_every == 0) & ~done
            starts = np.union1d(starts, np.flatnonzero(chosen))
        batch = view.batch(starts)
        images = {
            k: (batch[k].movedim(-3, -1) * 255.0).round().to(torch.uint8).numpy()
            for k in image_keys
        }
        return cls(images=images, state=batch[STATE].numpy(), instructions=batch[TASK])

    @classmethod
    def concatenate(cls, banks: list["StartBank"]) -> "StartBank":
        """One bank holding the starts of several."""
        images = {k: np.concatenate([b.images[k] for b in banks]) for k in banks[0].images}
        state = np.concatenate([b.state for b in banks])
        return cls(images, state, [t for b in banks for t in b.instructions])

    def check(self, model: WorldModel) -> None:
        """Fail early on start frames the model cannot read (wrong camera, size or history)."""
        c = model.config
        for key in c.image_keys:
            if key not in self.images:
                raise ValueError(f"start frames lack {key}; the world model sees {c.image_keys}")
            shape = self.images[key].shape[1:]
            want = (c.context, c.image_size, c.image_size, 3)
            if shape != want:
                raise ValueError(f"start frames {key} are {shape}; the world model needs {want}")
        if self.state.shape[1:] != (c.context, c.state_dim):
            raise ValueError(
                f"start states are {self.state.shape[1:]}; "
                f"the model needs {(c.context, c.state_dim)}"
            )


class WorldModelEnv:
    """B imagined episodes in lockstep; see the module docstring for the protocol.

    Args:
        model: any `WorldModel`.
        starts: where episodes begin.
        num_envs: B.
        horizon: steps after which an episode is truncated.
        success_threshold: an episode terminates (successfully) once the success head's
            probability exceeds this; the reward of that step is 1 (binary reward, the
            recipe World-Gymnast and WMPO use), else 0.
        device: where the model runs.
        reward_model: a separate success classifier (`world_models.reward_model`) to judge
            the imagined frames instead of the dynamics' own heads: an episode succeeds once
            the clip of its last frames passes the classifier's threshold (after its
            `min_step`) and otherwise runs to the horizon.
        reward_threshold: the reward model's threshold on imagined clips (None: its own,
            chosen on real frames); above 1, no episode ends early and each is scored to its
            end (calibration, benchmarks).
    """

    def __init__(
        self,
        model: WorldModel,
        starts: StartBank,
        num_envs: int,
        horizon: int = 100,
        success_threshold: float = 0.5,
        device: str = "cpu",
        reward_model=None,
        reward_threshold: float | None = None,
    ):
        import gymnasium as gym

        starts.check(model)
        if reward_model is not None:
            check_reward_model(reward_model.config, model.config)
        elif not model.config.success_head:
            raise ValueError("this world model has no success head: it cannot give rewards")
        self.reward_model = reward_model.to(device).eval() if reward_model is not None else None
        # the reward model's threshold on imagined clips: its own (chosen on real frames)
        # unless a caller matches it to the policy's real success (embodied.rl.calibration)
        own = reward_model.config.threshold if reward_model else None
        self.reward_threshold = own if reward_threshold is None else reward_threshold
        self.model = model.to(device).eval()
        self.starts, self.num_envs, self.horizon = starts, num_envs, horizon
        self.threshold, self.device = success_threshold, device
        c = model.config
        size = c.image_size
        self.single_observation_space = gym.spaces.Dict(
            {
                **{k: gym.spaces.Box(0, 255, (size, size, 3), np.uint8) for k in c.image_keys},
                STATE: gym.spaces.Box(-np.inf, np.inf, (c.state_dim,), np.float32),
                TASK: gym.spaces.Text(max_length=256),
            }
        )
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (c.action_dim,), np.float32)
        self._rng = np.random.default_rng()
        self._carry = None

    def reset(self, seed: int | None = None, options: dict | None = None):
        """Start B episodes. `options["starts"]` picks start indices (e.g. G copies of one
        start for GRPO); otherwise they are drawn at random (seeded by `seed`)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        chosen = (options or {}).get("starts")
        if chosen is None:
            chosen = self._rng.integers(len(self.starts), size=self.num_envs)
        chosen = np.asarray(chosen)
        if chosen.shape != (self.num_envs,):
            raise ValueError(f"options['starts'] must hold {self.num_envs} start indices")
        self.start_index = chosen
        context = {
            k: torch.from_numpy(v[chosen]).to(self.device).movedim(-1, -3).float() / 255.0
            for k, v in self.starts.images.items()
            if k in self.model.config.image_keys
        }
        context[STATE] = torch.from_numpy(self.starts.state[chosen]).to(self.device)
        self.instructions = [self.starts.instructions[i] for i in chosen]
        context[TASK] = self.instructions
        with torch.no_grad():
            self._carry = self.model.start(context)
        self._obs = {k: self.starts.images[k][chosen, -1] for k in self.model.config.image_keys}
        self._obs[STATE] = self.starts.state[chosen, -1].astype(np.float32)
        self._obs[TASK] = list(self.instructions)
        if self.reward_model is not None:  # the judged clips start with the real context
            clip = self.reward_model.config.clip
            self._clips = {}
            for k in self.reward_model.config.image_keys:
                frames = torch.from_numpy(self.starts.images[k][chosen]).movedim(-1, -3) / 255.0
                pad = frames[:, :1].expand(-1, max(0, clip - frames.shape[1]), -1, -1, -1)
                self._clips[k] = torch.cat([pad, frames], dim=1)[:, -clip:].to(self.device)
        self.steps = np.zeros(self.num_envs, dtype=np.int64)
        self.finished = np.zeros(self.num_envs, dtype=bool)
        self._terminated = np.zeros(self.num_envs, dtype=bool)
        self._truncated = np.zeros(self.num_envs, dtype=bool)
        return self._observation(), {"start_index": chosen}

    @torch.no_grad()
    def step(self, actions: np.ndarray):
        """Advance every unfinished episode by one action (B, A) or a chunk (B, n, A); n
        must be a multiple of the model's `frame_stride`, whose steps it is fed in.

        Returns (obs, reward (B,), terminated (B,), truncated (B,), info) where reward is 1
        on the step an episode is judged successful, the flags stay set once an episode has
        ended (so `(terminated | truncated).all()` says the batch is over), and info holds
        the success and episode-end probabilities of the last step and the `steps` taken by
        each episode.
        """
        if self._carry is None:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim == 2:
            actions = actions[:, None]
        if actions.shape[0] != self.num_envs or actions.ndim != 3:
            raise ValueError(
                f"actions must be (B={self.num_envs}, A) or (B, n, A); got {actions.shape}"
            )
        stride = self.model.config.frame_stride
        if actions.shape[1] % stride:
            raise ValueError(
                f"this world model steps {stride} actions at a time (frame_stride); "
                f"got a chunk of {actions.shape[1]}"
            )
        actions = actions.reshape(self.num_envs, -1, stride, actions.shape[-1])
        self.model.check_action(torch.from_numpy(actions[:, 0]))
        reward = np.zeros(self.num_envs, dtype=np.float32)
        terminated, truncated = self._terminated, self._truncated
        success = np.zeros(self.num_envs, dtype=np.float32)
        done = np.zeros(self.num_envs, dtype=np.float32)
        for i in range(actions.shape[1]):
            active = ~self.finished
            if not active.any():
                break
            self._carry, pred = self.model.step(
                self._carry, torch.from_numpy(actions[:, i]).to(self.device)
            )
            success = pred.success.cpu().numpy()
            done = pred.done.cpu().numpy()
            for k, img in pred.images.items():
                frame = (img.movedim(-3, -1) * 255.0).round().clamp(0, 255).to(torch.uint8)
                self._obs[k][active] = frame.cpu().numpy()[active]
            self._obs[STATE][active] = pred.state.cpu().numpy()[active]
            self.steps[active] += stride
            threshold = self.threshold
            if self.reward_model is not None:
                success, done = self._judge(), np.zeros(self.num_envs, dtype=np.float32)
                c = self.reward_model.config
                threshold = self.reward_threshold
                success = np.where(self.steps >= c.min_step, success, 0.0)
            won = active & (success > threshold)
            reward[won] = 1.0
            terminated |= won
            ended = active & ~won & (done > self.threshold)
            terminated |= ended
            truncated |= active & ~won & ~ended & (self.steps >= self.horizon)
            self.finished |= terminated | truncated
        info = {"success_prob": success, "done_prob": done, "steps": self.steps.copy()}
        return self._observation(), reward, terminated.copy(), truncated.copy(), info

    def _judge(self) -> np.ndarray:
        """The reward model's success probability for each episode's latest clip."""
        for k, clip in self._clips.items():
            frame = torch.from_numpy(self._obs[k]).to(self.device).movedim(-1, -3) / 255.0
            self._clips[k] = torch.cat([clip[:, 1:], frame[:, None]], dim=1)
        return self.reward_model.probability(self._clips, self.instructions).cpu().numpy()

    def _observation(self) -> dict:
        obs = {k: v.copy() for k, v in self._obs.items() if k != TASK}
        obs[TASK] = list(self._obs[TASK])
        return obs


def check_reward_model(reward: Any, world: Any) -> None:
    """Fail early when a reward model cannot judge this world model's imagined frames."""
    missing = sorted(set(reward.image_keys) - set(world.image_keys))
    if missing:
        raise ValueError(f"the reward model judges cameras {missing} the world model does not "
                         f"predict ({sorted(world.image_keys)})")  # fmt: skip
    if reward.image_size != world.image_size:
        raise ValueError(f"the reward model reads {reward.image_size}px frames; the world "
                         f"model predicts {world.image_size}px")  # fmt: skip
    if reward.frame_stride != world.frame_stride:
        raise ValueError(
            f"the reward model's clips are {reward.frame_stride} steps apart; the world model "
            f"steps {world.frame_stride} at a time (frame_stride)"
        )
