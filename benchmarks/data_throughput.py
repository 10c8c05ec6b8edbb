"""Training-batch samples per second: the zarr-cached loader vs LeRobotDataset + pyav.

Same recipe for both: every camera and the state with 2 frames of history, a 16-step action
chunk, shuffled batches of 32, no worker processes. The dataset is one recorded by `collect`
(made on first run at --root), and optionally any other LeRobot dataset (--extra_root).
Run: .venv/bin/python -m benchmarks.data_throughput --json=data.json
"""

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import BenchmarkConfig, median_rate, parse, print_table, write_json
from embodied.config import ConfigError

BATCH = 32


@dataclass
class DataThroughputConfig(BenchmarkConfig):
    """Attributes (besides the shared ones in BenchmarkConfig):
    root: the recorded dataset (made by `collect` if absent).
    extra_root: another LeRobot dataset folder to measure (none when empty).
    lerobot_batches: batches per timed run of LeRobotDataset + pyav.
    cached_batches: batches per timed run of the zarr-cached loader.
    """

    root: str = "runs/bench/lift_cubes"
    extra_root: str = ""
    lerobot_batches: int = 6
    cached_batches: int = 200


def _recipe(meta):
    from embodied.data.dataset import history_and_chunk

    return history_and_chunk(meta.fps, [*meta.camera_keys, "observation.state"], 2, ["action"], 16)


def lerobot_rate(meta, batches: int, repeats: int) -> float:
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(
        meta.repo_id, root=meta.root, delta_timestamps=_recipe(meta), video_backend="pyav"
    )
    rates = []
    for r in range(repeats):
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(r)
        )
        it = iter(loader)
        next(it)  # the first batch opens files
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        rates.append(batches * BATCH / (time.perf_counter() - start))
    return median_rate(rates)


def cached_rate(meta, batches: int, repeats: int) -> tuple[float, float]:
    from embodied.data.cache import cache_path
    from embodied.data.dataset import CachedDataset

    start = time.perf_counter()
    existed = cache_path(meta).exists()
    dataset = CachedDataset(meta, _recipe(meta))
    open_s = time.perf_counter() - start
    rates = []

    def endless(seed: int):
        while True:
            yield from dataset.iter_batches(BATCH, shuffle=True, seed=seed)
            seed += 1000

    for r in range(repeats):
        it = endless(r)
        start = time.perf_counter()
        for _ in range(batches):
            next(it)
        rates.append(batches * BATCH / (time.perf_counter() - start))
    return median_rate(rates), (float("nan") if existed else open_s)


def ensure_dataset(root: Path) -> None:
    if root.exists():
        return
    from embodied.data.record import CollectConfig, collect

    collect(CollectConfig(task="lift,lang_cubes", episodes=5, root=str(root)))


def main() -> None:
    try:
        args = parse(DataThroughputConfig, __doc__)
    except ConfigError as err:
        sys.exit(f"data_throughput: {err}")
    from embodied.data.source import DatasetConfig, open_metadata

    ensure_dataset(Path(args.root))
    roots = [args.root] + ([args.extra_root] if args.extra_root else [])
    rows, figures = [], {}
    for i, root in enumerate(roots):
        meta = open_metadata(DatasetConfig(root=root))
        theirs = lerobot_rate(meta, args.lerobot_batches, args.repeats)
        ours, build_s = cached_rate(meta, args.cached_batches, args.repeats)
        shape = meta.features[meta.camera_keys[0]]["shape"]
        rows.append(
            [
                meta.repo_id,
                f"{len(meta.camera_keys)}x{shape[0]}x{shape[1]}",
                f"{theirs:.0f}",
                f"{ours:.0f}",
                f"{ours / theirs:.0f}x",
                f"{build_s:.1f}",
            ]
        )
        entry = {
            "cached_samples_per_s": ours,
            "lerobot_samples_per_s": theirs,
            "ratio": ours / theirs,
            "cache_build_s": build_s,
        }
        if i == 0:
            figures.update(entry)
        figures.setdefault("datasets", {})[meta.repo_id] = entry
    print_table(
        [
            "dataset",
            "cameras",
            "LeRobot+pyav samples/s",
            "cached samples/s",
            "ratio",
            "cache build s",
        ],
        rows,
    )
    figures["recipe"] = {"batch_size": BATCH, "history": 2, "action_chunk": 16, "num_workers": 0}
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
