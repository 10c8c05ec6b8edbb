"""The world model as an evaluator: does its imagined success rank policies as MuJoCo does?

Every policy checkpoint a pipeline run produced (the pretrained policy's saved steps, the
RL checkpoints its MuJoCo checks judged, RL in MuJoCo's result) is imagined closed-loop in
the world model and judged by the reward model, acting as evaluation acts (the mean chunk,
temperature 0), and set beside its MuJoCo success. Checkpoints with the same weights (the
check at iteration 0 is the pretrained policy) are one point, their MuJoCo episodes pooled;
a checkpoint no evaluation judged is evaluated in MuJoCo here (`eval_episodes`, the checks'
seeds). The figure is Pearson's r over the points (`evaluator_r` in the report), with
Spearman's rank correlation beside it; the pretrained policy's own pair is the calibration
figure (imagined minus MuJoCo success).
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from embodied.data.source import DatasetConfig
from embodied.refs import RewardModelRef, WorldModelRef
from embodied.rl.mujoco_check import CHECKS_DIR

RESULT = "evaluator.json"
# where a pipeline run keeps its MuJoCo evaluations (summary.json + episodes.jsonl each)
EVALUATIONS = ("eval_pretrained", "eval_finetuned", "eval_finetuned_mujoco",
               f"finetune/{CHECKS_DIR}/*", "evaluator/mujoco/*")  # fmt: skip


@dataclass
class EvaluatorConfig:
    """Attributes:
    run_dir: the pipeline run whose checkpoints are judged.
    world_model, reward_model: the models that imagine and judge (the run's trained ones).
    dataset: start frames of the imagined episodes.
    episodes: imagined episodes per checkpoint.
    horizon: their length in environment steps.
    temperature: sampling temperature (0: the mean chunk, as MuJoCo evaluation acts).
    eval_task, eval_episodes: MuJoCo evaluation of checkpoints no evaluation judged.
    seed: seeds the start frames (the same for every checkpoint).
    output_dir: evaluator.json (and mujoco/ evaluations) go here.
    """

    run_dir: str = ""
    world_model: WorldModelRef = field(default_factory=WorldModelRef)
    reward_model: RewardModelRef = field(default_factory=RewardModelRef)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    episodes: int = 64
    horizon: int = 150
    temperature: float = 0.0
    eval_task: str = "lift"
    eval_episodes: int = 10
    seed: int = 0
    output_dir: str = ""

    # the pipeline fills these from its run; they are not flags of its --evaluator section
    framework_fields: ClassVar[tuple[str, ...]] = (
        "run_dir", "world_model", "reward_model", "dataset", "horizon", "eval_task",
        "eval_episodes", "output_dir",
    )  # fmt: skip


def weights_id(checkpoint: Path) -> str:
    """The checkpoint's weights, by content: copies of one policy are one point."""
    digest = hashlib.sha256((Path(checkpoint) / "model.safetensors").read_bytes())
    return digest.hexdigest()[:16]


def run_checkpoints(run: Path) -> list[Path]:
    """The policy checkpoints of a pipeline run, in the order they were made."""
    from embodied.training import MODEL_DIR

    pretrained = sorted((run / "policy" / "checkpoints").glob(f"*/{MODEL_DIR}"))
    checked = sorted((run / "finetune" / CHECKS_DIR).glob("*/policy"))
    baseline = sorted((run / "finetune_mujoco" / "checkpoints").glob(f"*/{MODEL_DIR}"))[-1:]
    return [*pretrained, *checked, *baseline]


def mujoco_outcomes(run: Path) -> dict[str, list[bool]]:
    """Every MuJoCo episode the run's evaluations ran, by the weights they judged."""
    outcomes: dict[str, list[bool]] = {}
    for pattern in EVALUATIONS:
        for folder in sorted(run.glob(pattern)):
            summary, episodes = folder / "summary.json", folder / "episodes.jsonl"
            if not (summary.is_file() and episodes.is_file()):
                continue
            policy = Path(json.loads(summary.read_text())["policy"])
            if not (policy / "model.safetensors").is_file():
                continue
            rows = [json.loads(x) for x in episodes.read_text().splitlines()]
            outcomes.setdefault(weights_id(policy), []).extend(r["success"] for r in rows)
    return outcomes


def correlations(imagined: list[float], real: list[float]) -> dict:
    """Pearson's r and Spearman's rho (None when either side does not vary)."""
    from scipy.stats import pearsonr, spearmanr

    a, b = np.asarray(imagined, float), np.asarray(real, float)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return {"pearson_r": None, "spearman_rho": None, "points": len(a)}
    return {"pearson_r": float(pearsonr(a, b)[0]), "spearman_rho": float(spearmanr(a, b)[0]),
            "points": len(a)}  # fmt: skip


def judge_checkpoints(config: EvaluatorConfig) -> Path:
    """Imagine every checkpoint of the run, pair it with its MuJoCo success, and write
    `evaluator.json` (points, correlations); returns its path."""
    from embodied.data.dataset import CachedDataset
    from embodied.files import write_text_atomically
    from embodied.imagination import imagine_policy
    from world_models.registry import load_world_model
    from world_models.reward_model import load_reward_model

    run, out = Path(config.run_dir), Path(config.output_dir)
    model = load_world_model(config.world_model.path).eval()
    reward = load_reward_model(config.reward_model.path) if config.reward_model.path else None
    dataset = CachedDataset.open(config.dataset)
    keys = {c: weights_id(c) for c in run_checkpoints(run)}  # each file hashed once
    _evaluate_unjudged(keys, config, out / "mujoco")
    outcomes = mujoco_outcomes(run)  # with those evaluations
    points, seen = [], set()
    for checkpoint, key in keys.items():
        if key in seen:
            continue
        seen.add(key)
        imagined = imagine_policy(model, dataset, str(checkpoint), config.episodes,
                                  config.horizon, config.temperature, 0.5, config.seed,
                                  reward)  # fmt: skip
        real = outcomes[key]
        points.append({"policy": str(checkpoint), "weights": key,
                       "imagined_success": imagined["success_rate"],
                       "mujoco_success": float(np.mean(real)),
                       "mujoco_episodes": len(real)})  # fmt: skip
        print(f"evaluator: {checkpoint}: imagined {imagined['success_rate']:.0%}, "
              f"MuJoCo {np.mean(real):.0%} of {len(real)}")  # fmt: skip
    figures = correlations([p["imagined_success"] for p in points],
                           [p["mujoco_success"] for p in points])  # fmt: skip
    result = {**figures, "calibration": _calibration(run, points),
              "temperature": config.temperature, "episodes": config.episodes,
              "checkpoints": points}  # fmt: skip
    write_text_atomically(out / RESULT, json.dumps(result, indent=2))
    return out / RESULT


def _calibration(run: Path, points: list[dict]) -> dict | None:
    """The pretrained policy's imagined and MuJoCo success, and the gap in points."""
    summary = run / "eval_pretrained" / "summary.json"
    if not summary.is_file():
        return None
    key = weights_id(Path(json.loads(summary.read_text())["policy"]))
    point = next((p for p in points if p["weights"] == key), None)
    if point is None:
        return None
    imagined, real = point["imagined_success"], point["mujoco_success"]
    return {"imagined": imagined, "mujoco": real, "gap_points": 100 * (imagined - real)}


def _evaluate_unjudged(keys: dict[Path, str], config: EvaluatorConfig, out: Path) -> None:
    """MuJoCo evaluations of the checkpoints (with their weights' keys) no evaluation of
    the run judged."""
    from embodied.mujoco_eval import EnvSettings, EvalSettings, evaluate_policy

    judged = set(mujoco_outcomes(Path(config.run_dir)))
    settings = EvalSettings(n_episodes=config.eval_episodes, videos=0)
    for i, (checkpoint, key) in enumerate(keys.items()):
        if key not in judged:
            evaluate_policy(str(checkpoint), EnvSettings(task=config.eval_task), settings,
                            out / f"{i:03d}")  # fmt: skip
            judged.add(key)
