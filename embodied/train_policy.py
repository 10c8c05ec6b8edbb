"""`embodied train-policy`: imitation learning of a policy on any LeRobot dataset.

The VLA by default; `--policy.type=act` (or `diffusion`) trains LeRobot's own policy on the
same data as a baseline, with the optimizer and scheduler LeRobot's presets give it.

In-process on one machine (the fast path on a CPU). Every `save_every` steps a checkpoint is
written to `checkpoints/<step>.tmp` and renamed when complete, then `checkpoints/last.json`
is replaced; a rerun with the same `output_dir` resumes from it exactly (weights, optimizer,
RNG state, and the data order, which is a function of the step).
"""

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embodied.config import ConfigError, to_dict
from embodied.data.source import DatasetConfig
from embodied.ray_utils import RaySettings


@dataclass
class TrainPolicyConfig:
    """Attributes:
    dataset: the LeRobot dataset (--dataset.root=DIR or --dataset.repo_id=ID).
    output_dir: run directory: checkpoints/, metrics.jsonl, train_config.json.
    policy: policy settings: `type` (embodied_vla, act, diffusion) and that type's config
        fields (see policies/vla/configuration_vla.py), e.g. --policy.dim=256.
    cameras: camera names to use; empty means all of the dataset's cameras.
    steps: optimizer steps in total (a resumed run continues up to this number).
    batch_size: samples per step.
    grad_clip: gradient-norm clip.
    seed: seeds the weights and the data order.
    log_every: steps between metric lines.
    save_every: steps between checkpoints (one is always written at the end).
    device: torch device.
    ray: --ray.num_workers=N trains data-parallel on N Ray Train workers (DDP);
        --ray.address=HOST:PORT uses an existing cluster (its workers must see output_dir).
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    output_dir: str = ""
    policy: dict = field(default_factory=dict)
    cameras: tuple[str, ...] = ()
    steps: int = 2000
    batch_size: int = 64
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 50
    save_every: int = 500
    device: str = "cpu"
    ray: RaySettings = field(default_factory=RaySettings)


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> np.ndarray:
    """The samples of step `step`: epochs are seeded permutations, so resuming at any step
    replays the same data order as an uninterrupted run."""
    per_epoch = max(1, n // batch_size)
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[position * batch_size : (position + 1) * batch_size]


def last_checkpoint(output_dir: Path) -> Path | None:
    pointer = output_dir / "checkpoints" / "last.json"
    if not pointer.is_file():
        return None
    return output_dir / "checkpoints" / json.loads(pointer.read_text())["dir"]


def _save_checkpoint(out: Path, step: int, policy, pre, post, optimizer, scheduler) -> Path:
    from lerobot.optim.optimizers import save_optimizer_state
    from lerobot.optim.schedulers import save_scheduler_state
    from lerobot.utils.random_utils import save_rng_state

    folder = out / "checkpoints" / f"{step:07d}"
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    policy.save_pretrained(tmp / "pretrained_model")
    pre.save_pretrained(tmp / "pretrained_model")
    post.save_pretrained(tmp / "pretrained_model")
    state = tmp / "training_state"
    state.mkdir()
    save_optimizer_state(optimizer, state)
    if scheduler is not None:
        save_scheduler_state(scheduler, state)
    save_rng_state(state)
    (state / "step.json").write_text(json.dumps({"step": step}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    pointer = out / "checkpoints" / "last.json"
    pointer.with_suffix(".tmp").write_text(json.dumps({"dir": folder.name, "step": step}))
    pointer.with_suffix(".tmp").replace(pointer)
    return folder


def _build(config: TrainPolicyConfig, meta, resume: Path | None):
    """Policy, processors, optimizer and LR scheduler (None for constant-LR policies): fresh,
    or as they were at the `resume` checkpoint. LeRobot's presets pick the optimizer and
    scheduler of each policy type, as `lerobot-train` does."""
    import torch
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    from embodied.policy_io import load_policy, policy_config_for

    if resume is not None:
        policy, pre, post = load_policy(resume / "pretrained_model", config.device)
    else:
        try:
            settings = {**config.policy, "device": config.device}
            policy_config = policy_config_for(meta, settings, config.cameras)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        torch.manual_seed(config.seed)
        policy = get_policy_class(policy_config.type)(policy_config)
        pre, post = make_pre_post_processors(policy_config, dataset_stats=meta.stats)
    optimizer = policy.config.get_optimizer_preset().build(policy.get_optim_params())
    preset = policy.config.get_scheduler_preset()
    scheduler = preset.build(optimizer, config.steps) if preset is not None else None
    if resume is not None:
        from lerobot.optim.optimizers import load_optimizer_state
        from lerobot.optim.schedulers import load_scheduler_state
        from lerobot.utils.random_utils import load_rng_state

        optimizer = load_optimizer_state(optimizer, resume / "training_state")
        if scheduler is not None:
            scheduler = load_scheduler_state(scheduler, resume / "training_state")
        load_rng_state(resume / "training_state")
    return policy, pre, post, optimizer, scheduler


def train_policy(config: TrainPolicyConfig) -> Path:
    """Train (or resume) and return the folder of the final checkpoint.

    With `--ray.num_workers` > 1 the same loop runs data-parallel (DDP) on Ray Train workers,
    each taking its share of every global batch; rank 0 writes checkpoints and metrics.
    """
    if not config.output_dir:
        raise ConfigError("train-policy needs --output_dir=DIR")
    from embodied.data.source import open_metadata

    open_metadata(config.dataset)  # fail on a bad dataset before any worker starts
    if config.ray.num_workers <= 1:
        return _train_loop(config)
    return _train_on_ray(config)


def _train_on_ray(config: TrainPolicyConfig) -> Path:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from embodied.ray_utils import connect

    connect(config.ray.address, num_cpus=config.ray.num_workers)
    out = Path(config.output_dir).resolve()
    trainer = TorchTrainer(
        lambda: _train_loop(config, distributed=True),
        scaling_config=ScalingConfig(
            num_workers=config.ray.num_workers, use_gpu=config.device.startswith("cuda")
        ),
        run_config=RunConfig(storage_path=str(out / "ray"), name="train-policy"),
    )
    trainer.fit()
    return last_checkpoint(out) / "pretrained_model"


def _train_loop(config: TrainPolicyConfig, distributed: bool = False) -> Path:
    import torch
    from lerobot.datasets.factory import resolve_delta_timestamps
    from tqdm import tqdm

    from embodied.data.dataset import CachedDataset
    from embodied.data.source import open_metadata

    rank, world = 0, 1
    out = Path(config.output_dir)
    meta = open_metadata(config.dataset)
    resume = last_checkpoint(out)
    policy, pre, post, optimizer, scheduler = _build(config, meta, resume)
    model = policy
    if distributed:
        import ray.train
        import ray.train.torch

        rank = ray.train.get_context().get_world_rank()
        world = ray.train.get_context().get_world_size()
        model = ray.train.torch.prepare_model(policy)
    start = json.loads((resume / "training_state/step.json").read_text())["step"] if resume else 0
    deltas = resolve_delta_timestamps(policy.config, meta)
    dataset = CachedDataset(meta, deltas, cache_dir=config.dataset.cache_dir or None)
    lead = rank == 0
    if lead:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(to_dict(config), indent=2))
    policy.train()
    folder = resume
    steps = range(start, config.steps)
    bar = tqdm(steps, initial=start, total=config.steps, desc="train-policy", disable=not lead)
    tick, seen = time.perf_counter(), 0
    with open(out / "metrics.jsonl", "a") if lead else _nowhere() as metrics:
        for step in bar:
            rows = batch_indices(step, len(dataset), config.batch_size, config.seed)[rank::world]
            loss, info = model(pre(dataset.batch(rows)))
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss is {loss.item()} at step {step}; last good checkpoint: {folder}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), config.grad_clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            seen += len(rows) * world
            done = step + 1
            if lead and (done % config.log_every == 0 or done == config.steps):
                rate = seen / (time.perf_counter() - tick)
                row = {"step": done, "loss": loss.item(), **_scalars(info)}
                row.update(grad_norm=grad_norm.item(), samples_per_s=rate, workers=world)
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
                bar.set_postfix(loss=f"{row['loss']:.3f}")
                tick, seen = time.perf_counter(), 0
            if lead and (done % config.save_every == 0 or done == config.steps):
                folder = _save_checkpoint(out, done, policy, pre, post, optimizer, scheduler)
    if lead and folder is None:  # nothing left to train: the run was already complete
        folder = _save_checkpoint(out, start, policy, pre, post, optimizer, scheduler)
    return folder / "pretrained_model" if lead else out


def _scalars(info: dict | None) -> dict:
    """The numbers of a policy's loss dict (policies differ in what else they put there)."""
    return {k: float(v) for k, v in (info or {}).items() if isinstance(v, int | float)}


def _nowhere():
    import contextlib
    import io

    return contextlib.nullcontext(io.StringIO())
