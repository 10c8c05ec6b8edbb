"""`embodied dataset-info`: what a LeRobot dataset holds, at a glance."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embodied.data.source import DatasetConfig, open_metadata
from embodied.types import SUCCESS


@dataclass
class SummaryConfig:
    """Attributes:
    dataset: where the dataset lives (--dataset.root=DIR or --dataset.repo_id=ID).
    """

    dataset: DatasetConfig = field(default_factory=DatasetConfig)


def summarize(meta) -> dict:
    """Episodes, frames, features and per-task success of a dataset, as plain data."""

    import pyarrow.parquet as pq

    episodes = meta.episodes
    lengths = np.asarray(episodes["length"])
    per_task: dict[str, dict] = {}
    success_by_episode = {}
    if SUCCESS in meta.features:
        for f in sorted(Path(meta.root, "data").rglob("*.parquet")):
            table = pq.read_table(f, columns=["episode_index", SUCCESS]).to_pydict()
            for ep, ok in zip(table["episode_index"], table[SUCCESS], strict=True):
                success_by_episode[ep] = ok  # the last frame of an episode wins
    for ep, tasks, length in zip(
        episodes["episode_index"], episodes["tasks"], lengths, strict=True
    ):
        row = per_task.setdefault(tasks[0], {"episodes": 0, "frames": 0, "successes": 0})
        row["episodes"] += 1
        row["frames"] += int(length)
        row["successes"] += int(bool(success_by_episode.get(ep, False)))
    return {
        "repo_id": meta.repo_id,
        "root": str(meta.root),
        "fps": meta.fps,
        "episodes": int(meta.total_episodes),
        "frames": int(meta.total_frames),
        "robot_type": meta.robot_type,
        "features": {k: [ft["dtype"], list(ft["shape"])] for k, ft in meta.features.items()},
        "has_success_labels": SUCCESS in meta.features,
        "per_task": per_task,
    }


def format_summary(summary: dict) -> str:
    lines = [
        f"dataset {summary['repo_id']} at {summary['root']}",
        f"  {summary['episodes']} episodes, {summary['frames']} frames at {summary['fps']} fps,"
        f" robot {summary['robot_type']}",
        "  features:",
    ]
    lines += [
        f"    {k:<32} {dtype:<8} {shape}" for k, (dtype, shape) in summary["features"].items()
    ]
    lines.append(f"  {'task':<44} {'episodes':>8} {'frames':>7} {'success':>8}")
    for task, row in summary["per_task"].items():
        rate = f"{row['successes'] / row['episodes']:.0%}" if summary["has_success_labels"] else "-"
        lines.append(f"  {task[:44]:<44} {row['episodes']:>8} {row['frames']:>7} {rate:>8}")
    return "\n".join(lines)


def print_summary(config: SummaryConfig) -> dict:
    summary = summarize(open_metadata(config.dataset))
    print(format_summary(summary))
    return summary
