"""Finding a LeRobot dataset (local root or Hub repo_id) and checking it fits a stage.

Every check here runs before any expensive work and names what is wrong and where.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embodied.data.integrity import DatasetError, check_dataset_files, read_info
from embodied.files import read_json
from embodied.types import ACTION, IMAGE_PREFIX

INCOMPLETE_MARKER = "INCOMPLETE"  # in a dataset folder still being written (or abandoned)
EPISODES_SIDECAR = "meta/embodied_episodes.jsonl"  # seed, instruction, start state per episode


@dataclass
class DatasetConfig:
    """Where a LeRobot dataset lives. Give `root` (a local folder) or `repo_id` (the Hub).

    Attributes:
        root: local dataset folder (the one holding meta/info.json).
        repo_id: the dataset's name; alone, it is downloaded from the Hugging Face Hub.
        video_backend: LeRobot's decoder; "pyav" needs no system FFmpeg.
        cache_dir: where decoded-frame caches live; empty for ~/.cache/embodied/frames.
    """

    root: str = ""
    repo_id: str = ""
    video_backend: str = "pyav"
    cache_dir: str = ""


def episode_rows(root: Path) -> list[dict]:
    """The episodes sidecar of a dataset we recorded (`EPISODES_SIDECAR`): one row per
    episode with its task, instruction, seed, MuJoCo success, length and start state."""
    import json

    return [json.loads(x) for x in (Path(root) / EPISODES_SIDECAR).read_text().splitlines()]


def check_local_root(root: Path) -> None:
    """Refuse folders that are not finished, readable LeRobot datasets, saying why."""
    if not root.exists():
        partial = root.with_name(root.name + ".partial")
        hint = f" ({partial} is an interrupted collect)" if partial.exists() else ""
        raise DatasetError(f"dataset folder {root} does not exist{hint}")
    if (root / INCOMPLETE_MARKER).exists():
        raise DatasetError(
            f"{root} is an incomplete dataset (an interrupted collect); re-record it"
        )
    info = root / "meta" / "info.json"
    if not info.is_file():
        raise DatasetError(f"{root} is not a LeRobot dataset: {info} is missing")
    version = read_json(info, DatasetError).get("codebase_version")
    if version != "v3.0":
        raise DatasetError(f"{root} is LeRobot format {version}; this framework reads v3.0")
    for sub in ("meta/episodes", "data"):
        if not any((root / sub).rglob("*.parquet")):
            raise DatasetError(f"{root} has no {sub}/**/*.parquet files: it was not finalized")
    check_dataset_files(root, read_info(root))


def open_metadata(config: DatasetConfig) -> Any:
    """LeRobot's `LeRobotDatasetMetadata` for the dataset, with its files all on disk."""
    if not config.root and not config.repo_id:
        raise DatasetError("no dataset given: pass --dataset.root=DIR or --dataset.repo_id=ID")
    if config.root:
        check_local_root(Path(config.root))
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata

    repo_id = config.repo_id or f"local/{Path(config.root).name}"
    if config.root:
        try:
            return LeRobotDatasetMetadata(repo_id, root=config.root)
        except (KeyError, TypeError, ValueError, OSError) as err:  # what the checks missed
            raise DatasetError(f"LeRobot cannot read {config.root}/meta: {err!r}") from None
    # From the Hub: LeRobotDataset downloads data and videos, the metadata alone would not.
    return LeRobotDataset(repo_id, video_backend=config.video_backend).meta


def require_features(
    meta: Any,
    keys: list[str] = (),
    cameras: list[str] | None = None,
    action_dim: int | None = None,
    where: str = "this stage",
) -> None:
    """Fail unless `meta` has every key in `keys`, the cameras, and the action size needed."""
    features = meta.features
    name = meta.repo_id
    wanted = list(keys) + [IMAGE_PREFIX + c for c in cameras or []]
    missing = [k for k in wanted if k not in features]
    if missing:
        raise DatasetError(
            f"dataset {name} lacks {missing}, which {where} needs; it has {sorted(features)}"
        )
    if action_dim is not None:
        if ACTION not in features:
            raise DatasetError(f"dataset {name} has no '{ACTION}' feature")
        shape = tuple(features[ACTION]["shape"])
        if shape != (action_dim,):
            raise DatasetError(
                f"dataset {name} has actions of shape {shape}; {where} needs ({action_dim},)"
            )
