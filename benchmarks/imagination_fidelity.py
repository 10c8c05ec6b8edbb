"""What RL in the world model learns from, checked against MuJoCo on a finished run, for
the run's world model and reward model as trained and after each of its refreshes:

- replay AUROC: the run's real episodes (the data's, and the policy's own recorded by the
  refreshes, each labelled by MuJoCo) replayed open-loop in the world model from their first
  frames with their recorded actions; each scored by the reward model's best clip. How well
  imagined scores rank real successes above real failures (0.5: not at all).
- closed-loop imagined success of the pretrained policy (`--starts` x `--group` episodes
  from the data's start frames, sampling at RL's temperature) at the reward model's own
  threshold, next to the same policy's MuJoCo success (the pretrained evaluation), and the
  imagined state those episodes go through (its mean per model step, in the JSON): where a
  refreshed model stops the arm short of the object, the policy never grasps there.

RL can only use a world model that does both: ranks replays well, and imagines the policy
near its real success. One that ranks replays well but imagines the policy failing everywhere
gives GRPO no mixed groups.
Run (after the quickstart): .venv/bin/python -m benchmarks.imagination_fidelity --json=fid.json
"""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import BenchmarkConfig, finished_run_finetune, parse, print_table, write_json
from embodied.config import ConfigError


@dataclass
class ImaginationFidelityConfig(BenchmarkConfig):
    """Attributes (besides the shared ones in BenchmarkConfig):
    run: a finished pipeline run (its finetune folder says which models and data it used).
    starts: start frames of the closed-loop episodes.
    group: episodes per start frame.
    """

    run: str = "runs/quickstart"
    starts: int = 8
    group: int = 8


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """The probability that a random success scores above a random failure (ties half)."""
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return None
    return float(((pos[:, None] > neg) + 0.5 * (pos[:, None] == neg)).mean())


def replay_scores(world, reward, dataset) -> tuple[np.ndarray, np.ndarray]:
    from embodied.imagination import ScoresWhileRecorded, recorded_actions, replay_recorded
    from embodied.types import SUCCESS

    episodes = sorted(np.unique(np.asarray(dataset.arrays["episode_index"])).tolist())
    _, lengths, _ = recorded_actions(dataset, episodes, world.config.frame_stride)
    scores = ScoresWhileRecorded(lengths)
    _, _, rows = replay_recorded(
        world, dataset, episodes, callbacks=[scores], reward_model=reward, reward_threshold=2.0
    )  # nothing ends early: scored to its end
    labels = np.asarray(dataset.arrays[SUCCESS]).reshape(-1)
    return scores.best, np.array([labels[r].any() for r in rows])


def closed_loop(world, reward, bank, policy, finetune: dict, args) -> dict:
    """The policy imagined from the data's start frames: its success at the reward model's
    threshold, and its mean imagined state per model step."""
    import torch

    from embodied.acting import ChunkSampler
    from embodied.imagination import Observations, sample_groups
    from embodied.rl.calibration import BestScores
    from embodied.types import STATE
    from world_models.env import WorldModelEnv

    n = args.starts * args.group
    env = WorldModelEnv(world, bank, n, horizon=finetune["horizon"], reward_model=reward,
                        reward_threshold=2.0)  # fmt: skip
    steps = finetune["n_action_steps"] or policy[0].config.n_action_steps
    actor = ChunkSampler(*policy, steps, finetune["algo"]["temperature"],
                         torch.Generator().manual_seed(0))  # fmt: skip
    best, seen = BestScores(), Observations([STATE])
    sample_groups(env, actor, args.starts, args.group, 0, [best, seen])
    state = seen.stacked()[STATE].mean(axis=1)  # (T, state_dim)
    return {"success": float((best.best > reward.config.threshold).mean()),
            "mean_state_per_step": np.round(state, 4).tolist()}  # fmt: skip


def model_pairs(run: Path, finetune: dict) -> list[tuple[str, str, str]]:
    """(name, world model, reward model): as trained, then after each refresh."""
    from embodied.training import MODEL_DIR, last_checkpoint

    pairs = [("as trained", finetune["world_model"]["path"], finetune["reward_model"]["path"])]
    for folder in sorted((run / "finetune" / "world_models").glob("[0-9]*")):
        reward = last_checkpoint(run / "finetune" / "reward_models" / folder.name)
        reward_path = str(reward / MODEL_DIR) if reward else pairs[-1][2]
        name = f"refreshed at {int(folder.name)}"
        pairs.append((name, str(last_checkpoint(folder) / MODEL_DIR), reward_path))
    return pairs


def measure(run: Path, finetune: dict, args) -> dict:
    """The figures of every pair of models on the run's datasets."""
    from embodied.data.dataset import CachedDataset
    from embodied.data.source import DatasetConfig
    from embodied.policy_io import load_policy
    from world_models.env import StartBank
    from world_models.registry import load_world_model
    from world_models.reward_model import load_reward_model

    refreshes = sorted(str(r) for r in (run / "finetune" / "refresh").glob("[0-9]*"))
    roots = [finetune["dataset"]["root"], *refreshes]
    datasets = {Path(r).name: CachedDataset.open(DatasetConfig(root=r)) for r in roots}
    policy = load_policy(finetune["policy"]["path"])
    figures = {}
    for name, world_path, reward_path in model_pairs(run, finetune):
        world, reward = load_world_model(world_path), load_reward_model(reward_path)
        bank = StartBank.from_dataset(datasets[Path(roots[0]).name], world.config)
        imagined = closed_loop(world, reward, bank, policy, finetune, args)
        replay = {}
        for data_name, dataset in datasets.items():
            scores, labels = replay_scores(world, reward, dataset)
            replay[data_name] = {"auroc": auroc(scores, labels), "episodes": len(labels),
                                 "successes": int(labels.sum())}  # fmt: skip
        figures[name] = {"closed_loop_success": imagined["success"], "replay": replay,
                         "closed_loop_mean_state": imagined["mean_state_per_step"]}  # fmt: skip
    return figures


def main() -> None:
    try:
        args = parse(ImaginationFidelityConfig, __doc__)
    except ConfigError as err:
        sys.exit(f"imagination_fidelity: {err}")
    run = Path(args.run)
    models = measure(run, finished_run_finetune(args.run, "imagination_fidelity"), args)
    real = json.loads((run / "eval_pretrained" / "summary.json").read_text())["success_rate"]
    print(f"pretrained policy in MuJoCo: {real:.0%}")
    names = list(next(iter(models.values()))["replay"])
    rows = [[name, f"{m['closed_loop_success']:.0%}",
             *[f"{v['auroc']:.2f}" if v["auroc"] is not None else "-"
               for v in m["replay"].values()]] for name, m in models.items()]  # fmt: skip
    print_table(["models", "imagined success (closed loop)",
                 *[f"replay AUROC {d}" for d in names]], rows)  # fmt: skip
    write_json(args.json, {"pretrained_mujoco_success": real, "models": models})


if __name__ == "__main__":
    main()
