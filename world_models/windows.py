"""The world model's data contract: which frames, actions and labels a window holds, and
which episodes are held out. Training, evaluation, imagination's start frames and the
refresh all read them from here, with the offsets and split saved in the model's config,
so no two of them can cut the data differently."""

from typing import Any

import numpy as np

from embodied.types import ACTION, DONE, STATE, SUCCESS


def window_deltas(config: Any, fps: float, horizon: int | None = None) -> dict[str, list[float]]:
    """Offsets of a window: K context frames and H future frames, `frame_stride` (s) steps
    apart, and the H * s actions/labels between them; H is the model's training horizon
    unless `horizon` is given (evaluation windows)."""
    K, H, s = config.context, horizon or config.train_horizon, config.frame_stride
    frames = [(i - K + 1) * s / fps for i in range(K + H)]
    steps = [i / fps for i in range(H * s)]
    deltas = {**{k: frames for k in [*config.image_keys, STATE]}, ACTION: steps}
    if config.success_head:
        deltas.update({SUCCESS: steps, DONE: steps})
    return deltas


def context_deltas(config: Any, fps: float) -> list[float]:
    """Offsets of the K context frames a model reads before imagining (as in training)."""
    return window_deltas(config, fps)[STATE][: config.context]


def holdout_mask(episode_index: np.ndarray, every: int) -> np.ndarray:
    """True for rows of held-out episodes (index % every == every - 1); none when every <= 0."""
    if every <= 0:
        return np.zeros(len(episode_index), dtype=bool)
    return np.asarray(episode_index) % every == every - 1


def holdout_by_outcome(episode_index: np.ndarray, success: np.ndarray, every: int) -> np.ndarray:
    """True for rows of held-out episodes, chosen apart among successful and failed episodes
    (an episode succeeded when any of its rows' `success` is set): the every-th of each, in
    index order, and the last of an outcome that has two episodes or more but fewer than
    `every`. A threshold chosen on the held-out episodes then sees both outcomes: the plain
    split (`holdout_mask`) held out 8 of the quickstart's 40 episodes, all successful, and
    the reward model's false-positive rate could not be measured."""
    if every <= 0:
        return np.zeros(len(episode_index), dtype=bool)
    episodes, row_episode = np.unique(np.asarray(episode_index), return_inverse=True)
    succeeded = np.zeros(len(episodes), dtype=bool)
    np.logical_or.at(succeeded, row_episode, np.asarray(success, dtype=bool))
    held = np.zeros(len(episodes), dtype=bool)
    for outcome in (True, False):
        mine = np.flatnonzero(succeeded == outcome)
        picked = mine[every - 1 :: every]
        if not len(picked) and len(mine) >= 2:
            picked = mine[-1:]
        held[picked] = True
    return held[row_episode]
