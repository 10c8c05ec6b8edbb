"""The cached loader returns what LeRobotDataset returns, for LeRobot data we did not write."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from embodied.data.cache import cache_path, default_cache_dir
from embodied.data.dataset import CachedDataset, history_and_chunk
from embodied.data.source import DatasetConfig, DatasetError, open_metadata, require_features
from embodied.types import ACTION, STATE


def _recipe(meta, n_obs=2, horizon=8):
    obs = [*meta.camera_keys, STATE]
    return history_and_chunk(meta.fps, obs, n_obs, [ACTION], horizon)


def _assert_same_sample(ours: dict, theirs: dict):
    for key, expected in theirs.items():
        assert key in ours, f"cached sample lacks {key}"
        if isinstance(expected, torch.Tensor):
            assert ours[key].dtype == expected.dtype and ours[key].shape == expected.shape, key
            assert torch.equal(ours[key], expected), f"{key} differs"
        else:
            assert ours[key] == expected, key


@pytest.mark.parametrize("name", ["pusht_fixture", "pusht_image_fixture", "aloha_sim_fixture"])
def test_cache_equals_lerobot_dataset(name, lerobot_fixture):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = lerobot_fixture(name)
    meta = open_metadata(DatasetConfig(root=str(root)))
    recipe = _recipe(meta)
    ours = CachedDataset(meta, recipe)
    theirs = LeRobotDataset(meta.repo_id, root=root, delta_timestamps=recipe, video_backend="pyav")
    assert len(ours) == len(theirs)
    ends = np.asarray(meta.episodes["dataset_to_index"])
    edges = [0, 1, int(ends[0]) - 1, int(ends[0]), len(ours) - 1]  # where padding happens
    for i in sorted({i for i in edges if i < len(ours)}):
        _assert_same_sample(ours[i], theirs[i])


def test_cache_equals_lerobot_dataset_on_our_recording(recorded):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root, _ = recorded
    meta = open_metadata(DatasetConfig(root=str(root)))
    ours = CachedDataset(meta, _recipe(meta))
    theirs = LeRobotDataset(
        meta.repo_id, root=root, delta_timestamps=_recipe(meta), video_backend="pyav"
    )
    for i in [0, 7, len(ours) - 1]:
        _assert_same_sample(ours[i], theirs[i])


def test_batches_have_documented_shapes_and_pads(lerobot_fixture):
    meta = open_metadata(DatasetConfig(root=str(lerobot_fixture("pusht_fixture"))))
    dataset = CachedDataset(meta, _recipe(meta, n_obs=2, horizon=16))
    batch = next(dataset.iter_batches(batch_size=5, shuffle=False))
    assert batch["observation.image"].shape == (5, 2, 3, 96, 96)
    assert batch["observation.image"].dtype == torch.float32
    assert batch["observation.image"].min() >= 0.0 and batch["observation.image"].max() <= 1.0
    assert batch[STATE].shape == (5, 2, 2) and batch[ACTION].shape == (5, 16, 2)
    assert batch[STATE + "_is_pad"][0].tolist() == [True, False]  # no history before frame 0
    assert batch[ACTION + "_is_pad"].shape == (5, 16) and not batch[ACTION + "_is_pad"].any()
    assert batch["task"] == ["Push the T-shaped block onto the T-shaped target."] * 5
    assert set(dataset.stats[ACTION]) >= {"mean", "std", "min", "max"}
    assert dataset.stats[ACTION]["mean"].shape == (2,)
    epoch = list(dataset.iter_batches(batch_size=32, shuffle=True, seed=1))
    again = list(dataset.iter_batches(batch_size=32, shuffle=True, seed=1))
    assert len(epoch) == len(dataset) // 32
    assert all(torch.equal(a["index"], b["index"]) for a, b in zip(epoch, again, strict=True))


def test_open_from_a_dataset_config(lerobot_fixture, tmp_path):
    config = DatasetConfig(
        root=str(lerobot_fixture("pusht_image_fixture")), cache_dir=str(tmp_path)
    )
    dataset = CachedDataset.open(config)
    assert len(dataset) == 161 and dataset[0]["observation.image"].shape == (3, 96, 96)
    assert list(tmp_path.glob("*.zarr"))


@pytest.mark.parametrize("name", ["pusht_fixture", "pusht_image_fixture"])
def test_frames_cached_at_the_models_size(lerobot_fixture, tmp_path, name):
    """Video and parquet images are cached at the size asked for, resampled exactly as the
    VLA's processor resamples a full-size frame, beside (not instead of) the full-size cache."""
    from policies.vla.processor_vla import resize_images

    config = DatasetConfig(root=str(lerobot_fixture(name)), cache_dir=str(tmp_path))
    full = CachedDataset.open(config)
    small = CachedDataset.open(config, frame_size=(48, 40))
    frames = small.batch([0, 80, 160])["observation.image"]
    assert frames.shape == (3, 3, 48, 40) and len(list(tmp_path.glob("*.zarr"))) == 2
    expected = resize_images(full.batch([0, 80, 160])["observation.image"], (48, 40))
    assert (frames - expected).abs().max() <= 1 / 255 + 1e-6  # uint8 rounding only


