"""Episodes imagined in a world model through the one rollout driver: the policy's groups
(what RL learns from and `eval-world-model --policy.path` reports), real episodes replayed
and judged as RL judges imagined ones, and real-versus-imagined videos."""

from pathlib import Path
from typing import Any

import numpy as np

from embodied.rollouts import Callback, Replay, Rollout, Step, rollout
from embodied.types import ACTION, SUCCESS


class Observations(Callback):
    """The observations each call acted on, per key: (T, B, ...)."""

    def __init__(self, keys: list[str]):
        self.keys = keys
        self.seen: dict[str, list] = {k: [] for k in keys}

    def on_step(self, step: Step) -> None:
        for key in self.keys:
            self.seen[key].append(step.obs[key])

    def stacked(self) -> dict[str, np.ndarray]:
        return {k: np.stack(v) for k, v in self.seen.items()}


def sample_groups(env: Any, actor: Any, starts: int, group_size: int, seed: int,
                  callbacks=()) -> tuple[Rollout, np.ndarray]:  # fmt: skip
    """`starts` start states drawn at random (seeded), each imagined `group_size` times with
    the (sampling) actor: (the rollout, the start index of each episode)."""
    chosen = np.random.default_rng(seed).integers(len(env.starts), size=starts)
    options = {"starts": np.repeat(chosen, group_size)}
    return rollout(env, actor, seed=seed, options=options, callbacks=callbacks), env.start_index


def imagine_policy(model: Any, dataset: Any, policy_path: str, episodes: int, horizon: int,
                   temperature: float, threshold: float, seed: int,
                   reward_model: Any = None) -> dict:  # fmt: skip
    """The policy imagined closed-loop from `episodes` random start frames of the dataset,
    sampled as RL's rollout workers sample, judged by the reward model (the world model's
    success head without one): its imagined success overall and per instruction."""
    import torch

    from embodied.acting import ChunkSampler
    from embodied.policy_io import load_policy
    from embodied.stats import rates_by
    from world_models.env import StartBank, WorldModelEnv

    policy, pre, post = load_policy(policy_path, policy_type="embodied_vla")
    policy.eval()
    bank = StartBank.from_dataset(dataset, model.config)
    env = WorldModelEnv(model, bank, episodes, horizon=horizon, success_threshold=threshold,
                        reward_model=reward_model)  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    actor = ChunkSampler(policy, pre, post, policy.config.n_action_steps, temperature, generator)
    result, _ = sample_groups(env, actor, episodes, 1, seed)
    success = result.returns > 0
    return {
        "episodes": len(success),
        "success_rate": float(success.mean()),
        "by_instruction": rates_by(success, np.array(result.instructions)),
        "temperature": temperature,
        "horizon": horizon,
    }


def recorded_actions(dataset: Any, episodes: list[int], stride: int):
    """The episodes' recorded actions, zero-padded to whole model steps: ((E, T, A), lengths)."""
    index, actions = np.asarray(dataset.arrays["episode_index"]), np.asarray(dataset.arrays[ACTION])
    rows = [np.flatnonzero(index == e) for e in episodes]
    lengths = np.array([len(r) for r in rows])
    padded = -(-lengths.max() // stride) * stride
    out = np.zeros((len(episodes), padded, actions.shape[1]), np.float32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = actions[r]
    return out, lengths, rows


def replay_recorded(model: Any, dataset: Any, episodes: list[int], record: bool = False,
                    callbacks=(), **env_args: Any) -> tuple[Rollout, np.ndarray, list]:  # fmt: skip
    """Replay whole episodes in the world model, batched in `WorldModelEnv` as RL imagines:
    from their real first frames, with their recorded actions (zeros past each one's end).
    `env_args` go to the env. Returns (the rollout, each episode's length, its rows)."""
    from world_models.env import StartBank, WorldModelEnv

    stride = model.config.frame_stride
    actions, lengths, rows = recorded_actions(dataset, episodes, stride)
    bank = StartBank.from_dataset(dataset, model.config, episodes)
    env = WorldModelEnv(model, bank, len(episodes), horizon=actions.shape[1], **env_args)
    result = rollout(env, Replay(actions, stride), options={"starts": np.arange(len(episodes))},
                     record=record, callbacks=callbacks)  # fmt: skip
    return result, lengths, rows


class ScoresWhileRecorded(Callback):
    """Each replayed episode's best success probability over the calls that began within
    its `lengths` (env steps it has recorded actions for): what a replay ranks episodes by."""

    def __init__(self, lengths: np.ndarray):
        self.lengths = lengths

    def on_reset(self, obs: dict, info: dict) -> None:
        self.best = np.zeros(len(self.lengths))

    def on_step(self, step: Step) -> None:
        recorded = step.info["steps"] - self.lengths < step.actions.shape[1]  # began in time
        self.best = np.maximum(self.best, np.where(recorded, step.info["success_prob"], 0.0))


def judge_episodes(model: Any, dataset: Any, episodes: list[int], threshold: float,
                   reward_model: Any = None) -> dict | None:  # fmt: skip
    """Replay whole episodes from their real start with their recorded actions, batched in
    `WorldModelEnv` as RL imagines; compare its success judgement (the reward model's, or
    the world model's own head) with MuJoCo's label."""
    from embodied.reward import agreement

    if SUCCESS not in dataset.arrays or not (reward_model or model.config.success_head):
        return None
    stride = model.config.frame_stride
    result, lengths, rows = replay_recorded(model, dataset, episodes, success_threshold=threshold,
                                            reward_model=reward_model)  # fmt: skip
    started = np.arange(len(result.rewards))[:, None] * stride  # env step of each call
    judged = ((result.rewards > 0) & (started < lengths)).any(0)  # no actions past its end
    labels = np.asarray(dataset.arrays[SUCCESS])
    return agreement(judged, np.array([labels[r].any() for r in rows]))


def real_vs_imagined_videos(model: Any, dataset: Any, episodes: list[int], out: Path) -> list:
    """Whole episodes imagined open-loop from their first frame with their recorded actions:
    real | imagined, cameras stacked, one frame per model step."""
    from embodied.video import write_mp4

    if not episodes:  # --videos=0
        return []
    c, s = model.config, model.config.frame_stride
    result, lengths, rows = replay_recorded(
        model, dataset, episodes, record=True, success_threshold=float("inf")
    )  # the whole episode
    real = dataset.with_deltas({})
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, ep in enumerate(episodes):
        frames = []
        for t in range(s, lengths[i], s):  # frame t of the episode, imagined at call t / s
            seen = real.batch(rows[i][t : t + 1])
            left = np.concatenate([_uint8(seen[k][0]) for k in c.image_keys], axis=0)
            right = np.concatenate([result.frames[k][t // s, i] for k in c.image_keys], axis=0)
            frames.append(np.concatenate([left, right], axis=1))
        paths.append(out / f"episode_{ep:03d}_real_vs_imagined.mp4")
        write_mp4(paths[-1], frames)
    return paths


def _uint8(chw) -> np.ndarray:
    """A float CHW frame in [0, 1] (a dataset batch's) as uint8 HWC."""
    return (chw.permute(1, 2, 0) * 255).round().clamp(0, 255).byte().numpy()
