"""The reward model: its labels, its threshold sweep, training on real frames, judging
imagined frames in the world-model environment, and RL's stop-on-disagreement guard."""

import json

import numpy as np
import pytest
import torch

from embodied.data.dataset import CachedDataset
from embodied.data.source import DatasetConfig
from embodied.reward import ClipPool, balanced_accuracy, sweep_threshold
from embodied.types import SUCCESS
from world_models.reward_model import LABEL, RewardModelConfig, load_reward_model

TINY = {"clip": 2, "frame_stride": 2, "channels": (8, 8), "width": 16, "text_dim": 8}


def test_threshold_sweep_by_hand():
    scores = np.array([0.1, 0.4, 0.7, 0.9, 0.6])
    labels = np.array([False, False, True, True, True])
    chosen = sweep_threshold(scores, labels)
    assert chosen["threshold"] == pytest.approx(0.5) and chosen["f1"] == 1.0  # (0.4 + 0.6) / 2
    assert chosen["precision"] == 1.0 and chosen["recall"] == 1.0
    noisy = sweep_threshold(np.array([0.2, 0.8, 0.3, 0.9]), np.array([False, False, True, True]))
    assert noisy["f1"] == pytest.approx(0.8) and noisy["recall"] == 1.0  # best: call 3 of 4
    # held-out episodes that all succeed tie every threshold below the lowest score: the
    # median candidate, halfway below it, not one that sits on a clip's score
    only_successes = sweep_threshold(np.array([0.9, 0.95]), np.array([True, True]))
    assert only_successes["threshold"] == pytest.approx(0.45)


def test_the_held_out_episodes_hold_both_outcomes():
    from world_models.windows import holdout_by_outcome

    # 12 episodes of 2 rows; episodes 2, 5 and 9 fail (no row succeeds), the rest succeed
    episode = np.repeat(np.arange(12), 2)
    success = np.tile([False, True], 12)
    success[np.isin(episode, [2, 5, 9])] = False
    held = np.unique(episode[holdout_by_outcome(episode, success, every=4)])
    # of the 9 successes (0 1 3 4 6 7 8 10 11) the 4th and 8th; of 3 failures (fewer than 4)
    # the last
    assert held.tolist() == [4, 9, 10]
    assert not holdout_by_outcome(episode, success, every=0).any()
    success[np.isin(episode, [5, 9])] = np.tile([False, True], 2)  # now only episode 2 fails
    held = np.unique(episode[holdout_by_outcome(episode, success, every=4)])
    assert held.tolist() == [4, 8]  # a lone failure stays in training


def test_balanced_accuracy_does_not_reward_calling_everything_a_failure():
    labels = np.array([True] + [False] * 9)
    assert balanced_accuracy(np.zeros(10, bool), labels) == 0.5  # 90 % plain accuracy
    assert balanced_accuracy(labels, labels) == 1.0
    assert balanced_accuracy(np.ones(3, bool), np.zeros(3, bool)) == 0.0


def test_clip_labels_are_the_simulators_success_of_the_last_frame(recorded):
    """Last clips of successful episodes are positives; earlier clips are negatives; the
    held-out split is the saved one; batches keep the order asked for."""
    root, _ = recorded
    dataset = CachedDataset.open(DatasetConfig(root=str(root)))
    config = RewardModelConfig(image_keys=tuple(dataset.meta.camera_keys), holdout_every=2, **TINY)
    train, held = ClipPool([dataset], config, False), ClipPool([dataset], config, True)
    assert len(train) + len(held) == len(dataset)
    success = np.asarray(dataset.arrays[SUCCESS]).reshape(-1) > 0
    episode = np.asarray(dataset.arrays["episode_index"])
    assert np.array_equal(train.labels, success[episode % 2 == 0])
    for ids, succeeded in train.episodes():
        labels = train.labels[ids]
        assert succeeded and labels[-1] and not labels[0]  # the end is done, the start not
    ids = train.balanced()
    assert train.labels[ids].mean() == 0.5  # positives repeated up to the negatives
    picked = np.array([len(train) - 1, 0, 5])
    batch = train.batch(picked)
    assert batch[LABEL].tolist() == train.labels[picked].tolist()
    assert batch[config.image_keys[0]].shape[:2] == (3, 2)  # clips of 2 frames


