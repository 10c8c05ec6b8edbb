"""The supervised training loop every trainer shares (policies, world models).

A trainer hands the loop a `build` function; the loop owns what is common: the data order
(a function of the step, so a resumed run sees the same batches), the progress bar, the
metrics file, gradient clipping, the NaN check, checkpoints and exact resume, and
data-parallel training on Ray Train (DDP) when `ray.num_workers` > 1.

Checkpoint layout, written to `checkpoints/<step>.tmp` and renamed when complete, then
pointed to by `checkpoints/last.json` (replaced atomically):

    checkpoints/<step:07d>/pretrained_model/   the model's own files (what `--*.path` loads)
    checkpoints/<step:07d>/training_state/     optimizer, scheduler, RNG state, step.json
"""

import contextlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodied.config import ConfigError, to_dict
from embodied.data.source import DatasetConfig
from embodied.files import write_text_atomically
from embodied.ray_utils import RaySettings

MODEL_DIR = "pretrained_model"
STATE_DIR = "training_state"


@dataclass
class TrainConfig:
    """Settings every trainer shares (train-policy, train-world-model extend it).

    Attributes:
    dataset: the LeRobot dataset (--dataset.root=DIR or --dataset.repo_id=ID).
    output_dir: run directory: checkpoints/, metrics.jsonl, train_config.json.
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
    cameras: tuple[str, ...] = ()
    steps: int = 2000
    batch_size: int = 64
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 50
    save_every: int = 500
    device: str = "cpu"
    ray: RaySettings = field(default_factory=RaySettings)


@dataclass
class Trainable:
    """What a trainer hands the loop.

    Attributes:
        model: `model(batch) -> (loss, info dict or None)`.
        optimizer, scheduler: the scheduler may be None.
        n_samples: rows the data order draws from.
        batch: rows (np.ndarray) -> the batch `model` takes.
        save: writes the model's own files into a folder (e.g. `save_pretrained`).
    """

    model: Any
    optimizer: Any
    scheduler: Any
    n_samples: int
    batch: Callable[[np.ndarray], dict]
    save: Callable[[Path], None]


Build = Callable[[Path | None], Trainable]  # the model folder to resume from, or None


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


def train(config: TrainConfig, build: Build, name: str) -> Path:
    """Train (or resume) and return the model folder of the final checkpoint.

    `build` must be picklable (a module-level function or a `functools.partial` of one) when
    `config.ray.num_workers` > 1: each Ray Train worker calls it.
    """
    if not config.output_dir:
        raise ConfigError(f"{name} needs --output_dir=DIR")
    if not config.ray.on_cluster:
        return _loop(config, build, name)
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from embodied.ray_utils import connect, require_gpus, require_shared

    connect(config.ray.address, num_cpus=config.ray.workers)
    out = Path(config.output_dir).resolve()
    # every worker resumes from the checkpoints here: the lead writes them, a restarted run
    # may lead from another node
    require_shared(reads={"--dataset.root": config.dataset.root},
                   writes={"--output_dir": str(out)})  # fmt: skip
    gpus = config.ray.gpus_per_worker or float(config.device.startswith("cuda"))
    require_gpus(gpus * config.ray.workers, "--ray.gpus_per_worker (or --device=cuda)")
    trainer = TorchTrainer(
        lambda: _loop(config, build, name, distributed=True),
        scaling_config=ScalingConfig(
            num_workers=config.ray.workers, use_gpu=gpus > 0,
            resources_per_worker={"CPU": 1, "GPU": gpus} if gpus else None,
        ),
        run_config=RunConfig(storage_path=str(out / "ray"), name=name,
                             failure_config=FailureConfig(max_failures=config.ray.max_failures)),
    )  # fmt: skip
    trainer.fit()
    return last_checkpoint(out) / MODEL_DIR


def _loop(config: TrainConfig, build: Build, name: str, distributed: bool = False) -> Path:
    from tqdm import tqdm

    out = Path(config.output_dir)
    resume = last_checkpoint(out)
    job = build(resume / MODEL_DIR if resume else None)
    if resume is not None:
        load_training_state(job, resume / STATE_DIR)
    rank, world, model = 0, 1, job.model
    if distributed:
        import ray.train
        import ray.train.torch

        rank = ray.train.get_context().get_world_rank()
        world = ray.train.get_context().get_world_size()
        model = ray.train.torch.prepare_model(job.model)
    start = json.loads((resume / STATE_DIR / "step.json").read_text())["step"] if resume else 0
    lead = rank == 0
    if lead:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(to_dict(config), indent=2))
        metrics_up_to(out / "metrics.jsonl", start)
    job.model.train()
    folder = resume
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc=name,
               disable=not lead)  # fmt: skip
    tick, seen = time.perf_counter(), 0
    with open(out / "metrics.jsonl", "a") if lead else contextlib.nullcontext(io.StringIO()) as f:
        for step in bar:
            rows = batch_indices(step, job.n_samples, config.batch_size, config.seed)[rank::world]
            loss, info = model(job.batch(rows))
            where = f"step {step}; last good checkpoint: {folder}"
            grad_norm = optimizer_step(
                loss, job.optimizer, job.model.parameters(), config.grad_clip, job.scheduler, where
            )
            seen += len(rows) * world
            done = step + 1
            if lead and (done % config.log_every == 0 or done == config.steps):
                rate = seen / (time.perf_counter() - tick)
                row = {"step": done, "loss": loss.item(), **_scalars(info)}
                row.update(grad_norm=grad_norm, samples_per_s=rate, workers=world)
                f.write(json.dumps(row) + "\n")
                f.flush()
                bar.set_postfix(loss=f"{row['loss']:.3f}")
                tick, seen = time.perf_counter(), 0
            if lead and (done % config.save_every == 0 or done == config.steps):
                folder = save_checkpoint(out, done, job)
    if lead and folder is None:  # nothing left to train: the run was already complete
        folder = save_checkpoint(out, start, job)
    return folder / MODEL_DIR if lead else out


def metrics_up_to(path: Path, step: int, key: str = "step") -> list[dict]:
    """Keep the rows of a metrics.jsonl up to `step` (a resumed checkpoint's): rows a killed
    run wrote after its last checkpoint are done again, and must not be counted twice. A
    half-written last row goes too. Returns the rows kept."""
    if not path.is_file():
        return []
    kept, rows = [], []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get(key), int) and row[key] <= step:
            kept.append(line + "\n")
            rows.append(row)
    write_text_atomically(path, "".join(kept))
    return rows


def on_device(batch: dict, device: str) -> dict:
    """A batch with its tensors moved to `device` (lists of instructions stay as they are)."""
    import torch

    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def optimizer_step(loss, optimizer, parameters, clip: float, scheduler=None,
                   where: str = "") -> float:  # fmt: skip
    """The one optimizer step of every trainer (policy, world model, refresh, RL): refuse a
    non-finite loss, naming `where` it happened, backpropagate, clip the gradient norm of
    `parameters` at `clip`, step the optimizer (and the scheduler); returns the norm."""
    import torch

    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {loss.item()} at {where}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(parameters, clip)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return norm.item()


def save_checkpoint(
    out: Path, step: int, job: Trainable, extra: Callable[[Path], None] | None = None
) -> Path:
    """Write checkpoint `step` atomically and point `last.json` at it; `extra` writes more
    training state (e.g. RL's value head) into the training_state folder."""
    from lerobot.optim.optimizers import save_optimizer_state
    from lerobot.optim.schedulers import save_scheduler_state
    from lerobot.utils.random_utils import save_rng_state

    from embodied.files import folder_written_atomically

    folder = out / "checkpoints" / f"{step:07d}"
    with folder_written_atomically(folder) as tmp:
        job.save(tmp / MODEL_DIR)
        state = tmp / STATE_DIR
        state.mkdir()
        save_optimizer_state(job.optimizer, state)
        if job.scheduler is not None:
            save_scheduler_state(job.scheduler, state)
        save_rng_state(state)
        if extra is not None:
            extra(state)
        (state / "step.json").write_text(json.dumps({"step": step}))
    pointer = out / "checkpoints" / "last.json"
    pointer.with_suffix(".tmp").write_text(json.dumps({"dir": folder.name, "step": step}))
    pointer.with_suffix(".tmp").replace(pointer)
    return folder


def load_training_state(job: Trainable, state: Path) -> None:
    from lerobot.optim.optimizers import load_optimizer_state
    from lerobot.optim.schedulers import load_scheduler_state
    from lerobot.utils.random_utils import load_rng_state

    job.optimizer = load_optimizer_state(job.optimizer, state)
    if job.scheduler is not None:
        job.scheduler = load_scheduler_state(job.scheduler, state)
    load_rng_state(state)


def _scalars(info: dict | None) -> dict:
    """The numbers of a model's loss dict (models differ in what else they put there)."""
    return {k: float(v) for k, v in (info or {}).items() if isinstance(v, int | float)}
