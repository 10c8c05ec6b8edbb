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

from embodied.types import IMAGE_PREFIX, PAD_SUFFIX, TASK

REFRESH_DIR = "refresh"
WORLD_MODELS_DIR = "world_models"
REWARD_MODELS_DIR = "reward_models"
SUCCESS_HOLD = 10  # steps recorded after a success, so the data shows the finished state
# Episodes recorded at once: 64 envs with two cameras held 23 GB and were OOM-killed, and
# after 32 lerobot's save_episode could not fork its video encoders (ENOMEM on 24 GB).
LOCKSTEP = 16


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
    reward_steps: reward-model steps per refresh, on the original data and the policy's
        real episodes so far, after which its threshold is chosen again (0: keep it fixed).
    match_rate: after each refresh, judge imagined episodes at the threshold that makes the
        current policy's imagined success rate equal its rate over the refresh's real
        episodes (`embodied.rl.calibration`); off: the threshold chosen on real frames.
    min_score: a refresh is adopted only if the refreshed models give the policy's imagined
        episodes success probabilities above this, for the share of them that matches its
        real rate over the refresh episodes (`_adopt_if_faithful`); otherwise the models in
        use stay. 0: adopt every refresh.
    rate_prior: pseudo-successes and pseudo-failures added to those real outcomes (0.5 each
        is Jeffreys' prior): the rate matched is (successes + p) / (episodes + 2p). With 8
        real episodes and no success the raw rate is 0, so no imagined episode succeeds and
        GRPO learns nothing until the next refresh (15 dead iterations of finetune seed 4
        on the quickstart); at 0.5 the target is 6 %.
    grad_clip: gradient-norm clip of the refresh's steps (world model and reward model).
    """

    every: int = 0
    at_start: bool = True
    task: str = ""
    episodes: int = 4
    steps: int = 100
    batch_size: int = 16
    new_fraction: float = 0.0
    lr: float = 0.0
    reward_steps: int = 100
    match_rate: bool = False
    min_score: float = 0.05
    rate_prior: float = 0.0
    grad_clip: float = 1.0


def record_policy_episodes(root: Path, policy: Any, pre: Any, post: Any, tasks: str,
                           episodes: int, seed: int, n_action_steps: int, temperature: float,
                           image_keys: list[str], image_size: int) -> Path:  # fmt: skip
    """Run the policy in MuJoCo, `episodes` per task (`LOCKSTEP` at a time), re-planning every
    `n_action_steps` and sampling chunks at `temperature` as it does in imagination, and
    record every camera in `image_keys` as a LeRobot dataset at `root` (through
    `write_dataset`, as collect). Episode i of the k-th task has seed `seed + 100_000 k + i`."""
    import copy

    import torch

    from embodied.acting import PolicyActor
    from embodied.data.record import EpisodeFrames, write_dataset
    from embodied.rollouts import rollout
    from embodied.seeds import episode_seed
    from envs.batched import BatchedTaskEnv
    from envs.tasks import parse_tasks

    specs = parse_tasks(tasks)
    cameras = tuple(k.removeprefix(IMAGE_PREFIX) for k in image_keys)
    policy = copy.deepcopy(policy).eval()  # re-plans at RL's rate; the learner's is untouched
    policy.config.n_action_steps = n_action_steps

    def block(spec: Any, indices: range, k: int):
        seeds = [episode_seed(seed, k, i) for i in indices]
        instructions = [spec.instructions[i % len(spec.instructions)] for i in indices]
        env = BatchedTaskEnv(spec.name, len(seeds), success_hold=SUCCESS_HOLD,
                             cameras=cameras, image_size=image_size)  # fmt: skip
        generator = torch.Generator().manual_seed(seeds[0])
        actor = PolicyActor(policy, pre, post, temperature=temperature, generator=generator)
        frames = EpisodeFrames()
        rollout(env, actor, options={"seeds": seeds, "tasks": instructions}, callbacks=[frames])
        env.close()
        for s, text, episode in zip(seeds, instructions, frames.episodes, strict=True):
            yield {"task": spec.name, "instruction": text, "seed": s}, episode

    def stream():
        for k, spec in enumerate(specs):
            for first in range(0, episodes, LOCKSTEP):
                yield from block(spec, range(first, min(episodes, first + LOCKSTEP)), k)

    return write_dataset(root, stream(), total=len(specs) * episodes,
                         repo_id="local/embodied_refresh", cameras=cameras,
                         image_size=image_size)  # fmt: skip


def refresh_world_model(model_path: str | Path, original: Any, refresh_roots: list[Path],
                        settings: RefreshSettings, seed: int, out: Path, cache_dir: Path,
                        device: str = "cpu") -> tuple[Path, float]:  # fmt: skip
    """Fine-tune the world model at `model_path` on the original dataset (`DatasetConfig`,
    less its held-out episodes) mixed with the refresh datasets (their decoded frames cached
    in `cache_dir`); save it as a checkpoint of the training loop's layout under `out` and
    return (its model folder, mean loss of the last quarter of the steps). It trains on
    `device`, the learner's."""
    import torch

    from embodied.training import MODEL_DIR, Trainable, on_device, optimizer_step, save_checkpoint
    from world_models.registry import load_world_model

    torch.manual_seed(seed)
    model = load_world_model(model_path, device).train()
    sample = _mixed_batches(model.config, original, refresh_roots, settings, cache_dir, seed)
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=settings.lr or model.config.lr * model.config.final_lr_fraction,
        weight_decay=model.config.weight_decay,
    )
    losses = []
    for step in range(settings.steps):
        loss, _ = model(on_device(sample(), device))
        where = f"world-model refresh step {step}"
        optimizer_step(loss, optimizer, model.parameters(), settings.grad_clip, where=where)
        losses.append(loss.item())
    job = Trainable(model.eval(), optimizer, None, 0, None, model.save_pretrained)
    folder = save_checkpoint(out, settings.steps, job)
    tail = losses[-max(1, len(losses) // 4) :]
    return folder / MODEL_DIR, float(np.mean(tail)) if tail else float("nan")


def _mixed_batches(config: Any, original: Any, refresh_roots: list[Path],
                   settings: RefreshSettings, cache_dir: Path, seed: int):  # fmt: skip
    """A function drawing one training batch of windows: from the refresh datasets with
    probability `new_fraction` (their share of all windows when 0), else from the original
    data's training episodes (the split saved with the model)."""
    from embodied.data.dataset import CachedDataset
    from embodied.data.source import DatasetConfig, open_metadata
    from world_models.windows import holdout_mask, window_deltas

    rng = np.random.default_rng(seed)
    meta = open_metadata(original)
    deltas = window_deltas(config, meta.fps)
    base = CachedDataset(meta, deltas, cache_dir=original.cache_dir or None)
    episode = np.asarray(base.arrays["episode_index"])
    base_rows = np.flatnonzero(~holdout_mask(episode, config.holdout_every))
    new = [
        CachedDataset(open_metadata(DatasetConfig(root=str(r))), deltas, cache_dir=cache_dir)
        for r in refresh_roots
    ]
    sizes = np.array([len(d) for d in new], dtype=np.int64)
    share = settings.new_fraction or sizes.sum() / (sizes.sum() + len(base_rows))
    keys = [*deltas, *(k + PAD_SUFFIX for k in deltas), TASK]

    def sample() -> dict:
        n_new = rng.binomial(settings.batch_size, share) if len(new) else 0
        n_base = settings.batch_size - n_new
        parts = [base.batch(rng.choice(base_rows, n_base))] if n_base else []
        picks = rng.integers(sizes.sum(), size=n_new) if n_new else np.zeros(0, dtype=np.int64)
        owner = np.searchsorted(np.cumsum(sizes), picks, side="right")
        for i in np.unique(owner):
            parts.append(new[i].batch(picks[owner == i] - sizes[:i].sum()))
        return _concat(parts, keys)

    return sample


def _concat(batches: list[dict], keys: list[str]) -> dict:
    """The `keys` of several batches as one batch (tensors concatenated, lists joined); the
    datasets may hold other columns besides."""
    import torch

    return {
        k: torch.cat([b[k] for b in batches]) if torch.is_tensor(batches[0][k]) else
        [x for b in batches for x in b[k]]
        for k in keys
    }  # fmt: skip


def refresh(learner: Any, config: Any, iteration: int, models: Any,
            n_action_steps: int) -> tuple[Any, dict]:  # fmt: skip
    """The refresh of iteration `iteration`: record the learner's policy in MuJoCo, judge
    those real episodes with the reward model in use (the guard's figure), then fine-tune
    the world model and the reward model on every refresh so far. Returns the models to
    imagine with from now on (`rollout_worker.Models`) and the figures to log."""
    import time
    from dataclasses import replace

    from embodied.data.source import episode_rows
    from embodied.seeds import RL_STREAMS, derive_seed
    from world_models.base import read_config
    from world_models.registry import FAMILIES

    settings, out, tick = config.refresh, Path(config.output_dir), time.perf_counter()
    wm_config = read_config(Path(models.world_model), FAMILIES)
    root = record_policy_episodes(
        out / REFRESH_DIR / f"{iteration:05d}", learner.policy, learner.pre, learner.post,
        settings.task or config.eval_task, settings.episodes,
        derive_seed(config.seed, iteration, RL_STREAMS["refresh_episodes"]), n_action_steps,
        config.algo.temperature, list(wm_config.image_keys), wm_config.image_size,
    )  # fmt: skip
    rows = episode_rows(root)
    guard = _judge_policy_episodes(root, models.reward_model)  # before it learns from them
    roots = refresh_datasets(out, iteration)
    path, loss = refresh_world_model(
        models.world_model, config.dataset, roots, settings,
        derive_seed(config.seed, iteration, RL_STREAMS["refresh_training"]),
        out / WORLD_MODELS_DIR / f"{iteration:05d}", out / REFRESH_DIR / "cache", learner.device,
    )  # fmt: skip
    reward = _refit_reward_model(models.reward_model, config, roots, iteration, learner.device)
    starts = tuple(str(r) for r in roots) if config.keyframe_every else ()
    candidate = replace(models, world_model=str(path), reward_model=reward, start_roots=starts,
                        imagined_threshold=-1.0)  # fmt: skip
    models, checked = _adopt_if_faithful(learner, config, iteration, models, candidate, rows,
                                         n_action_steps)  # fmt: skip
    judged = _judge_original_episodes(models, config) or {}
    release_freed_memory()
    return models, {
        "refresh_success": float(np.mean([r["success"] for r in rows])),
        "refresh_episodes": len(rows),
        "refresh_wm_loss": loss,
        "refresh_wm_recall": judged.get("recall"),
        "refresh_wm_false_positive_rate": judged.get("false_positive_rate"),
        **guard,
        **checked,
        "time_refresh_s": time.perf_counter() - tick,
    }


def _adopt_if_faithful(learner: Any, config: Any, iteration: int, previous: Any, candidate: Any,
                       rows: list[dict], n_action_steps: int) -> tuple[Any, dict]:  # fmt: skip
    """The models to imagine with after a refresh, and the figures of the check that chose
    them. The refreshed ones are adopted unless imagination with them has collapsed: the
    threshold at which the policy's imagined success equals its real rate over the refresh
    episodes (`embodied.rl.calibration`) is below `min_score`, i.e. the reward model gives
    even the policy's best imagined episodes a noise-level success probability. On the
    quickstart, refits on 8 and on 64 of the policy's episodes did that (the arm imagined
    stopping short of the cube, matched thresholds of 1e-6), and GRPO then learned from
    noise; the previous models stay in use instead. With `match_rate` an adopted refresh
    also judges imagination at that matched threshold."""
    from dataclasses import replace

    settings = config.refresh
    if not candidate.reward_model:
        return candidate, {}
    from embodied.rl.calibration import match_imagined_rate
    from embodied.seeds import RL_STREAMS, derive_seed

    successes, p = sum(r["success"] for r in rows), settings.rate_prior
    rate = (successes + p) / (len(rows) + 2 * p)
    seed = derive_seed(config.seed, iteration, RL_STREAMS["refresh_training"], 2)
    threshold = match_imagined_rate(learner, config, candidate, rate, seed, n_action_steps)
    adopted = threshold >= settings.min_score or successes + p == 0
    figures = {"refresh_adopted": adopted, "matched_threshold": threshold, "matched_rate": rate}
    if not adopted:
        print(f"finetune: the refresh at iteration {iteration} is not adopted: imagining the "
              f"policy's real success rate ({rate:.0%}) with it takes a success probability "
              f"of {threshold:.2g} (< refresh.min_score {settings.min_score}); the previous "
              f"models stay in use")  # fmt: skip
        return previous, figures
    if settings.match_rate:
        candidate = replace(candidate, imagined_threshold=threshold)
        figures["imagined_threshold"] = threshold
    return candidate, figures


def release_freed_memory() -> None:
    """Hand the heap a refresh freed back to the OS. A refresh allocates and frees hundreds
    of MB (episodes, frame caches, model copies); glibc keeps freed blocks mapped, so
    without this the learner's RSS rose ~30 MB per refresh over a long run
    (`benchmarks/soak.py`)."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    libc = ctypes.util.find_library("c")
    if libc and hasattr(ctypes.CDLL(libc), "malloc_trim"):
        ctypes.CDLL(libc).malloc_trim(0)


def _refit_reward_model(path: str, config: Any, roots: list[Path], iteration: int,
                        device: str) -> str:  # fmt: skip
    """The reward model fine-tuned on the original data and the policy's real episodes so
    far (`refresh.reward_steps`; unchanged when 0 or when there is none)."""
    if not path or config.refresh.reward_steps <= 0:
        return path
    from dataclasses import replace

    from embodied.data.dataset import CachedDataset
    from embodied.reward import refit_reward_model
    from embodied.seeds import RL_STREAMS, derive_seed

    data = [config.dataset, *(replace(config.dataset, root=str(r), repo_id="") for r in roots)]
    seed = derive_seed(config.seed, iteration, RL_STREAMS["refresh_training"], 1)
    out = Path(config.output_dir) / REWARD_MODELS_DIR / f"{iteration:05d}"
    datasets = [CachedDataset.open(d) for d in data]
    steps, clip = config.refresh.reward_steps, config.refresh.grad_clip
    return str(refit_reward_model(path, datasets, steps, seed, out, clip, device=device))


def _judge_policy_episodes(root: Path, reward_model: str) -> dict:
    """How the reward model judges the policy's own real episodes just recorded, against
    MuJoCo: the figure RL's stop-on-disagreement guard reads (none without a reward model)."""
    if not reward_model:
        return {}
    from embodied.data.dataset import CachedDataset
    from embodied.data.source import DatasetConfig
    from embodied.reward import judge_real_episodes
    from world_models.reward_model import load_reward_model

    model = load_reward_model(reward_model)
    judged = judge_real_episodes(model, [CachedDataset.open(DatasetConfig(root=str(root)))], None)
    return {f"reward_{k}": judged[k] for k in ("balanced_accuracy", "precision", "recall")}


def _judge_original_episodes(models: Any, config: Any) -> dict | None:
    """How the refreshed world model judges the original data's real episodes, replayed
    as RL imagines: a refresh that makes the success head miss real successes leaves
    RL without reward (on the CPU benchmark, a fixed half of each batch from a dozen
    mostly failed episodes cut the held-out recall from 0.76 to 0.36)."""
    from embodied.data.dataset import CachedDataset
    from embodied.imagination import judge_episodes
    from world_models.registry import load_world_model
    from world_models.reward_model import load_reward_model

    dataset = CachedDataset.open(config.dataset)
    episodes = list(range(dataset.meta.total_episodes))
    reward = load_reward_model(models.reward_model) if models.reward_model else None
    return judge_episodes(
        load_world_model(models.world_model), dataset, episodes, config.success_threshold, reward
    )


def refresh_datasets(out: Path, up_to: int) -> list[Path]:
    """The finished refresh datasets of iterations <= up_to, oldest first."""
    folder = out / REFRESH_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("[0-9]" * 5) if p.is_dir() and int(p.name) <= up_to)


def real_episodes(out: Path, up_to: int) -> int:
    """The real (MuJoCo) episodes RL has learned from up to iteration `up_to`: those the
    refreshes recorded. (The MuJoCo checks only measure; they teach the policy nothing.)"""
    from embodied.data.source import episode_rows

    return sum(len(episode_rows(root)) for root in refresh_datasets(out, up_to))


def remove_later_refreshes(out: Path, step: int) -> None:
    """A resumed run redoes what came after its checkpoint: refresh episodes and world
    models of later iterations are removed, so they are not trained on twice."""
    import shutil

    for name in (REFRESH_DIR, WORLD_MODELS_DIR, REWARD_MODELS_DIR):
        for path in (out / name).glob("[0-9]" * 5 + "*"):
            if int(path.name[:5]) > step:
                shutil.rmtree(path)