@pytest.fixture(scope="module")
def reward_model(recorded, tmp_path_factory):
    from embodied.train_reward_model import TrainRewardModelConfig, train_reward_model

    root, _ = recorded
    out = tmp_path_factory.mktemp("reward")
    config = TrainRewardModelConfig(dataset=DatasetConfig(root=str(root)), output_dir=str(out),
                                    reward_model=dict(TINY), holdout_every=2, steps=4,
                                    batch_size=8, save_every=4)  # fmt: skip
    return train_reward_model(config)


def test_train_reward_model_chooses_and_saves_its_threshold(reward_model, weights):
    model = load_reward_model(reward_model)
    chosen = json.loads((reward_model.parent / "threshold.json").read_text())
    assert model.config.threshold == pytest.approx(chosen["threshold"])
    assert chosen["episodes"] == 2 and 0.0 <= chosen["threshold"] <= 1.0
    assert model.config.holdout_every == 2
    assert all(torch.isfinite(v).all() for v in weights(reward_model).values())


def _world_model(recorded, tmp_path, stride: int = 2):
    from embodied.train_world_model import TrainWorldModelConfig, train_world_model

    root, _ = recorded
    settings = {
        "channels": (8, 8, 8),
        "latent_channels": 4,
        "dynamics_width": 8,
        "dynamics_blocks": 1,
        "text_dim": 8,
        "train_horizon": 2,
        "frame_stride": stride,
    }
    return train_world_model(TrainWorldModelConfig(
        dataset=DatasetConfig(root=str(root)), output_dir=str(tmp_path / "wm"),
        world_model=settings, steps=1, batch_size=2))  # fmt: skip


def _with_threshold(folder, threshold: float, tmp_path):
    """A copy of the reward-model checkpoint with another threshold."""
    import shutil

    copy = tmp_path / f"reward_{threshold}"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "threshold": threshold}))
    return copy


def test_the_reward_model_judges_imagined_frames(recorded, reward_model, tmp_path):
    from embodied.imagination import judge_episodes
    from world_models.registry import load_world_model

    root, _ = recorded
    world = load_world_model(_world_model(recorded, tmp_path))
    dataset = CachedDataset.open(DatasetConfig(root=str(root)))
    always = load_reward_model(_with_threshold(reward_model, -1.0, tmp_path))
    never = load_reward_model(_with_threshold(reward_model, 1.0, tmp_path))
    assert judge_episodes(world, dataset, [0, 1], 0.5, always)["recall"] == 1.0
    assert judge_episodes(world, dataset, [0, 1], 0.5, never)["recall"] == 0.0
    strided = load_world_model(_world_model(recorded, tmp_path / "s3", stride=3))
    with pytest.raises(ValueError, match="clips are 2 steps apart.*steps 3 at a time"):
        judge_episodes(strided, dataset, [0, 1], 0.5, always)


def _finetune(recorded, reward, tmp_path, **extra):
    """A tiny RL run of 2 iterations with the reward model at `reward`, refreshes at the
    start and after iteration 1 (none after the last)."""
    from embodied.ray_utils import RaySettings
    from embodied.refs import PolicyRef, RewardModelRef, WorldModelRef
    from embodied.rl.finetune import AlgoSettings, FinetuneConfig, finetune
    from embodied.rl.refresh import RefreshSettings
    from embodied.train_policy import TrainPolicyConfig, train_policy

    root, _ = recorded
    data = DatasetConfig(root=str(root))
    policy = train_policy(TrainPolicyConfig(
        dataset=data, output_dir=str(tmp_path / "policy"), steps=1, batch_size=4,
        policy={"dim": 16, "depth": 1, "heads": 2, "vision_channels": (8,), "vision_grid": 2,
                "chunk_size": 4, "n_action_steps": 2}))  # fmt: skip
    world = WorldModelRef(str(_world_model(recorded, tmp_path)))
    refresh = {"every": 1, "task": "lift", "episodes": 2, "steps": 1, "batch_size": 2,
               "reward_steps": 1, **extra.pop("refresh", {})}  # fmt: skip
    config = FinetuneConfig(
        policy=PolicyRef(str(policy)), world_model=world, reward_model=RewardModelRef(str(reward)),
        dataset=data, output_dir=str(tmp_path / "ft"), iterations=2, horizon=8,
        algo=AlgoSettings(group_size=2, starts=1, minibatch_size=8, lr=1e-3),
        refresh=RefreshSettings(**refresh), ray=RaySettings(num_workers=0), **extra,
    )  # fmt: skip
    return policy, finetune(config)


