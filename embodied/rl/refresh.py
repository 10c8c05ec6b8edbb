"""World-model refresh (as WMPO does): the policy's real episodes show the world model where
it is wrong.

RL finds the world model's blind spots: action sequences whose imagined frames the success
head scores as success though MuJoCo would not (reward hacking; in finetune's metrics,
imagined success rises while MuJoCo success does not). Every `every` iterations the current
policy runs `episodes` MuJoCo episodes per task, sampling at the RL temperature as it does in
imagination. They are written as a LeRobot dataset (`<output_dir>/refresh/<iteration>`,
successes and failures labelled by the simulator), and the world model is fine-tuned for
`steps` on batches that mix windows of every refresh so far with windows of the original
data (so it keeps what the experts showed), then saved to
`<output_dir>/world_models/<iteration>`, which the rollout workers load before their next
rollout.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embodied.files import folder_written_atomically
from embodied.types import IMAGE_PREFIX, PAD_SUFFIX, TASK

REFRESH_DIR = "refresh"
WORLD_MODELS_DIR = "world_models"
SUCCESS_HOLD = 10  # steps recorded after a success, so the data shows the finished state


@dataclass
class RefreshSettings:
    """Attributes:
    every: iterations between refreshes (0: never, the default).
    at_start: also refresh before the first iteration, on the pretrained policy's episodes
        (WMPO fits its world model to the starting policy's rollouts before RL): the
        success head then knows how this policy's attempts look when they fail.
    task: MuJoCo tasks to record in (empty: finetune's eval_task).
    episodes: episodes per task per refresh.
    steps: world-model gradient steps per refresh.
    batch_size: windows per step.
    new_fraction: share of each batch drawn from the refresh episodes; 0 (the default):
        their share of all windows, every window equally likely, as WMPO adds the policy's
        episodes to the data. A fixed 0.5 from a dozen mostly failed episodes made the
        success head pessimistic: replaying 18 real successful expert episodes in the
        benchmark's world model, it recognised 13 before such a refresh, 6 after it, and 18
        after a refresh weighted by share (which also judged 2 of 9 failures successes).
    lr: world-model learning rate (0: the one its training ended with).
    """

    every: int = 0
    at_start: bool = True
    task: str = ""
    episodes: int = 4
    steps: int = 100
    batch_size: int = 16
    new_fraction: float = 0.0
    lr: float = 0.0


def record_policy_episodes(root: Path, policy: Any, pre: Any, post: Any, tasks: str,
                           episodes: int, seed: int, n_action_steps: int, temperature: float,
                           image_keys: list[str], image_size: int) -> Path:  # fmt: skip
    """Run the policy in MuJoCo, `episodes` per task in lockstep, re-planning every
    `n_action_steps` and sampling chunks at `temperature` as it does in imagination, and
    record every camera in `image_keys` as a LeRobot dataset at `root` (through
    `write_dataset`, as collect). Episode i of the k-th task has seed `seed + 100_000 k + i`."""
    import copy

    import torch

    from embodied.acting import PolicyActor
    from embodied.data.record import EpisodeFrames, write_dataset
    from embodied.rollouts import rollout
    from envs.batched import BatchedTaskEnv
    from envs.tasks import parse_tasks

    specs = parse_tasks(tasks)
    cameras = tuple(k.removeprefix(IMAGE_PREFIX) for k in image_keys)
    policy = copy.deepcopy(policy).eval()  # re-plans at RL's rate; the learner's is untouched
    policy.config.n_action_steps = n_action_steps

    def stream():
        for k, spec in enumerate(specs):
            seeds = [seed + 100_000 * k + i for i in range(episodes)]
            instructions = [spec.instructions[i % len(spec.instructions)] for i in range(episodes)]
            env = BatchedTaskEnv(spec.name, episodes, success_hold=SUCCESS_HOLD,
                                 cameras=cameras, image_size=image_size)  # fmt: skip
            generator = torch.Generator().manual_seed(seeds[0])
            actor = PolicyActor(policy, pre, post, temperature=temperature, generator=generator)
            frames = EpisodeFrames()
            rollout(env, actor, options={"seeds": seeds, "tasks": instructions},
                    callbacks=[frames])  # fmt: skip
            env.close()
            for s, text, episode in zip(seeds, instructions, frames.episodes, strict=True):
                yield {"task": spec.name, "instruction": text, "seed": s}, episode

    return write_dataset(root, stream(), total=len(specs) * episodes,
                         repo_id="local/embodied_refresh", cameras=cameras,
                         image_size=image_size)  # fmt: skip


def refresh_world_model(
    model_path: str | Path,
    original: Any,
    refresh_roots: list[Path],
    settings: RefreshSettings,
    seed: int,
    out: Path,
    cache_dir: Path,
) -> tuple[Path, float]:
    """Fine-tune the world model at `model_path` on the original dataset (`DatasetConfig`,
    less its held-out episodes) mixed with the refresh datasets (their decoded frames cached
    in `cache_dir`); save it atomically to `out` and return (out, mean loss of the last
    quarter of the steps)."""
    import torch

    from embodied.data.dataset import CachedDataset
    from embodied.data.source import DatasetConfig, open_metadata
    from world_models.registry import load_world_model
    from world_models.windows import holdout_mask, window_deltas

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = load_world_model(model_path).train()
    meta = open_metadata(original)
    deltas = window_deltas(model.config, meta.fps)
    base = CachedDataset(meta, deltas, cache_dir=original.cache_dir or None)
    base_rows = np.flatnonzero(
        ~holdout_mask(np.asarray(base.arrays["episode_index"]), model.config.holdout_every)
    )
    new = [
        CachedDataset(open_metadata(DatasetConfig(root=str(r))), deltas, cache_dir=cache_dir)
        for r in refresh_roots
    ]
    sizes = np.array([len(d) for d in new], dtype=np.int64)
    share = settings.new_fraction or sizes.sum() / (sizes.sum() + len(base_rows))
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=settings.lr or model.config.lr * model.config.final_lr_fraction,
        weight_decay=model.config.weight_decay,
    )
    keys = [*deltas, *(k + PAD_SUFFIX for k in deltas), TASK]
    losses = []
    for step in range(settings.steps):
        n_new = rng.binomial(settings.batch_size, share) if len(new) else 0
        n_base = settings.batch_size - n_new
        parts = [base.batch(rng.choice(base_rows, n_base))] if n_base else []
        picks = rng.integers(sizes.sum(), size=n_new) if n_new else np.zeros(0, dtype=np.int64)
        owner = np.searchsorted(np.cumsum(sizes), picks, side="right")
        for i in np.unique(owner):
            offset = sizes[:i].sum()
            parts.append(new[i].batch(picks[owner == i] - offset))
        loss, _ = model(_concat(parts, keys))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"world-model refresh loss is {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    with folder_written_atomically(out) as tmp:
        model.eval().save_pretrained(tmp)
    tail = losses[-max(1, len(losses) // 4) :]
    return out, float(np.mean(tail)) if tail else float("nan")


def _concat(batches: list[dict], keys: list[str]) -> dict:
    """The `keys` of several batches as one batch (tensors concatenated, lists joined); the
    datasets may hold other columns besides."""
    import torch

    return {
        k: torch.cat([b[k] for b in batches]) if torch.is_tensor(batches[0][k]) else
        [x for b in batches for x in b[k]]
        for k in keys
    }  # fmt: skip
