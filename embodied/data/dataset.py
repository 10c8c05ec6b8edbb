"""One loader for every stage: a LeRobot dataset served from its decoded-frame cache.

`CachedDataset` returns the same samples as `LeRobotDataset` with the same
`delta_timestamps` (frame history, future action chunks, `<key>_is_pad` masks, the task
string), but from in-memory arrays, and it builds whole batches with vectorized indexing.

Shapes (B = batch, T = len(delta_timestamps[key]), D = feature size):
    observation.images.<cam>: float32 (B, T, 3, H, W) in [0, 1]; (B, 3, H, W) without deltas
    observation.state, action: float32 (B, T, D); (B, D) without deltas
    <key>_is_pad: bool (B, T), True where the offset falls outside the episode
    task: list of B strings
"""

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embodied.data.cache import load_cache
from embodied.data.source import DatasetConfig, DatasetError, open_metadata
from embodied.types import PAD_SUFFIX


def history_and_chunk(
    fps: float, obs_keys: list[str], n_obs_steps: int, action_keys: list[str], horizon: int
) -> dict[str, list[float]]:
    """The usual recipe: the last `n_obs_steps` observations and the next `horizon` actions."""
    history = [(i - n_obs_steps + 1) / fps for i in range(n_obs_steps)]
    chunk = [i / fps for i in range(horizon)]
    return {**{k: history for k in obs_keys}, **{k: chunk for k in action_keys}}


class CachedDataset(torch.utils.data.Dataset):
    """A LeRobot dataset from its zarr frame cache, sample- or batch-wise."""

    def __init__(
        self,
        meta: Any,
        delta_timestamps: dict[str, list[float]] | None = None,
        cache_dir: str | Path | None = None,
        max_memory_mb: int = 4096,
        frame_size: tuple[int, int] | None = None,
    ):
        """`frame_size` (height, width): serve (and cache) every camera at that size, the
        size the model reads; None serves frames as recorded."""
        self.meta = meta
        self._set_deltas(delta_timestamps)
        cache = Path(cache_dir) if cache_dir else None
        self.arrays = load_cache(meta, cache, max_memory_mb, frame_size)
        index = np.asarray(self.arrays["index"])
        if not np.array_equal(index, np.arange(len(index))):
            raise DatasetError(f"{meta.repo_id}: row indices are not 0..N-1; cannot serve it")
        episodes = meta.episodes
        starts = np.asarray(episodes["dataset_from_index"])
        ends = np.asarray(episodes["dataset_to_index"])
        ep = np.asarray(self.arrays["episode_index"])
        self._start, self._end = starts[ep], ends[ep]
        self.tasks = list(meta.tasks.index)
        self.camera_keys = list(meta.camera_keys)

    def _set_deltas(self, delta_timestamps: dict[str, list[float]] | None) -> None:
        from lerobot.datasets.utils import check_delta_timestamps, get_delta_indices

        meta = self.meta
        self.delta_timestamps = delta_timestamps or {}
        unknown = [k for k in self.delta_timestamps if k not in meta.features]
        if unknown:
            raise DatasetError(
                f"delta_timestamps names {unknown}, not features of {meta.repo_id}; "
                f"it has {sorted(meta.features)}"
            )
        if self.delta_timestamps:
            check_delta_timestamps(self.delta_timestamps, meta.fps, tolerance_s=1e-4)
        self.delta_indices = {
            k: np.asarray(v, dtype=np.int64)
            for k, v in (get_delta_indices(self.delta_timestamps, meta.fps) or {}).items()
        }

    def with_deltas(self, delta_timestamps: dict[str, list[float]] | None) -> "CachedDataset":
        """The same frames (no reload) served with other `delta_timestamps`."""
        view = copy.copy(self)
        view._set_deltas(delta_timestamps)
        return view

    @classmethod
    def open(cls, config: DatasetConfig, **kwargs: Any) -> "CachedDataset":
        """The loader for a `--dataset.*` config: checks the folder, then serves the cache."""
        return cls(open_metadata(config), cache_dir=config.cache_dir or None, **kwargs)

    def __len__(self) -> int:
        return len(self._start)

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        """Normalization statistics LeRobot computed when the dataset was written."""
        return self.meta.stats

    def __getitem__(self, idx: int) -> dict:
        batch = self.batch(np.array([idx]))
        return {k: v[0] for k, v in batch.items()}

    def batch(self, indices: np.ndarray | list[int]) -> dict:
        """A whole batch in one vectorized read."""
        rows = np.asarray(indices, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"indices out of range 0..{len(self) - 1}")
        out: dict[str, Any] = {}
        for key, array in self.arrays.items():
            deltas = self.delta_indices.get(key)
            if deltas is None:
                values = array[rows] if isinstance(array, np.ndarray) else array.oindex[rows]
            else:
                query = rows[:, None] + deltas[None, :]
                start, end = self._start[rows, None], self._end[rows, None]
                out[key + PAD_SUFFIX] = torch.from_numpy((query < start) | (query >= end))
                query = np.clip(query, start, end - 1)
                flat = query.reshape(-1)
                values = array[flat] if isinstance(array, np.ndarray) else array.oindex[flat]
                values = values.reshape(*query.shape, *values.shape[1:])
            out[key] = self._to_tensor(key, values)
        out["task"] = [self.tasks[i] for i in np.asarray(self.arrays["task_index"])[rows]]
        return out

    def _to_tensor(self, key: str, values: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(values))
        if key in self.camera_keys:  # uint8 (..., H, W, C) -> float (..., C, H, W) in [0, 1]
            return tensor.movedim(-1, -3).to(torch.float32).div_(255.0)
        return tensor

    def iter_batches(
        self, batch_size: int, shuffle: bool = True, seed: int = 0, drop_last: bool = True
    ) -> Iterator[dict]:
        """One epoch of batches; reproducible for a given seed."""
        order = (
            np.random.default_rng(seed).permutation(len(self)) if shuffle else np.arange(len(self))
        )
        stop = len(order) - batch_size + 1 if drop_last else len(order)
        for i in range(0, max(stop, 0), batch_size):
            yield self.batch(order[i : i + batch_size])
