"""The MuJoCo check of a fine-tune: the current policy's true success, on the same seeds
every time, logged next to imagined success so that reward hacking shows as the two
drifting apart (`embodied.rl.guards` reads both). The checked policy is kept
(`mujoco_checks/<iteration>/policy`): the gap guard goes back to it, and the evaluator
stage judges it."""

from pathlib import Path
from typing import Any

CHECKS_DIR = "mujoco_checks"


def checked_policy(out: Path, iteration: int) -> Path:
    """The policy folder the check after `iteration` saved."""
    return out / CHECKS_DIR / f"{iteration:05d}" / "policy"


def mujoco_check(learner: Any, config: Any, iteration: int, n_action_steps: int) -> dict:
    """Save the learner's policy and run `config.eval_episodes` in `config.eval_task`;
    returns the figures for finetune's metrics row."""
    from embodied.files import folder_written_atomically
    from embodied.mujoco_eval import EnvSettings, EvalSettings, evaluate_policy

    policy = checked_policy(Path(config.output_dir), iteration)
    with folder_written_atomically(policy) as tmp:
        learner.save_policy(tmp)
    settings = EvalSettings(n_episodes=config.eval_episodes, videos=0,
                            n_action_steps=n_action_steps)  # fmt: skip
    summary = evaluate_policy(str(policy), EnvSettings(task=config.eval_task), settings,
                              policy.parent)  # fmt: skip
    return {
        "mujoco_success": summary["success_rate"],
        "mujoco_episodes": summary["episodes"],
        "mujoco_success_by_task": {t: s["success_rate"] for t, s in summary["per_task"].items()},
    }