def test_cache_is_rebuilt_when_the_dataset_changes(tmp_path, lerobot_fixture):
    root = tmp_path / "pusht"
    shutil.copytree(lerobot_fixture("pusht_fixture"), root)
    meta = open_metadata(DatasetConfig(root=str(root)))
    first = cache_path(meta)
    dataset = CachedDataset(meta)
    assert first.exists() and not list(first.parent.glob("*.tmp*"))
    before = dataset[10]["action"].clone()

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    data_file = next((root / "data").rglob("*.parquet"))
    table = pq.read_table(data_file)
    doubled = pc.list_flatten(table.column("action")).to_numpy() * 2
    import pyarrow as pa

    new_action = pa.FixedSizeListArray.from_arrays(pa.array(doubled, pa.float32()), 2)
    pq.write_table(
        table.set_column(table.schema.get_field_index("action"), "action", new_action), data_file
    )
    os.utime(data_file, ns=(1, 1))

    meta = open_metadata(DatasetConfig(root=str(root)))
    assert cache_path(meta) != first
    rebuilt = CachedDataset(meta)
    assert torch.allclose(rebuilt[10]["action"], before * 2)
    assert not first.exists(), "the stale cache was left behind"


def test_interrupted_cache_build_leaves_no_cache(tmp_path, monkeypatch, lerobot_fixture):
    import embodied.data.cache as cache

    meta = open_metadata(DatasetConfig(root=str(lerobot_fixture("pusht_fixture"))))
    monkeypatch.setenv("EMBODIED_CACHE_DIR", str(tmp_path))

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cache, "_video_frames", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        CachedDataset(meta)
    assert not cache_path(meta).exists()
    monkeypatch.undo()
    monkeypatch.setenv("EMBODIED_CACHE_DIR", str(tmp_path))
    assert len(CachedDataset(meta)) == meta.total_frames
    assert default_cache_dir() == Path(tmp_path)


def test_missing_or_broken_dataset_folders_are_refused(tmp_path, lerobot_fixture):
    with pytest.raises(DatasetError, match="no dataset given"):
        open_metadata(DatasetConfig())
    with pytest.raises(DatasetError, match="does not exist"):
        open_metadata(DatasetConfig(root=str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="meta/info.json is missing"):
        open_metadata(DatasetConfig(root=str(tmp_path / "empty")))
    broken = tmp_path / "broken"
    shutil.copytree(lerobot_fixture("pusht_fixture"), broken)
    (broken / "meta/info.json").write_text("{ half written")
    with pytest.raises(DatasetError, match="is corrupt \(not JSON"):
        open_metadata(DatasetConfig(root=str(broken)))
    unfinished = tmp_path / "unfinished"
    shutil.copytree(lerobot_fixture("pusht_fixture"), unfinished)
    shutil.rmtree(unfinished / "data")
    with pytest.raises(DatasetError, match="not finalized"):
        open_metadata(DatasetConfig(root=str(unfinished)))
    old = tmp_path / "old"
    shutil.copytree(lerobot_fixture("pusht_fixture"), old)
    info = json.loads((old / "meta/info.json").read_text())
    (old / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(DatasetError, match="format v2.1"):
        open_metadata(DatasetConfig(root=str(old)))


def test_features_a_stage_needs_are_checked(lerobot_fixture):
    meta = open_metadata(DatasetConfig(root=str(lerobot_fixture("aloha_sim_fixture"))))
    require_features(meta, [STATE, ACTION], cameras=["top"], action_dim=14)
    with pytest.raises(DatasetError, match=r"lacks \['next.success'\]"):
        require_features(meta, ["next.success"], where="the success head")
    with pytest.raises(DatasetError, match=r"lacks \['observation.images.agentview'\]"):
        require_features(meta, cameras=["agentview"])
    with pytest.raises(DatasetError, match=r"actions of shape \(14,\); policy needs \(7,\)"):
        require_features(meta, action_dim=7, where="policy")
    with pytest.raises(DatasetError, match="not features of"):
        CachedDataset(meta, {"observation.images.wrist": [0.0]})
