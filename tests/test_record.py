"""collect -> LeRobot's own loader: the data comes back as recorded."""

import json

import numpy as np
import pytest

from embodied.data.record import INCOMPLETE_MARKER, CollectConfig, collect
from embodied.data.source import DatasetConfig, DatasetError, open_metadata
from embodied.types import ACTION, STATE, SUCCESS, image_key
from envs.experts import EXPERTS, ExpertConfig, expert_frames
from envs.robosuite_env import make_env

pytestmark = pytest.mark.sim


def _lerobot(root):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("local/test", root=root, video_backend="pyav")


def test_dataset_opens_in_lerobot_unchanged(recorded):
    root, config = recorded
    dataset = _lerobot(root)
    assert dataset.meta.info["codebase_version"] == "v3.0"
    assert dataset.num_episodes == 4
    assert set(dataset.meta.tasks.index) == {
        "lift the red cube",
        "lift the green cube",
    }
    for key in (image_key("agentview"), image_key("wrist"), STATE, ACTION, SUCCESS):
        assert key in dataset.features
    sidecar = [json.loads(line) for line in (root / "meta/embodied_episodes.jsonl").open()]
    assert [row["task"] for row in sidecar] == ["lift", "lift", "lang_cubes", "lang_cubes"]


def test_round_trip_matches_a_replay_of_the_experts(recorded):
    """Actions and states exactly, frames within codec tolerance."""
    root, config = recorded
    dataset = _lerobot(root)
    sidecar = [json.loads(line) for line in (root / "meta/embodied_episodes.jsonl").open()]
    env = make_env("lift", cameras=config.cameras, image_size=config.image_size)
    row = sidecar[1]
    expert = ExpertConfig(noise_std=config.noise_std, perturb_prob=config.perturb_prob)
    frames = list(
        expert_frames(
            env, EXPERTS["lift"], row["seed"], row["instruction"], expert, config.success_hold
        )
    )
    episode = dataset.meta.episodes[1]
    start = episode["dataset_from_index"]
    assert episode["length"] == len(frames) == row["length"]
    for t in (0, len(frames) // 2, len(frames) - 1):
        item = dataset[start + t]
        assert np.array_equal(item[ACTION].numpy(), frames[t].action)
        assert np.array_equal(item[STATE].numpy(), frames[t].observation[STATE])
        decoded = (item[image_key("agentview")].permute(1, 2, 0).numpy() * 255).round()
        error = np.abs(decoded - frames[t].observation[image_key("agentview")]).mean()
        assert error < 8.0, f"frame {t} differs by {error:.1f} grey levels on average"
    assert bool(dataset[start + len(frames) - 1][SUCCESS]) == frames[-1].success


def test_existing_root_is_refused_before_work(recorded):
    root, _ = recorded
    with pytest.raises(FileExistsError, match="already exists"):
        collect(CollectConfig(task="lift", episodes=1, root=str(root)))


@pytest.mark.parametrize(
    "changes, error, message",
    [
        ({"task": "juggle"}, KeyError, "unknown task 'juggle'"),
        ({"cameras": ("ceiling",)}, ValueError, "unknown camera"),
        ({"episodes": 0}, ValueError, "at least 1"),
        ({"root": ""}, ValueError, "needs --root"),
        ({"near_miss_rate": 1.5}, ValueError, "near_miss_rate must be in"),
        ({"task": "lift,door", "near_miss_rate": 0.5}, ValueError, "door expert grasps nothing"),
    ],
)
def test_bad_collect_settings_fail_before_work(tmp_path, changes, error, message):
    config = {"task": "lift", "episodes": 1, "root": str(tmp_path / "d"), **changes}
    with pytest.raises(error, match=message):
        collect(CollectConfig(**config))
    assert not (tmp_path / "d.partial").exists()


def test_interrupted_collect_is_marked_incomplete_and_rerun_cleanly(tmp_path, monkeypatch):
    import embodied.data.record as record

    root = tmp_path / "ds"
    calls = {"n": 0}
    real = record._lerobot_frame

    def crash_in_second_episode(frame):
        calls["n"] += 1
        if calls["n"] > 40:
            raise KeyboardInterrupt
        return real(frame)

    monkeypatch.setattr(record, "_lerobot_frame", crash_in_second_episode)
    config = CollectConfig(task="lift", episodes=2, root=str(root), success_hold=0)
    with pytest.raises(KeyboardInterrupt):
        collect(config)
    partial = tmp_path / "ds.partial"
    assert not root.exists() and (partial / INCOMPLETE_MARKER).exists()
    with pytest.raises(DatasetError, match="interrupted collect"):
        open_metadata(DatasetConfig(root=str(root)))
    with pytest.raises(DatasetError, match="incomplete dataset"):
        open_metadata(DatasetConfig(root=str(partial)))
    monkeypatch.setattr(record, "_lerobot_frame", real)
    collect(config)
    assert root.exists() and not partial.exists()
    assert open_metadata(DatasetConfig(root=str(root))).total_episodes == 2
