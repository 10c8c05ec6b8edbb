"""`embodied eval-world-model`: how faithful a world model is on held-out episodes.

Windows of `open_loop_steps` model steps (each the model's `frame_stride` environment
steps) start every `window_every` frames of each held-out episode (the split saved with the
model, as train-world-model made it). From each window's K real context frames the model
imagines open-loop with the recorded actions, and is measured against the real frames:

- PSNR and SSIM at each horizon step, next to the copy-last-frame baseline;
- state prediction error (L2, in the state's units) at each step;
- the success head's AUROC and calibration against MuJoCo's success labels, over every
  imagined step (what RL rewards) and over the first step only;
- action controllability: image error with each window's actions replaced by another
  window's, divided by the error with the true actions (> 1: the model reacts to actions);
- whole episodes judged as RL judges them: each held-out episode imagined from its real
  start with its recorded actions in `WorldModelEnv`, a success once the head passes the
  threshold, against MuJoCo's label. This is the reward RL would get for real episodes: a
  model with a fine per-step AUROC can still miss most successes here, and then GRPO finds
  no group with mixed outcomes;
- with `--policy.path`, the policy imagined closed-loop in the model, as RL imagines it,
  from the dataset's start frames: its imagined success per instruction, to set beside its
  MuJoCo success. The open-loop figures above do not predict it: on the CPU benchmark two
  models with replay recall 1.00 and PSNR gains of 1.9 and 2.1 dB gave the same policy
  61 % and 0 % imagined success on Lift (76 % in MuJoCo);
- with `--reward_model.path`, the reward model RL would be given: its precision and recall
  on the held-out real episodes (real frames) and on the same episodes replayed in the world
  model (imagined frames, the figure that matters for RL); whole-episode judging and the
  policy's imagined success then use it instead of the world model's own head;
- side-by-side videos (real | imagined, cameras stacked) of a few held-out episodes
  imagined open-loop from their first frame to their end.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embodied.data.source import DatasetConfig
from embodied.refs import PolicyRef, RewardModelRef, WorldModelRef
from embodied.types import ACTION, SUCCESS, UserInputError


@dataclass
class EvalWorldModelConfig:
    """Attributes:
    world_model: --world_model.path=CKPT.
    dataset: the dataset the model was trained on (its held-out episodes are used).
    holdout_every: which episodes to measure on: -1 (default) the ones held out of the
        model's training (saved with it); 0: every episode; n: index % n == n - 1.
    open_loop_steps: model steps imagined open-loop per window (>= 10 for the 10-step
        figure); each is the model's frame_stride environment steps.
    window_every: environment steps between window starts.
    videos: held-out episodes rendered side by side.
    batch_size: windows imagined at once.
    success_threshold: success probability at which an imagined episode succeeds (as in
        finetune).
    policy: --policy.path=CKPT (an embodied_vla checkpoint) to imagine in the model; empty:
        no closed-loop figure.
    policies: more checkpoints, each imagined and judged the same way
        (`policies_imagined`, by path): the model as an evaluator of several policies.
    reward_model: --reward_model.path=CKPT, the success classifier that judges imagined
        episodes (as finetune's); empty: the world model's own success head.
    policy_episodes, policy_horizon, policy_temperature: its imagined episodes (from start
        frames drawn at random), their length in environment steps, and the sampling
        temperature (the pipeline uses finetune's horizon and temperature).
    seed: seeds the action shuffle.
    json: where to write the figures (also written to output_dir/world_model_eval.json).
    output_dir: videos/ and the JSON go here; empty: next to the checkpoint.
    """

    world_model: WorldModelRef = field(default_factory=WorldModelRef)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    holdout_every: int = -1
    open_loop_steps: int = 10
    window_every: int = 5
    videos: int = 2
    batch_size: int = 64
    success_threshold: float = 0.5
    policy: PolicyRef = field(default_factory=PolicyRef)
    policies: tuple[str, ...] = ()
    reward_model: RewardModelRef = field(default_factory=RewardModelRef)
    policy_episodes: int = 32
    policy_horizon: int = 150
    policy_temperature: float = 1.0
    seed: int = 0
    json: str = ""
    output_dir: str = ""


def evaluate_world_model(config: EvalWorldModelConfig) -> dict:
    import torch

    from embodied.data.dataset import CachedDataset
    from embodied.data.source import open_metadata, require_features
    from embodied.imagination import real_vs_imagined_videos
    from world_models.registry import load_world_model
    from world_models.windows import holdout_mask, window_deltas

    model = load_world_model(config.world_model.path)
    c = model.config
    meta = open_metadata(config.dataset)
    require_features(meta, [ACTION, *c.image_keys], action_dim=c.action_dim,
                     where="this world model")  # fmt: skip
    deltas = window_deltas(c, meta.fps, horizon=config.open_loop_steps)
    dataset = CachedDataset(meta, deltas, cache_dir=config.dataset.cache_dir or None)
    episode = np.asarray(dataset.arrays["episode_index"])
    frame = np.asarray(dataset.arrays["frame_index"])
    every = c.holdout_every if config.holdout_every < 0 else config.holdout_every
    held = holdout_mask(episode, every) if every > 0 else np.ones(len(episode), dtype=bool)
    ends = np.asarray(dataset._end)
    rows = np.flatnonzero(
        held
        & (frame % config.window_every == 0)
        & (np.arange(len(frame)) + config.open_loop_steps * c.frame_stride < ends)
    )
    if len(rows) == 0:
        raise UserInputError("no held-out window: record more episodes or lower --open_loop_steps")
    torch.manual_seed(config.seed)
    curves = _open_loop(model, dataset, rows, config)
    out = Path(config.output_dir or Path(config.world_model.path).parent)
    out.mkdir(parents=True, exist_ok=True)
    held_episodes = sorted(set(episode[held].tolist()))
    videos = held_episodes[: config.videos]
    curves["videos"] = real_vs_imagined_videos(model, dataset, videos, out / "videos")
    report = _summarize(curves, config, len(rows), held_episodes)
    report["frame_stride"] = c.frame_stride
    report.update(_judgements(model, dataset, held_episodes, config))
    text = json.dumps(report, indent=2)
    (out / "world_model_eval.json").write_text(text)
    if config.json:
        Path(config.json).write_text(text)
    _print_table(report)
    return report


def _judgements(model, dataset, held_episodes: list[int], config: EvalWorldModelConfig) -> dict:
    """Success as RL judges it: held-out episodes replayed, the policy imagined closed-loop,
    and the reward model on real and on replayed frames, when they are given."""
    from embodied.data.dataset import CachedDataset
    from embodied.imagination import imagine_policy, judge_episodes
    from embodied.reward import judge_real_episodes
    from world_models.reward_model import load_reward_model

    reward = load_reward_model(config.reward_model.path) if config.reward_model.path else None
    out = {"policy_imagined": None, "reward_model": None}

    def imagined(path: str) -> dict:
        return imagine_policy(model, dataset, path, config.policy_episodes, config.policy_horizon,
                              config.policy_temperature, config.success_threshold, config.seed,
                              reward)  # fmt: skip

    if config.policy.path:
        out["policy_imagined"] = imagined(config.policy.path)
    if config.policies:
        out["policies_imagined"] = {path: imagined(path) for path in config.policies}
    replayed = judge_episodes(model, dataset, held_episodes, config.success_threshold, reward)
    out["episode_success"] = replayed
    if reward is not None:
        real = judge_real_episodes(reward, [CachedDataset.open(config.dataset)], held_out=True)
        out["reward_model"] = {"threshold": reward.config.threshold, "real": real,
                               "replayed": replayed}  # fmt: skip
    return out


CURVES = ("psnr", "psnr_copy", "ssim", "ssim_copy", "state_err", "mse", "mse_shuffled")


def _imagine(model, batch: dict, actions, horizon: int) -> list:
    """Open-loop predictions for `horizon` model steps from the batch's K context frames;
    `actions` (B, horizon * frame_stride, A)."""
    import torch

    from world_models.base import per_model_step

    K = model.config.context
    actions = per_model_step(actions, model.config.frame_stride)
    context = {k: v[:, :K] if torch.is_tensor(v) and v.dim() >= 2 else v for k, v in batch.items()}
    with torch.no_grad():
        carry, predictions = model.start(context), []
        for h in range(horizon):
            carry, prediction = model.step(carry, actions[:, h])
            predictions.append(prediction)
    return predictions


def _open_loop(model, dataset, rows: np.ndarray, config: EvalWorldModelConfig) -> dict:
    """Per-horizon sums of every curve over the windows, then their means."""
    import torch

    from world_models.base import per_model_step
    from world_models.metrics import psnr, ssim

    c, K, H = model.config, model.config.context, config.open_loop_steps
    sums = {name: np.zeros(H) for name in CURVES}
    success: list[tuple] = []  # (horizon step, scores, labels)
    rng, count, cams = np.random.default_rng(config.seed), 0, len(c.image_keys)
    for start in range(0, len(rows), config.batch_size):
        batch = dataset.batch(rows[start : start + config.batch_size])
        n = len(batch["task"])
        shuffled = batch[ACTION][torch.from_numpy(_derangement(n, rng))] if n > 1 else batch[ACTION]
        true = _imagine(model, batch, batch[ACTION], H)
        other = _imagine(model, batch, shuffled, H)
        for h in range(H):
            for key in c.image_keys:
                real, last = batch[key][:, K + h], batch[key][:, K - 1]
                guess, wrong = true[h].images[key], other[h].images[key]
                sums["mse"][h] += (guess - real).pow(2).mean((1, 2, 3)).sum().item() / cams
                sums["mse_shuffled"][h] += (wrong - real).pow(2).mean((1, 2, 3)).sum().item() / cams
                sums["psnr"][h] += psnr(guess, real).sum().item() / cams
                sums["psnr_copy"][h] += psnr(last, real).sum().item() / cams
                sums["ssim"][h] += ssim(guess, real).sum().item() / cams
                sums["ssim_copy"][h] += ssim(last, real).sum().item() / cams
            state_error = (true[h].state - batch["observation.state"][:, K + h]).norm(dim=1)
            sums["state_err"][h] += state_error.sum().item()
            if c.success_head:
                labels = per_model_step(batch[SUCCESS], c.frame_stride)[:, h]
                labels = labels.flatten(1).amax(1).numpy().astype(bool)
                success.append((h, true[h].success.numpy(), labels))
        count += n
    curves = {name: (v / count).tolist() for name, v in sums.items()}
    curves["success"] = None
    if success:
        scores, labels = (np.concatenate([x[i] for x in success]) for i in (1, 2))
        first = [x for x in success if x[0] == 0]
        first_scores, first_labels = (np.concatenate([x[i] for x in first]) for i in (1, 2))
        curves["success"] = (scores, labels, first_scores, first_labels)
    return curves


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation with no fixed point: every window gets another window's actions."""
    return (np.arange(n) + rng.integers(1, n)) % n


def _summarize(curves: dict, config: EvalWorldModelConfig, windows: int, episodes: list) -> dict:
    from world_models.metrics import auroc, calibration

    h10 = min(10, config.open_loop_steps) - 1
    report = {
        "psnr_gain_db_h10": curves["psnr"][h10] - curves["psnr_copy"][h10],
        "success_auroc": None,
        "shuffled_action_penalty": float(
            np.mean(curves["mse_shuffled"]) / max(np.mean(curves["mse"]), 1e-12)
        ),
        "psnr_h10": curves["psnr"][h10],
        "psnr_copy_h10": curves["psnr_copy"][h10],
        "ssim_h10": curves["ssim"][h10],
        "ssim_copy_h10": curves["ssim_copy"][h10],
        "state_error_h10": curves["state_err"][h10],
        "windows": windows,
        "held_out_episodes": episodes,
        "curves": {
            k: curves[k]
            for k in ("psnr", "psnr_copy", "ssim", "ssim_copy", "state_err", "mse", "mse_shuffled")
        },
        "videos": [str(v) for v in curves["videos"]],
    }
    if curves["success"] is not None:
        scores, labels, first_scores, first_labels = curves["success"]
        report["success_auroc"] = auroc(scores, labels)
        report["success_auroc_h1"] = auroc(first_scores, first_labels)
        report["success_positives"] = int(labels.sum())
        report["success_calibration"] = calibration(scores, labels)
    return report


def _print_table(report: dict) -> None:
    r = report
    rows = [
        ("PSNR dB, 10 model steps ahead", f"{r['psnr_h10']:.2f}", f"{r['psnr_copy_h10']:.2f}"),
        ("SSIM, 10 model steps ahead", f"{r['ssim_h10']:.3f}", f"{r['ssim_copy_h10']:.3f}"),
        ("PSNR gain (dB)", f"{r['psnr_gain_db_h10']:.2f}", ""),
        ("state error, 10 model steps ahead", f"{r['state_error_h10']:.4f}", ""),
        ("shuffled-action error ratio", f"{r['shuffled_action_penalty']:.2f}", ""),
    ]
    if r["success_auroc"] is not None:
        rows.append(("success AUROC (imagined steps)", f"{r['success_auroc']:.3f}", ""))
        rows.append(("success ECE", f"{r['success_calibration']['ece']:.3f}", ""))
    judged = r["episode_success"]
    for name in ("recall", "false_positive_rate"):
        if judged and judged[name] is not None:
            rows.append((f"whole episodes: success {name.replace('_', ' ')}",
                         f"{judged[name]:.2f}", ""))  # fmt: skip
    for where in ("real", "replayed"):
        judged = (r.get("reward_model") or {}).get(where) or {}
        for name in ("precision", "recall"):
            if judged.get(name) is not None:
                rows.append((f"reward model, {where}: {name}", f"{judged[name]:.2f}", ""))
    for path, result in (r.get("policies_imagined") or {}).items():
        rows.append((f"imagined: {Path(path).parent.name}", f"{result['success_rate']:.2f}", ""))
    imagined = r.get("policy_imagined")
    if imagined:
        rows.append(("policy imagined: success", f"{imagined['success_rate']:.2f}", ""))
        for text, rate in imagined["by_instruction"].items():
            rows.append((f"  {text}", f"{rate:.2f}", ""))
    print(f"\n{'metric':<34} {'model':>10} {'copy-last':>10}")
    for name, model, copy in rows:
        print(f"{name:<34} {model:>10} {copy:>10}")
    print(f"held-out windows: {r['windows']}, episodes: {r['held_out_episodes']}")
