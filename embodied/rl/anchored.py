"""Anchored imagination: GRPO groups whose chunks are sampled from the observations of a real
episode, so the world model only ever plays actions open loop from a real start.

Why: `benchmarks/group_agreement` plays the same groups in MuJoCo and in the world model.
With the quickstart's models, MuJoCo's own actions replayed open loop in the world model are
ranked within their group as MuJoCo ranks them (AUROC 0.86), but when the policy reacts to
the imagined frames (closed loop) the ranking is nearly noise (0.57): the policy, shown the
model's softer frames, acts otherwise than it would in MuJoCo. Anchored episodes keep the
part the model gets right. Member i of a group started from real episode e samples its chunk
at decision k from e's real observation at decision k (the last one past e's end); the world
model plays those chunks from e's first frames and the reward model judges them. GRPO then
raises the probability, on real observations, of the chunks whose imagined outcome beat the
group's, which is a local improvement of the policy around the trajectories it is anchored to
(the data's episodes, and the policy's own recorded by refreshes).
"""

from dataclasses import dataclass

import numpy as np

from embodied.types import STATE, TASK


@dataclass
class ReferenceEpisodes:
    """Real episodes' observations at every decision (each `n_action_steps` env steps).

    Attributes:
        images: per image key, uint8 (E, T, H, W, 3), each episode's last frame repeated
            past its end.
        state: float32 (E, T, S), likewise.
        lengths: decisions each episode has (E,).
        instructions: E instructions.
    """

    images: dict[str, np.ndarray]
    state: np.ndarray
    lengths: np.ndarray
    instructions: list[str]

    def __len__(self) -> int:
        return len(self.instructions)

    @classmethod
    def from_dataset(cls, dataset, image_keys: list[str], n_action_steps: int,
                     decisions: int) -> "ReferenceEpisodes":  # fmt: skip
        """Every episode of a `CachedDataset`, in episode order (the order of
        `StartBank.from_dataset`), at most `decisions` decisions each."""
        starts = np.asarray(dataset.meta.episodes["dataset_from_index"])
        ends = np.asarray(dataset.meta.episodes["dataset_to_index"])
        offsets = np.arange(decisions) * n_action_steps
        rows = np.minimum(starts[:, None] + offsets[None, :], ends[:, None] - 1)
        lengths = np.minimum(-(-(ends - starts) // n_action_steps), decisions)
        view = dataset.with_deltas(None)
        batch = view.batch(rows.reshape(-1))
        images = {
            k: (batch[k].movedim(-3, -1) * 255.0).round().byte().numpy().reshape(
                *rows.shape, *batch[k].shape[-2:], 3
            )
            for k in image_keys
        }  # fmt: skip
        state = batch[STATE].numpy().reshape(*rows.shape, -1).astype(np.float32)
        instructions = [batch[TASK][i] for i in range(0, rows.size, decisions)]
        return cls(images, state, lengths.astype(np.int64), instructions)

    @classmethod
    def concatenate(cls, parts: list["ReferenceEpisodes"]) -> "ReferenceEpisodes":
        """One set holding the episodes of several (their decisions padded to the longest)."""
        longest = max(p.state.shape[1] for p in parts)

        def pad(x: np.ndarray) -> np.ndarray:
            extra = np.repeat(x[:, -1:], longest - x.shape[1], axis=1)
            return np.concatenate([x, extra], axis=1)

        images = {k: np.concatenate([pad(p.images[k]) for p in parts]) for k in parts[0].images}
        state = np.concatenate([pad(p.state) for p in parts])
        lengths = np.concatenate([p.lengths for p in parts])
        return cls(images, state, lengths, [t for p in parts for t in p.instructions])


class AnchoredSampler:
    """RL's sampler acting, for episode b, on its reference episode's observation at the
    current decision, whatever the world model shows; `stacked()` gives those observations
    (T, B, ...) as the learner needs them (the policy's log-probabilities are taken on
    them)."""

    def __init__(self, sampler, references: ReferenceEpisodes, chosen: np.ndarray):
        self.sampler, self.references, self.chosen = sampler, references, np.asarray(chosen)
        self.seen: list[dict] = []

    def __call__(self, obs: dict):
        refs, k = self.references, len(self.seen)
        at = np.minimum(k, refs.state.shape[1] - 1)
        given = {key: refs.images[key][self.chosen, at] for key in refs.images}
        given[STATE] = refs.state[self.chosen, at]
        given[TASK] = [refs.instructions[i] for i in self.chosen]
        self.seen.append(given)
        return self.sampler(given)

    def stacked(self) -> dict[str, np.ndarray]:
        keys = [k for k in self.seen[0] if k != TASK]
        return {k: np.stack([s[k] for s in self.seen]) for k in keys}