@pytest.mark.sim
def test_rl_stops_updating_when_the_reward_model_disagrees_with_mujoco(
    recorded, reward_model, tmp_path, weights
):
    """A reward model that calls every episode a success, against the untrained policy's
    MuJoCo failures: the guard fires at the start refresh and no update is made."""
    wrong = _with_threshold(reward_model, -1.0, tmp_path)
    policy, result = _finetune(recorded, wrong, tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "ft/metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0] and "reward model" in rows[0]["stopped"]
    assert rows[0]["reward_balanced_accuracy"] < 0.6
    before, after = weights(policy), weights(result)
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.sim
def test_refreshes_refit_the_reward_model_and_can_match_the_imagined_rate(
    recorded, reward_model, tmp_path
):
    refresh = {"match_rate": True, "rate_prior": 0.5, "min_score": 0.0}  # adopt every one
    _finetune(recorded, reward_model, tmp_path, reward_guard=0.0, refresh=refresh)
    rows = [json.loads(x) for x in (tmp_path / "ft/metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1, 2] and all("stopped" not in r for r in rows)
    refreshes = [r for r in rows if "refresh_adopted" in r]
    assert [r["iteration"] for r in refreshes] == [0, 1]
    assert all(0.0 < r["imagined_threshold"] < 1.0 and r["refresh_adopted"] for r in refreshes)
    for r in refreshes:  # 2 real episodes a refresh, and Jeffreys' half a success and a failure
        assert r["matched_rate"] == pytest.approx((2 * r["refresh_success"] + 0.5) / 3)
    assert [r["real_episodes"] for r in rows] == [2, 4, 4]
    models = json.loads(
        (tmp_path / "ft/checkpoints/0000002/training_state/models.json").read_text()
    )
    refit = tmp_path / "ft/reward_models/00001/checkpoints/0000001/pretrained_model"
    assert models["reward_model"] == str(refit)  # the guard judges real frames at its own
    assert models["imagined_threshold"] == refreshes[-1]["imagined_threshold"]  # imagination's
    assert load_reward_model(refit).config.threshold == pytest.approx(
        json.loads((refit.parent / "threshold.json").read_text())["threshold"]
    )  # chosen again on the held-out real episodes, the policy's own among them


@pytest.mark.sim
def test_a_refresh_whose_imagination_collapsed_is_not_adopted(recorded, reward_model, tmp_path):
    """min_score 1: no imagined episode can score above it, as when a refit leaves the reward
    model calling every imagined episode a failure. The recorded episodes still count, and
    RL keeps imagining with the models it had."""
    refresh = {"match_rate": True, "rate_prior": 0.5, "min_score": 1.0}
    _finetune(recorded, reward_model, tmp_path, reward_guard=0.0, refresh=refresh)
    rows = [json.loads(x) for x in (tmp_path / "ft/metrics.jsonl").read_text().splitlines()]
    refreshes = [r for r in rows if "refresh_adopted" in r]
    assert [r["refresh_adopted"] for r in refreshes] == [False] * 2
    assert all(r["matched_threshold"] < 1.0 and "imagined_threshold" not in r for r in rows[:2])
    assert [r["real_episodes"] for r in rows] == [2, 4, 4]
    models = json.loads(
        (tmp_path / "ft/checkpoints/0000002/training_state/models.json").read_text()
    )
    given = json.loads((tmp_path / "ft/finetune_config.json").read_text())
    assert models["world_model"] == given["world_model"]["path"]
    assert models["reward_model"] == str(reward_model) and models["imagined_threshold"] == -1.0
    assert (tmp_path / "ft/world_models/00001").is_dir()  # refitted, measured, not used


def test_threshold_for_rate_lets_that_share_of_episodes_succeed():
    from embodied.rl.calibration import threshold_for_rate

    scores = np.array([0.9, 0.1, 0.5, 0.3])
    assert threshold_for_rate(scores, 0.5) == pytest.approx(0.4)  # 0.9 and 0.5 pass
    assert (scores > threshold_for_rate(scores, 0.25)).sum() == 1
    assert (scores > threshold_for_rate(scores, 0.0)).sum() == 0
    assert (scores > threshold_for_rate(scores, 1.0)).sum() == 4


def test_the_gap_guard_fires_when_only_imagined_success_climbs():
    """The quickstart's rows (seed 0, MuJoCo checks of 10 episodes at 0, 15 and 30): without
    refreshes imagined success climbed while MuJoCo's fell, and the guard fires at the
    check of iteration 15, back to iteration 0; with refreshes (imagination matched to the
    real rate) it stays quiet."""
    from embodied.rl.guards import imagination_gap

    def rows(real: dict, imagined: list[float]) -> list[dict]:
        out = [{"iteration": 0, "mujoco_success": real[0]}]
        for i, s in enumerate(imagined, start=1):
            out.append({"iteration": i, "wm_success": s, **({"mujoco_success": real[i]} if i
                        in real else {})})  # fmt: skip
        return out

    climbing = [0.34, 0.5, 0.55, 0.55, 0.64, 0.47, 0.53, 0.66, 0.7, 0.53, 0.69, 0.73, 0.77,
                0.72, 0.75]  # fmt: skip
    unguarded = rows({0: 0.6, 15: 0.4}, climbing)
    why, back = imagination_gap(unguarded, 0.3)
    assert back == 0 and "outgrew MuJoCo's by +0.47" in why
    assert imagination_gap(unguarded[:-1], 0.3) is None  # only at a check
    assert imagination_gap(unguarded, 2.0) is None  # 2: never
    matched = [0.27, 0.28, 0.08, 0.16, 0.28, 0.27, 0.19, 0.28, 0.42, 0.27, 0.22, 0.28, 0.2,
               0.31, 0.27]  # fmt: skip
    assert imagination_gap(rows({0: 0.6, 15: 0.5}, matched), 0.3) is None
    assert imagination_gap(rows({0: 0.6}, matched), 0.3) is None  # one check: no trend
    # it goes back to the best earlier check, the earliest on a tie (this run's iteration-15
    # policy had also scored 60 % in 10 episodes, and 33 % against 47 % on 30 seeds)
    refitted = rows({0: 0.6, 15: 0.6, 30: 0.3}, [0.05] * 15 + [0.5] * 15)
    assert imagination_gap(refitted, 0.3)[1] == 0
    assert imagination_gap(rows({0: 0.5, 15: 0.6, 30: 0.3}, [0.05] * 15 + [0.5] * 15), 0.3)[1] == 15
    # both guards at the same check (seed 1's iteration 15): RL stops and still goes back
    from types import SimpleNamespace

    from embodied.rl.guards import stop_reason

    both = [*unguarded[:-1], {**unguarded[-1], "reward_balanced_accuracy": 0.5}]
    config = SimpleNamespace(reward_guard=0.6, gap_guard=0.3, env="world_model")
    why, back = stop_reason(both, config)
    assert back == 0 and "balanced accuracy 0.50" in why and "outgrew" in why
    assert stop_reason([*unguarded[:-1], {**unguarded[-2], "reward_balanced_accuracy": 0.5}],
                       config)[1] is None  # the reward guard alone, between checks  # fmt: skip


@pytest.mark.sim
def test_the_gap_guard_puts_back_the_checked_policy(recorded, reward_model, tmp_path, weights):
    """Forced to fire (`gap_guard=-2`) at the check after iteration 1: RL stops and its
    final policy is the one checked at iteration 0, the pretrained weights."""
    policy, result = _finetune(recorded, reward_model, tmp_path, reward_guard=0.0, gap_guard=-2.0,
                               eval_task="lift", eval_every=1, eval_episodes=1,
                               refresh={"every": 0})  # fmt: skip
    rows = [json.loads(x) for x in (tmp_path / "ft/metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [0, 1] and "iteration 0" in rows[1]["stopped"]
    assert json.loads((tmp_path / "ft/stopped.json").read_text())["iteration"] == 1
    before, after = weights(policy), weights(result)
    assert all(torch.equal(before[k], after[k]) for k in before)
