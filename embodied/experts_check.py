"""`embodied experts`: how often each scripted expert succeeds, per task and instruction."""

import json
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm


@dataclass
class ExpertsCheckConfig:
    """Attributes:
    task: comma-separated task names; empty means every registered task.
    episodes: seeded episodes per task and instruction (seeds 0..episodes-1).
    noise_std: action noise added by the experts (0 = clean demonstrations).
    perturb_prob: chance per step of a random push the expert must recover from.
    workers: processes to spread the episodes over.
    json: where to write {task or task/instruction: success rate}; empty for none.
    """

    task: str = ""
    episodes: int = 50
    noise_std: float = 0.0
    perturb_prob: float = 0.0
    workers: int = 2
    json: str = ""


def _run(job: tuple[str, str, int, float, float]) -> tuple[str, str, bool, int]:
    task, instruction, seed, noise_std, perturb_prob = job
    from envs.experts import EXPERTS, ExpertConfig, expert_frames
    from envs.robosuite_env import make_env

    env = _ENVS.get(task) or _ENVS.setdefault(task, make_env(task, cameras=()))
    config = ExpertConfig(noise_std=noise_std, perturb_prob=perturb_prob)
    frames = list(expert_frames(env, EXPERTS[task], seed, instruction, config, success_hold=0))
    return task, instruction, frames[-1].success, len(frames)


_ENVS: dict = {}  # one env per task per worker process, reused across episodes


def check_experts(config: ExpertsCheckConfig) -> dict[str, float]:
    from envs.tasks import TASKS, parse_tasks

    specs = parse_tasks(config.task) if config.task else list(TASKS.values())
    jobs = [
        (spec.name, instruction, seed, config.noise_std, config.perturb_prob)
        for spec in specs
        for instruction in spec.instructions
        for seed in range(config.episodes)
    ]
    results: dict[str, list[bool]] = {}
    lengths: dict[str, list[int]] = {}
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(config.workers) as pool:
        for task, instruction, success, length in tqdm(
            pool.imap_unordered(_run, jobs, chunksize=4), total=len(jobs), desc="expert episodes"
        ):
            spec = TASKS[task]
            key = task if len(spec.instructions) == 1 else f"{task}/{instruction}"
            results.setdefault(key, []).append(success)
            lengths.setdefault(key, []).append(length)
    rates = {key: sum(v) / len(v) for key, v in sorted(results.items())}
    print(f"\n{'task / instruction':<52} {'success':>8} {'episodes':>9} {'mean len':>9}")
    for key, rate in rates.items():
        n = len(results[key])
        print(f"{key:<52} {rate:>8.1%} {n:>9} {sum(lengths[key]) / n:>9.1f}")
    if config.json:
        Path(config.json).parent.mkdir(parents=True, exist_ok=True)
        Path(config.json).write_text(json.dumps(rates, indent=2) + "\n")
    return rates
