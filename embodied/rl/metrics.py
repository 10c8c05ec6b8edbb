"""What a row of finetune's `metrics.jsonl` says about an iteration's episodes, and the
progress line printed from it.

RL in the world model logs `wm_success` (imagined success, as RL was rewarded); RL in
MuJoCo logs `sampled_mujoco_success` (the simulator's, while sampling). `env_steps` counts
the steps the episodes ran (imagined ones count their world model's env steps).
"""

import numpy as np

from embodied.stats import rates_by


def success_key(env: str) -> str:
    return "wm_success" if env == "world_model" else "sampled_mujoco_success"


def episode_figures(batches: list[dict], env: str) -> dict:
    """Success overall and per instruction, episodes, decisions and env steps."""
    success = np.concatenate([b["success"] for b in batches])
    instructions = np.concatenate([b["task"] for b in batches])
    key = success_key(env)
    return {
        key: float(success.mean()),
        f"{key}_by_instruction": rates_by(success, instructions),
        "episodes": len(success),
        "decisions": sum(int(b["alive"].sum()) for b in batches),
        "env_steps": int(sum(b["steps"].sum() for b in batches)),
    }


def progress_line(row: dict, total: int) -> str:
    text = f"finetune {row['iteration']}/{total}: "
    if "wm_success" in row:
        text += f"imagined success {row['wm_success']:.0%}"
    else:
        text += f"success in MuJoCo (sampling) {row['sampled_mujoco_success']:.0%}"
    if "mujoco_success" in row:
        text += f", MuJoCo success {row['mujoco_success']:.0%}"
    if "refresh_success" in row:
        text += f", refresh episodes' success {row['refresh_success']:.0%}"
    if row.get("refresh_wm_recall") is not None:
        text += f", refreshed model's recall of real successes {row['refresh_wm_recall']:.0%}"
    text += f", kept {row.get('kept_fraction', 0):.0%}"
    return text + f", rollout {row['time_rollout_s']:.1f}s, learn {row['time_learn_s']:.1f}s"
