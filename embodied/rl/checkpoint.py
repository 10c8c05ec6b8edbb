"""A fine-tune's checkpoint, in the training loop's layout (`checkpoints/<iteration>/
pretrained_model` is a LeRobot policy folder), so that a rerun with the same output_dir
resumes exactly. Besides the learner's policy, optimizer, RNG and algorithm state, it keeps
what the rollout workers imagine with (`models.json`): the models in use, which refreshes
change, and the last iteration whose refresh was due (a run skips the one after its last
iteration, and does it on resume when its iterations were raised)."""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from embodied.rl.rollout_worker import Models

MODELS_STATE = "models.json"  # in training_state


def save_run(out: Path, iteration: int, learner: Any, models: Models, refreshed: int) -> Path:
    """Write checkpoint `iteration` of the run in `out`; returns its folder."""
    from embodied.training import Trainable, save_checkpoint

    def extra(state: Path) -> None:
        learner.algorithm.save(state)
        saved = {**asdict(models), "refreshed": refreshed}
        (state / MODELS_STATE).write_text(json.dumps(saved))

    job = Trainable(learner.policy, learner.optimizer, None, 0, None, learner.save_policy)
    return save_checkpoint(out, iteration, job, extra=extra)


def load_run(checkpoint: Path, learner: Any) -> tuple[int, Models, int]:
    """Load `checkpoint` into the learner; returns (its iteration, the models in use, the
    last iteration whose refresh was due)."""
    from embodied.training import MODEL_DIR, STATE_DIR, Trainable, load_training_state

    state = checkpoint / STATE_DIR
    load_policy_into(learner, checkpoint / MODEL_DIR)
    learner.algorithm.load(state)
    job = Trainable(learner.policy, learner.optimizer, None, 0, None, None)
    load_training_state(job, state)
    saved = json.loads((state / MODELS_STATE).read_text())
    step = json.loads((state / "step.json").read_text())["step"]
    refreshed = saved.pop("refreshed", step)  # older runs refreshed after their last iteration
    return step, Models(**{**saved, "start_roots": tuple(saved["start_roots"])}), refreshed


def load_policy_into(learner: Any, folder: Path) -> None:
    """Put the policy saved in `folder` (a LeRobot policy folder) into the learner."""
    from embodied.policy_io import load_policy

    policy, _, _ = load_policy(folder, policy_type="embodied_vla")
    learner.policy.load_state_dict(policy.state_dict())
