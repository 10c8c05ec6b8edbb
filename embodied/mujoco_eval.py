"""A policy closed-loop in the MuJoCo tasks: the evaluation `embodied eval` runs and RL's
periodic checks run, through the one rollout driver.

Episode i of a task runs with seed `eval.seed + i` and, for tasks with several
instructions, the instructions in turn, so two policies evaluated with the same settings
face the same start states. Episodes run `batch_size` at a time in lockstep
(`envs.batched.BatchedTaskEnv`, one batched policy forward per step); a batch is one task
for a worker, so results do not depend on how many workers there are.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embodied.ray_utils import RaySettings
from embodied.rollouts import Callback, Step
from embodied.stats import success_summary
from embodied.types import UserInputError


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
    batch_size: episodes run in lockstep by one worker (one policy forward for all).
    n_action_steps: actions of each predicted chunk executed before re-planning (0: the
        policy's own setting).
    """

    n_episodes: int = 50
    seed: int = 100_000
    videos: int = 2
    batch_size: int = 10
    n_action_steps: int = 0


def episode_jobs(env: EnvSettings, settings: EvalSettings) -> list[list[dict]]:
    """Every episode to run (seed, instruction in turn, the instruction the policy is
    given), in batches of one task each."""
    from envs.tasks import parse_tasks

    batches = []
    for spec in parse_tasks(env.task):
        jobs = []
        for i in range(settings.n_episodes):
            instruction = spec.instructions[i % len(spec.instructions)]
            given = instruction
            if env.shuffle_instructions and len(spec.instructions) > 1:
                others = [x for x in spec.instructions if x != instruction]
                given = others[i % len(others)]
            jobs.append({"task": spec.name, "index": i, "seed": settings.seed + i,
                         "instruction": instruction, "given_instruction": given,
                         "record": i < settings.videos})  # fmt: skip
        size = max(1, settings.batch_size)
        batches += [jobs[i : i + size] for i in range(0, len(jobs), size)]
    return batches


def set_n_action_steps(config: Any, n: int) -> None:
    """Re-plan every `n` steps; the policy's queues take the new length at `reset()`."""
    longest = getattr(config, "chunk_size", None) or config.horizon - config.n_obs_steps + 1
    if not 1 <= n <= longest:
        raise UserInputError(f"--eval.n_action_steps={n}: the policy predicts {longest} actions")
    if getattr(config, "temporal_ensemble_coeff", None) is not None and n != 1:
        raise UserInputError("--eval.n_action_steps must be 1 for ACT with temporal ensembling")
    config.n_action_steps = n


class _Videos(Callback):
    """The policy's cameras side by side, for the episodes to record, while they run."""

    def __init__(self, keys: list[str], record: list[bool]):
        self.keys, self.record = keys, record
        self.frames: list[list[np.ndarray]] = [[] for _ in record]

    def _add(self, obs: dict, alive: np.ndarray) -> None:
        for b in np.flatnonzero(np.asarray(self.record) & alive):
            self.frames[b].append(np.concatenate([obs[k][b] for k in self.keys], axis=1))

    def on_reset(self, obs: dict, info: dict) -> None:
        self._add(obs, np.ones(len(self.record), dtype=bool))

    def on_step(self, step: Step) -> None:
        self._add(step.next_obs, ~(step.terminated | step.truncated))


