"""Real clips for the reward model (`world_models.reward_model`): labels, balanced sampling,
episode-level judgements and the threshold sweep.

Everything here reads real recorded frames only: the data the classifier trains on, and
the held-out episodes its threshold is chosen on.
"""

from typing import Any

import numpy as np

from embodied.types import SUCCESS, TASK
from world_models.reward_model import LABEL
from world_models.windows import holdout_by_outcome

THRESHOLD_FILE = "threshold.json"  # beside a reward-model checkpoint's model folder


def clip_deltas(config: Any, fps: float) -> dict[str, list[float]]:
    """Offsets of a clip ending at the current frame, and the current frame's label."""
    frames = [(i - config.clip + 1) * config.frame_stride / fps for i in range(config.clip)]
    return {**{k: frames for k in config.image_keys}, SUCCESS: [0.0]}


class ClipPool:
    """The clips of several datasets (one split of each: training or held-out episodes,
    `holdout_by_outcome`, or all of them when `held_out` is None) as one indexed set;
    every frame ends one clip, labelled by the simulator's success flag."""

    def __init__(self, datasets: list[Any], config: Any, held_out: bool | None):
        self.keys, self.parts = list(config.image_keys), []
        for dataset in datasets:
            if SUCCESS not in dataset.arrays:
                raise ValueError(f"dataset {dataset.meta.repo_id} has no `{SUCCESS}` labels; "
                                 "the reward model learns from them")  # fmt: skip
            view = dataset.with_deltas(clip_deltas(config, dataset.meta.fps))
            episode = np.asarray(dataset.arrays["episode_index"])
            success = np.asarray(dataset.arrays[SUCCESS]).reshape(-1) > 0
            split = holdout_by_outcome(episode, success, config.holdout_every)
            rows = np.arange(len(split)) if held_out is None else np.flatnonzero(split == held_out)
            labels = success[rows]
            frame = np.asarray(dataset.arrays["frame_index"])[rows]
            self.parts.append((view, rows, labels, episode[rows], frame))
        self.offsets = np.cumsum([0] + [len(p[1]) for p in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def labels(self) -> np.ndarray:
        return np.concatenate([p[2] for p in self.parts]) if self.parts else np.zeros(0, bool)

    def balanced(self) -> np.ndarray:
        """Clip ids with the positives repeated to as many as the negatives (WMPO's balanced
        batches, in expectation, under any shuffle)."""
        labels = self.labels
        positives, negatives = np.flatnonzero(labels), np.flatnonzero(~labels)
        if not len(positives) or not len(negatives):
            raise ValueError(f"the reward model needs successful and failed clips; the "
                             f"data has {len(positives)} and {len(negatives)}")  # fmt: skip
        return np.concatenate([negatives, np.resize(positives, len(negatives))])

    def batch(self, ids: np.ndarray) -> dict:
        """Clips (per camera), instructions and labels of `ids`, in that order."""
        import torch

        ids = np.asarray(ids)
        owner = np.searchsorted(self.offsets, ids, side="right") - 1
        pieces, where = [], []
        for i in np.unique(owner):
            view, rows, labels, _, _ = self.parts[i]
            picked = np.flatnonzero(owner == i)
            local = ids[picked] - self.offsets[i]
            part = view.batch(rows[local])
            part[LABEL] = torch.from_numpy(labels[local])
            pieces.append(part)
            where.append(picked)
        back = np.argsort(np.concatenate(where))
        texts = [x for part in pieces for x in part[TASK]]
        out = {TASK: [texts[j] for j in back]}
        for key in [*self.keys, LABEL]:
            out[key] = torch.cat([part[key] for part in pieces])[torch.from_numpy(back)]
        return out

    def episodes(self, min_step: int = 0):
        """Per episode: (the ids of its clips ending at or after `min_step`, its success)."""
        for i, (_, _, labels, episode, frame) in enumerate(self.parts):
            for e in np.unique(episode):
                mine = episode == e
                ids = self.offsets[i] + np.flatnonzero(mine & (frame >= min_step))
                yield ids, bool(labels[mine].any())


def clip_probabilities(model: Any, pool: ClipPool, ids: np.ndarray, batch: int = 256):
    """The model's success probability for each clip of `ids`."""
    out = []
    for start in range(0, len(ids), batch):
        clips = pool.batch(ids[start : start + batch])
        out.append(model.probability(clips, clips[TASK]).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def episode_scores(model: Any, pool: ClipPool) -> tuple[np.ndarray, np.ndarray]:
    """Per episode of the pool: the highest clip probability after the model's `min_step`
    (an episode succeeds once any clip passes the threshold), and MuJoCo's label."""
    episodes = list(pool.episodes(model.config.min_step))
    ids = np.concatenate([e[0] for e in episodes])
    probs = clip_probabilities(model, pool, ids)
    ends = np.cumsum([len(e[0]) for e in episodes])
    scores = np.array([p.max() if len(p) else 0.0 for p in np.split(probs, ends[:-1])])
    return scores, np.array([e[1] for e in episodes])


def agreement(judged: np.ndarray, labels: np.ndarray) -> dict:
    """Precision, recall, false-positive rate and agreement of episode judgements."""
    judged, labels = np.asarray(judged, bool), np.asarray(labels, bool)
    hits = int((judged & labels).sum())
    return {
        "episodes": len(labels),
        "successes": int(labels.sum()),
        "precision": float(hits / judged.sum()) if judged.any() else None,
        "recall": float(hits / labels.sum()) if labels.any() else None,
        "false_positive_rate": float(judged[~labels].mean()) if (~labels).any() else None,
        "agreement": float((judged == labels).mean()) if len(labels) else None,
    }


def sweep_threshold(scores: np.ndarray, labels: np.ndarray) -> dict:
    """The threshold with the best F1 of episode judgements (`score > threshold`); among
    equally good ones, the median of the candidates (midpoints between episode scores), so
    it does not sit on one episode's score. Returns the threshold and its precision, recall
    and F1.

    A held-out set of successes only ties every threshold below its lowest score; the
    median then sits about halfway below it (0.50 on the quickstart). Breaking that tie by
    the clips' balanced accuracy instead (earlier clips of successes negative) chose 0.0002
    there, to catch one early positive clip: the reward model then called every imagined
    episode and every one of the policy's failed real episodes a success, the guard stopped
    RL at iteration 0, and a clean-clone quickstart gained nothing (27 % -> 27 %)."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    edges = np.unique(np.concatenate([[0.0, 1.0], scores]))
    candidates = (edges[:-1] + edges[1:]) / 2 if len(edges) > 1 else np.array([0.5])
    best, best_f1 = [], -1.0
    for t in candidates:
        judged = scores > t
        hits = (judged & labels).sum()
        f1 = 2 * hits / (judged.sum() + labels.sum()) if judged.sum() + labels.sum() else 0.0
        if f1 > best_f1 + 1e-12:
            best, best_f1 = [t], f1
        elif abs(f1 - best_f1) <= 1e-12:
            best.append(t)
    threshold = float(np.median(best))
    return {"threshold": threshold, "f1": float(best_f1),
            **agreement(scores > threshold, labels)}  # fmt: skip


def balanced_accuracy(judged: np.ndarray, labels: np.ndarray) -> float:
    """The mean of the success and failure recalls (plain accuracy when one class is absent):
    a judge that calls everything a failure scores 0.5, however rare successes are."""
    judged, labels = np.asarray(judged, bool), np.asarray(labels, bool)
    rates = [float((judged[m] == labels[m]).mean()) for m in (labels, ~labels) if m.any()]
    return float(np.mean(rates)) if rates else float("nan")


def judge_real_episodes(model: Any, datasets: list[Any], held_out: bool | None) -> dict:
    """The reward model's judgement of real episodes (on their real frames, at its threshold)
    against MuJoCo's labels: precision, recall, agreement and balanced accuracy."""
    scores, labels = episode_scores(model, ClipPool(datasets, model.config, held_out))
    judged = scores > model.config.threshold
    return {**agreement(judged, labels), "balanced_accuracy": balanced_accuracy(judged, labels)}


def calibrate(folder: Any, datasets: list[Any]) -> dict:
    """Choose the threshold on the held-out real episodes (F1 sweep) and write it into the
    checkpoint's config.json (atomically), the sweep's figures into threshold.json."""
    import json

    from embodied.config import ConfigError
    from embodied.files import write_text_atomically
    from world_models.base import CONFIG_FILE
    from world_models.reward_model import load_reward_model

    model = load_reward_model(folder)
    pool = ClipPool(datasets, model.config, held_out=True)
    if not len(pool):
        raise ConfigError("no held-out episode to choose the threshold on: record more episodes "
                          "or lower --holdout_every")  # fmt: skip
    chosen = sweep_threshold(*episode_scores(model, pool))
    saved = json.loads((folder / CONFIG_FILE).read_text())
    saved["threshold"] = chosen["threshold"]
    write_text_atomically(folder / CONFIG_FILE, json.dumps(saved, indent=2))
    write_text_atomically(folder.parent / THRESHOLD_FILE, json.dumps(chosen, indent=2))
    print(f"reward model threshold {chosen['threshold']:.3f} on {chosen['episodes']} held-out "
          f"episodes: precision {chosen['precision']}, recall {chosen['recall']}")  # fmt: skip
    return chosen


def refit_reward_model(path: str, datasets: list[Any], steps: int, seed: int, out: Any,
                       grad_clip: float = 1.0, batch_size: int = 32,
                       device: str = "cpu") -> Any:  # fmt: skip
    """Fine-tune the reward model at `path` on the training episodes of `datasets` (the
    original data and the policy's own real episodes) in balanced batches at a tenth of its
    learning rate, save it as a checkpoint under `out` and choose its threshold again on
    their held-out episodes. Returns its model folder. It trains on `device`."""
    import torch

    from embodied.training import MODEL_DIR, Trainable, on_device, optimizer_step, save_checkpoint
    from world_models.reward_model import load_reward_model

    torch.manual_seed(seed)
    model = load_reward_model(path, device).train()
    pool = ClipPool(datasets, model.config, held_out=False)
    ids, rng = pool.balanced(), np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=model.config.lr * 0.1,
                                  weight_decay=model.config.weight_decay)  # fmt: skip
    for step in range(steps):
        loss, _ = model(on_device(pool.batch(rng.choice(ids, batch_size)), device))
        where = f"reward refit step {step}"
        optimizer_step(loss, optimizer, model.parameters(), grad_clip, where=where)
    job = Trainable(model.eval(), optimizer, None, 0, None, model.save_pretrained)
    folder = save_checkpoint(out, steps, job) / MODEL_DIR
    calibrate(folder, datasets)
    return folder
