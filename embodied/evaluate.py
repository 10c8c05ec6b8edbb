"""`embodied eval`: a policy closed-loop in the MuJoCo tasks.

Episode i runs with seed `eval.seed + i` and, for tasks with several instructions, the
instructions in turn, so two policies evaluated with the same settings face the same start
states. Writes `summary.json` (success rate with a Wilson 95 % interval, per task, and for
tasks with several instructions how often the goal of the given text was reached),
`episodes.jsonl` (seed, instruction, outcome, goals reached: enough to replay any episode
with `env.reset(seed=..., options={"task": ...})`) and mp4 videos of the first episodes.
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodied.refs import PolicyRef
from embodied.stats import success_summary
from embodied.types import IMAGE_PREFIX, STATE, TASK


@dataclass
class EnvSettings:
    """Attributes:
    task: comma-separated task names.
    shuffle_instructions: give the policy a wrong instruction of the same scene (the env
        still judges the true one): measures whether the policy reads the text.
    """

    task: str = "lift"
    shuffle_instructions: bool = False


@dataclass
class EvalSettings:
    """Attributes:
    n_episodes: episodes per task.
    seed: seed of the first episode.
    videos: episodes per task recorded as mp4 (the first ones).
    workers: Ray actors to spread episodes over (0 or 1: in this process).
    n_action_steps: actions of each predicted chunk executed before re-planning (0: the
        policy's own setting).
    """

    n_episodes: int = 50
    seed: int = 100_000
    videos: int = 2
    workers: int = 0
    n_action_steps: int = 0


@dataclass
class EvalConfig:
    """Attributes:
    policy: --policy.path=CKPT.
    env: which tasks.
    eval: how many episodes, from which seed, how many videos.
    output_dir: where summary.json, episodes.jsonl and videos/ go.
    ray_address: an existing Ray cluster for the workers; empty starts a local one.
    """

    policy: PolicyRef = field(default_factory=PolicyRef)
    env: EnvSettings = field(default_factory=EnvSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    output_dir: str = ""
    ray_address: str = ""


def observation_batch(obs: dict, image_keys: list[str], task: str) -> dict:
    """An env observation as an unbatched LeRobot sample: float CHW images in [0, 1]."""
    import torch

    batch = {k: torch.from_numpy(obs[k]).permute(2, 0, 1).float().div_(255.0) for k in image_keys}
    batch[STATE] = torch.from_numpy(obs[STATE])
    batch[TASK] = task
    return batch


def run_episode(env, policy, pre, post, seed: int, instruction: str, given: str, record: bool):
    """One closed-loop episode; returns (success, length, goals achieved at any step, frames)."""
    import torch

    image_keys = sorted(policy.config.image_features)
    obs, _ = env.reset(seed=seed, options={"task": instruction})
    policy.reset()
    frames, achieved = [], set()
    while True:
        if record:
            frames.append(np.concatenate([obs[k] for k in image_keys], axis=1))
        with torch.no_grad():
            action = post(policy.select_action(pre(observation_batch(obs, image_keys, given))))
        obs, _, terminated, truncated, info = env.step(action[0].numpy())
        achieved.update(info["achieved"])
        if terminated or truncated:
            return bool(info["is_success"]), env.elapsed_steps, sorted(achieved), frames


def _env_for(task: str, policy) -> Any:
    """The task's env with the policy's cameras and image size, after checking they fit."""
    from envs.robosuite_env import ACTION_DIM, make_env

    keys = sorted(policy.config.image_features)
    size = policy.config.image_features[keys[0]].shape[-1]
    action_dim = policy.config.action_feature.shape[0]
    if action_dim != ACTION_DIM:
        raise ValueError(
            f"the policy outputs {action_dim}-D actions; task {task} takes {ACTION_DIM}"
        )
    cameras = tuple(k.removeprefix(IMAGE_PREFIX) for k in keys)
    return make_env(task, cameras=cameras, image_size=size)


def set_n_action_steps(config: Any, n: int) -> None:
    """Re-plan every `n` steps; the policy's queues take the new length at `reset()`."""
    longest = getattr(config, "chunk_size", None) or config.horizon - config.n_obs_steps + 1
    if not 1 <= n <= longest:
        raise ValueError(f"--eval.n_action_steps={n}: the policy predicts {longest} actions")
    if getattr(config, "temporal_ensemble_coeff", None) is not None and n != 1:
        raise ValueError("--eval.n_action_steps must be 1 for ACT with temporal ensembling")
    config.n_action_steps = n


class EpisodeRunner:
    """A policy and one env per task, running episodes on request: in this process, or as a
    long-lived Ray actor (each pays the imports and env builds once)."""

    def __init__(self, checkpoint: str, n_action_steps: int = 0):
        from embodied.policy_io import load_policy

        self.policy, self.pre, self.post = load_policy(checkpoint)
        if n_action_steps:
            set_n_action_steps(self.policy.config, n_action_steps)
        self.policy.eval()
        self.envs: dict[str, Any] = {}

    def run(self, job: dict) -> tuple[dict, list[np.ndarray]]:
        env = self.envs.get(job["task"]) or self.envs.setdefault(
            job["task"], _env_for(job["task"], self.policy)
        )
        success, length, achieved, frames = run_episode(
            env,
            self.policy,
            self.pre,
            self.post,
            job["seed"],
            job["instruction"],
            job["given_instruction"],
            job["record"],
        )
        row = {**job, "success": success, "length": length, "achieved": achieved}
        return row, frames


def episode_jobs(config: EvalConfig) -> list[dict]:
    """Every episode to run: seeds, instructions in turn, the instruction the policy is given."""
    from envs.tasks import parse_tasks

    jobs = []
    for spec in parse_tasks(config.env.task):
        for i in range(config.eval.n_episodes):
            instruction = spec.instructions[i % len(spec.instructions)]
            given = instruction
            if config.env.shuffle_instructions and len(spec.instructions) > 1:
                others = [x for x in spec.instructions if x != instruction]
                given = others[i % len(others)]
            jobs.append(
                {
                    "task": spec.name,
                    "index": i,
                    "seed": config.eval.seed + i,
                    "instruction": instruction,
                    "given_instruction": given,
                    "record": i < config.eval.videos,
                }
            )
    return jobs


def _run_jobs(config: EvalConfig, jobs: list[dict]):
    """Yield (row, frames) per episode, from this process or from Ray actors."""
    if config.eval.workers <= 1:
        runner = EpisodeRunner(config.policy.path, config.eval.n_action_steps)
        yield from map(runner.run, jobs)
        return
    import ray
    from ray.util import ActorPool

    from embodied.ray_utils import connect

    connect(config.ray_address, num_cpus=config.eval.workers)
    actor = ray.remote(EpisodeRunner).options(
        max_restarts=2, max_task_retries=2, runtime_env={"env_vars": {"MUJOCO_GL": "egl"}}
    )
    args = (config.policy.path, config.eval.n_action_steps)
    pool = ActorPool([actor.remote(*args) for _ in range(config.eval.workers)])
    yield from pool.map_unordered(lambda a, job: a.run.remote(job), jobs)


def evaluate(config: EvalConfig) -> dict:
    from tqdm import tqdm

    from embodied.policy_io import check_checkpoint
    from embodied.video import write_mp4

    if not config.output_dir:
        raise ValueError("eval needs --output_dir=DIR")
    check_checkpoint(Path(config.policy.path))
    jobs = episode_jobs(config)
    out = Path(config.output_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    records = []
    start = time.perf_counter()
    for row, frames in tqdm(_run_jobs(config, jobs), total=len(jobs), desc="eval", unit="ep"):
        if row.pop("record"):
            video = out / "videos" / f"{row['task']}_{row['index']:03d}.mp4"
            write_mp4(video, frames)
            row["video"] = str(video.relative_to(out))
        records.append(row)
    records.sort(key=lambda r: (r["task"], r["index"]))
    outcomes: dict[str, list[bool]] = {}
    for row in records:
        outcomes.setdefault(row["task"], []).append(row["success"])
    summary = success_summary([s for v in outcomes.values() for s in v])
    summary["per_task"] = {task: success_summary(v) for task, v in outcomes.items()}
    for task, text in instruction_following(records).items():
        summary["per_task"][task]["instruction_following"] = text
    summary["mean_length"] = float(np.mean([r["length"] for r in records]))
    summary["wall_s"] = time.perf_counter() - start
    summary["policy"] = str(config.policy.path)
    with open(out / "episodes.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _print_table(summary)
    return summary


def instruction_following(records: list[dict]) -> dict[str, dict]:
    """For tasks with several instructions: in how many episodes the policy reached the goal
    of the text it was given (`given_goal`) and a goal it was not given (`other_goal`).

    With `--env.shuffle_instructions` the given text names the wrong goal, so a policy that
    reads it scores a high `given_goal` and a low success; one that ignores it scores the
    same either way."""
    by_task: dict[str, list[dict]] = {}
    for row in records:
        by_task.setdefault(row["task"], []).append(row)
    out = {}
    for task, rows in by_task.items():
        if len({r["instruction"] for r in rows}) < 2:
            continue
        given = [r["given_instruction"] in r["achieved"] for r in rows]
        other = [any(a != r["given_instruction"] for a in r["achieved"]) for r in rows]
        out[task] = {"given_goal": success_summary(given), "other_goal": success_summary(other)}
    return out


def _print_table(summary: dict) -> None:
    print(f"\n{'task':<16} {'success':>8} {'95% CI':>16} {'episodes':>9}")
    for task, s in summary["per_task"].items():
        ci = f"[{s['ci_low']:.0%}, {s['ci_high']:.0%}]"
        print(f"{task:<16} {s['success_rate']:>8.0%} {ci:>16} {s['episodes']:>9}")
        for name, rate in s.get("instruction_following", {}).items():
            ci = f"[{rate['ci_low']:.0%}, {rate['ci_high']:.0%}]"
            print(f"  {name:<14} {rate['success_rate']:>8.0%} {ci:>16} {rate['episodes']:>9}")