class EpisodeRunner:
    """A policy and batched envs per task, running batches of episodes on request: in this
    process, or as a long-lived Ray actor (each pays the imports and env builds once).
    `placed`: an actor, computing on the GPU Ray gave it (`--ray.gpus_per_worker`), if any."""

    def __init__(self, checkpoint: str, n_action_steps: int = 0, placed: bool = False):
        from embodied.obs_spec import env_settings
        from embodied.policy_io import load_policy
        from embodied.ray_utils import placed_device

        device = placed_device() if placed else "cpu"
        self.policy, self.pre, self.post = load_policy(checkpoint, device)
        if n_action_steps:
            set_n_action_steps(self.policy.config, n_action_steps)
        self.policy.eval()
        self.keys = sorted(self.policy.config.image_features)
        self.settings = env_settings(self.policy.config)  # refused here, before any episode
        self.envs: dict[tuple[str, int], Any] = {}

    def _env(self, task: str, size: int) -> Any:
        """The task's batched env observing as the policy was trained (`obs_spec`)."""
        from envs.batched import BatchedTaskEnv

        if (task, size) not in self.envs:
            self.envs[(task, size)] = BatchedTaskEnv(task, size, **self.settings)
        return self.envs[(task, size)]

    def run(self, jobs: list[dict]) -> list[tuple[dict, list[np.ndarray]]]:
        """One batch of episodes of one task: (row, video frames) per episode."""
        from embodied.acting import PolicyActor
        from embodied.rollouts import rollout

        env = self._env(jobs[0]["task"], len(jobs))
        given = [job["given_instruction"] for job in jobs]
        # the VLA executes whole chunks, so cameras render only where it re-plans; a batch
        # with a video keeps every frame
        chunked = self.policy.config.type == "embodied_vla" and not any(j["record"] for j in jobs)
        actor = PolicyActor(self.policy, self.pre, self.post, instructions=given, chunked=chunked)
        videos = _Videos(self.keys, [job["record"] for job in jobs])
        options = {"seeds": [j["seed"] for j in jobs], "tasks": [j["instruction"] for j in jobs]}
        result = rollout(env, actor, options=options, callbacks=[videos])
        info = result.info
        return [
            ({**job, "success": bool(info["is_success"][b]), "length": int(info["steps"][b]),
              "achieved": info["achieved"][b]}, videos.frames[b])
            for b, job in enumerate(jobs)
        ]  # fmt: skip


def run_episodes(checkpoint: str, batches: list[list[dict]], n_action_steps: int,
                 ray: RaySettings):  # fmt: skip
    """Yield (row, frames) per episode, from this process or from Ray actors."""
    if not ray.on_cluster:
        runner = EpisodeRunner(checkpoint, n_action_steps)
        for batch in batches:
            yield from runner.run(batch)
        return
    from ray.util import ActorPool

    from embodied.ray_utils import actors

    pool = ActorPool(actors(EpisodeRunner, ray, checkpoint, n_action_steps, True, restarts=2,
                            reads={"--policy.path": checkpoint}))  # fmt: skip
    for results in pool.map_unordered(lambda a, batch: a.run.remote(batch), batches):
        yield from results


def summarize(records: list[dict]) -> dict:
    """Success with a Wilson 95 % interval, overall and per task, with instruction following
    for tasks with several instructions."""
    outcomes: dict[str, list[bool]] = {}
    for row in records:
        outcomes.setdefault(row["task"], []).append(row["success"])
    summary = success_summary([s for v in outcomes.values() for s in v])
    summary["per_task"] = {task: success_summary(v) for task, v in outcomes.items()}
    for task, text in instruction_following(records).items():
        summary["per_task"][task]["instruction_following"] = text
    summary["mean_length"] = float(np.mean([r["length"] for r in records]))
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


def write_results(out: Path, records: list[dict], summary: dict) -> None:
    """`episodes.jsonl` and `summary.json`, each written whole under a temporary name."""
    from embodied.files import write_text_atomically

    lines = "".join(json.dumps(r) + "\n" for r in records)
    write_text_atomically(out / "episodes.jsonl", lines)
    write_text_atomically(out / "summary.json", json.dumps(summary, indent=2))


def evaluate_policy(policy_path: str, env: EnvSettings, settings: EvalSettings, out: Path,
                    ray: RaySettings | None = None) -> dict:  # fmt: skip
    """Run every episode, write videos, `episodes.jsonl` and `summary.json` under `out`, and
    return the summary."""
    from tqdm import tqdm

    from embodied.policy_io import check_checkpoint
    from embodied.video import write_mp4

    check_checkpoint(Path(policy_path))
    batches = episode_jobs(env, settings)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    records, start = [], time.perf_counter()
    episodes = run_episodes(policy_path, batches, settings.n_action_steps, ray or RaySettings())
    for row, frames in tqdm(episodes, total=sum(map(len, batches)), desc="eval", unit="ep"):
        if row.pop("record"):
            video = out / "videos" / f"{row['task']}_{row['index']:03d}.mp4"
            write_mp4(video, frames)
            row["video"] = str(video.relative_to(out))
        records.append(row)
    records.sort(key=lambda r: (r["task"], r["index"]))
    summary = summarize(records)
    summary.update(wall_s=time.perf_counter() - start, policy=str(policy_path))
    write_results(out, records, summary)
    return summary
