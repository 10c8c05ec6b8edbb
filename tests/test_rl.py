"""RL fine-tuning in the world model: the losses by hand, the loop on Ray, resume, failures."""

import json
import math
from pathlib import Path

import pytest
import torch
from tiny import WORLD_MODEL, train_tiny

from embodied.config import ConfigError
from embodied.data.source import DatasetConfig
from embodied.ray_utils import RaySettings
from embodied.refs import PolicyRef, WorldModelRef
from embodied.rl.finetune import AlgoSettings, FinetuneConfig, finetune
from embodied.rl.losses import clipped_surrogate, gae, group_advantages


def test_group_advantages_by_hand():
    returns = torch.tensor([1.0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0])
    groups = torch.arange(4).repeat_interleave(4)
    adv, keep = group_advantages(returns, groups)
    std = math.sqrt(0.25 * 0.75)
    expected = [0.75 / std, -0.25 / std, -0.25 / std, -0.25 / std, 0, 0, 0, 0, 0, 0, 0, 0,
                1, 1, -1, -1]  # fmt: skip
    assert torch.allclose(adv, torch.tensor(expected), atol=1e-4)
    assert keep.tolist() == [True] * 4 + [False] * 8 + [True] * 4  # all-success/all-fail dropped
    _, keep = group_advantages(returns, groups, min_rate=0.3, max_rate=0.9)  # World-Gymnast's band
    assert keep.tolist() == [False] * 12 + [True] * 4


def test_clipped_surrogate_by_hand():
    ratio = torch.tensor([1.5, 1.5, 0.5, 0.5, 1.1])
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0, 3.0])
    mask = torch.tensor([True, True, True, True, False])
    loss, info = clipped_surrogate(ratio.log(), torch.zeros(5), adv, mask, 0.2, 0.28)
    # A>0 caps the gain at 1 + 0.28; A<0 with ratio 1.5 keeps -1.5; ratio 0.5: 0.5 and -0.8.
    assert loss.item() == pytest.approx((-1.28 + 1.5 - 0.5 + 0.8) / 4)
    assert info["clip_frac"] == pytest.approx(1.0)


def test_gae_by_hand():
    rewards = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    values = torch.full((3, 2), 0.5)
    alive = torch.tensor([[True, True], [True, True], [True, False]])
    adv, returns = gae(rewards, values, alive, gamma=0.9, lam=0.8)
    # episode 0: deltas 0.9*.5-.5=-.05, -.05, 1-.5=.5; episode 1 ends at t=1: delta 1-.5=.5
    a2 = 0.5
    a1 = -0.05 + 0.72 * a2
    a0 = -0.05 + 0.72 * a1
    assert torch.allclose(adv[:, 0], torch.tensor([a0, a1, a2]))
    assert torch.allclose(adv[:, 1], torch.tensor([-0.05 + 0.72 * 0.5, 0.5, 0.0]))
    assert torch.allclose(returns, adv + values)


@pytest.fixture(scope="module")
def checkpoints(recorded, tmp_path_factory):
    root, _ = recorded
    data = DatasetConfig(root=str(root))
    policy, world_model = train_tiny(data, tmp_path_factory.mktemp("rl"))
    return policy, world_model, data


def _config(checkpoints, tmp_path, **extra) -> FinetuneConfig:
    """A few tiny iterations; every group kept and an entropy bonus, so that even an
    untrained world model's uniform rewards move the weights."""
    policy, world_model, data = checkpoints
    algo = AlgoSettings(group_size=4, starts=2, minibatch_size=16, lr=1e-3, min_group_rate=-1.0,
                        max_group_rate=2.0, entropy_coef=0.01)  # fmt: skip
    settings = {"iterations": 2, "horizon": 10, "save_every": 1, "algo": algo,
                "ray": RaySettings(num_workers=0), "policy": PolicyRef(str(policy)),
                "world_model": WorldModelRef(str(world_model)), "dataset": data,
                "output_dir": str(tmp_path / "ft")}  # fmt: skip
    return FinetuneConfig(**{**settings, **extra})


@pytest.mark.parametrize("algo", ["grpo", "ppo"])
def test_finetune_changes_the_policy_and_resumes_exactly(checkpoints, tmp_path, algo, weights):
    config = _config(checkpoints, tmp_path, iterations=3)
    config.algo.type = algo
    whole = finetune(config)
    before, after = weights(checkpoints[0]), weights(whole)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(v).all() for v in after.values())
    rows = [json.loads(x) for x in (tmp_path / "ft/metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3]
    assert {"wm_success", "time_rollout_s", "time_learn_s", "time_sync_s"} <= set(rows[0])
    by_instruction = rows[0]["wm_success_by_instruction"]
    assert by_instruction and all(0.0 <= v <= 1.0 for v in by_instruction.values())
    split = _config(checkpoints, tmp_path / "split", iterations=2)
    split.algo.type = algo
    finetune(split)
    split.iterations = 3
    resumed = finetune(split)
    a, b = weights(whole), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_policy_episodes_are_recorded_a_block_at_a_time(checkpoints, tmp_path, monkeypatch):
    """A large real-episode budget is played `LOCKSTEP` envs at a time (hundreds at once run
    out of memory), and every episode keeps the seed it would have had in one batch."""
    import envs.batched
    from embodied.data.record import EPISODES_SIDECAR
    from embodied.policy_io import load_policy
    from embodied.rl import refresh

    sizes = []

    class Counted(envs.batched.BatchedTaskEnv):
        def __init__(self, task, n, **settings):
            sizes.append(n)
            super().__init__(task, n, **settings)

    monkeypatch.setattr(refresh, "LOCKSTEP", 2)
    monkeypatch.setattr(envs.batched, "BatchedTaskEnv", Counted)
    policy, pre, post = load_policy(str(checkpoints[0]), policy_type="embodied_vla")
    cameras = [f"observation.images.{c}" for c in ("agentview", "wrist")]
    root = refresh.record_policy_episodes(tmp_path / "rec", policy, pre, post, "lift", 3, 40,
                                          5, 1.0, cameras, 64)  # fmt: skip
    assert sizes == [2, 1]
    rows = [json.loads(x) for x in (root / EPISODES_SIDECAR).read_text().splitlines()]
    assert [r["seed"] for r in rows] == [40, 41, 42]


def test_world_model_refresh_records_mujoco_episodes_and_resumes_exactly(
    checkpoints, tmp_path, weights
):
    from embodied.data.record import EPISODES_SIDECAR
    from embodied.rl.refresh import RefreshSettings

    refresh = RefreshSettings(every=2, task="lift", episodes=1, steps=2, batch_size=4)
    whole = finetune(_config(checkpoints, tmp_path, iterations=3, refresh=refresh))
    out = tmp_path / "ft"
    rows = _rows(out)
    assert [r["iteration"] for r in rows if "refresh_wm_loss" in r] == [0, 2]
    # the refreshed model judges the original data's (all successful) episodes
    assert all(0.0 <= r["refresh_wm_recall"] <= 1.0 for r in rows if "refresh_wm_loss" in r)
    episodes = (out / "refresh/00002" / EPISODES_SIDECAR).read_text().splitlines()
    assert json.loads(episodes[0])["task"] == "lift"
    state = json.loads((out / "checkpoints/0000003/training_state/models.json").read_text())
    refreshed_model = out / "world_models/00002/checkpoints/0000002/pretrained_model"
    assert state["world_model"] == str(refreshed_model)  # of the training loop's layout
    assert (refreshed_model.parent / "training_state/step.json").is_file()
    refreshed = weights(refreshed_model)
    original = weights(checkpoints[1])
    assert any(not torch.equal(original[k], refreshed[k]) for k in original)

    # a run of 2 skips the refresh after its last iteration (nothing would imagine with it);
    # raised to 3 on resume, it does that refresh first and ends as the run of 3 did
    split = _config(checkpoints, tmp_path / "split", iterations=2, refresh=refresh)
    finetune(split)
    split_out = tmp_path / "split/ft"
    assert not (split_out / "refresh/00002").exists()
    assert _rows(split_out)[-1]["real_episodes"] == 1
    finetune(split)  # rerun as it was: finished, it refreshes nothing
    assert not (split_out / "refresh/00002").exists()
    (split_out / "world_models/00009").mkdir()  # as if left by a later, lost run
    split.iterations = 3
    resumed = finetune(split)
    assert not (split_out / "world_models/00009").exists()
    a, b = weights(whole), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    again = _rows(split_out)
    assert [r["iteration"] for r in again] == [r["iteration"] for r in rows]
    assert [r.get("real_episodes") for r in again] == [r.get("real_episodes") for r in rows]
    models = json.loads((split_out / "checkpoints/0000003/training_state/models.json").read_text())
    assert Path(models["world_model"]).relative_to(split_out) == refreshed_model.relative_to(out)


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.ray
def test_two_ray_workers_and_a_killed_one_is_replaced(checkpoints, tmp_path, weights,
                                                      fault_report):  # fmt: skip
    import ray

    from embodied.rl import finetune as module

    config = _config(checkpoints, tmp_path, iterations=2, ray=RaySettings(num_workers=2))
    real_sample = module.Workers.sample
    killed = []

    def sample_and_kill_once(self, *args):
        if not killed:
            killed.append(True)
            ray.kill(self.actors[0], no_restart=False)  # the actor dies; Ray restarts it
        return real_sample(self, *args)

    module.Workers.sample = sample_and_kill_once
    try:
        result = finetune(config)
    finally:
        module.Workers.sample = real_sample
        ray.shutdown()
    rows = [json.loads(x) for x in (tmp_path / "ft/metrics.jsonl").read_text().splitlines()]
    survived = [r["iteration"] for r in rows] == [1, 2] and rows[0]["episodes"] == 16
    fault_report("actor killed", "RL rollout actor", "survived" if survived else "lost")
    assert survived
    assert all(torch.isfinite(v).all() for v in weights(result).values())


def test_mismatched_inputs_fail_before_any_rollout(checkpoints, tmp_path, recorded):
    from embodied.train_world_model import TrainWorldModelConfig, train_world_model
    from world_models.registry import load_world_model

    root, _ = recorded

    def world_model(name: str, cameras=None, **settings) -> WorldModelRef:
        return WorldModelRef(
            str(
                train_world_model(
                    TrainWorldModelConfig(
                        dataset=DatasetConfig(root=str(root)),
                        output_dir=str(tmp_path / name),
                        world_model={**WORLD_MODEL, **settings},
                        cameras=cameras or (),
                        steps=1,
                        batch_size=2,
                    )
                )
            )
        )

    no_head = world_model("nh", success_head=False)
    assert not load_world_model(no_head.path).config.success_head
    with pytest.raises(ValueError, match="no success head"):
        finetune(_config(checkpoints, tmp_path, world_model=no_head))
    one_camera = world_model("oc", cameras=("wrist",))
    with pytest.raises(ValueError, match="does not predict"):
        finetune(_config(checkpoints, tmp_path, world_model=one_camera))
    strided = world_model("st", frame_stride=3)
    with pytest.raises(ConfigError, match="executes 4 actions.*steps 3 at a time"):
        finetune(_config(checkpoints, tmp_path, world_model=strided, n_action_steps=4))
    with pytest.raises(ConnectionError, match="cannot reach"):
        finetune(
            _config(checkpoints, tmp_path, ray=RaySettings(num_workers=2, address="127.0.0.1:1"))
        )
    assert not (tmp_path / "ft").exists()


def test_the_real_episode_budget_is_counted_and_respected(checkpoints, tmp_path):
    from embodied.rl.refresh import RefreshSettings

    refresh = RefreshSettings(every=1, task="lift", episodes=1, steps=1, batch_size=2)
    finetune(_config(checkpoints, tmp_path, iterations=3, refresh=refresh, real_episodes=2))
    rows = [json.loads(x) for x in (tmp_path / "ft/metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "refresh_episodes" in r] == [0, 1]  # then spent
    assert [r["real_episodes"] for r in rows] == [1, 2, 2, 2]


def test_rl_in_mujoco_runs_the_same_groups_and_spends_its_budget(checkpoints, tmp_path, weights):
    """The baseline: the same learner on groups run in MuJoCo (G episodes from one start
    state), every episode counted against the real-episode budget."""
    import numpy as np

    from embodied.rl.imagined_worker import ImaginedWorker
    from embodied.rl.mujoco_worker import MujocoWorker
    from embodied.rl.rollout_worker import WorkerSpec

    policy, world_model, data = checkpoints
    spec = WorkerSpec(str(policy), str(world_model), data, starts=1, group_size=2, horizon=10,
                      n_action_steps=0, temperature=1.0, env="mujoco", task="lift")  # fmt: skip
    weights_now = {k: v.numpy() for k, v in weights(policy).items()}
    real = MujocoWorker(spec).sample(weights_now, seed=3)
    imagined = ImaginedWorker(spec).sample(weights_now, seed=3)
    assert set(real) == set(imagined)
    for key in real:  # same layout; only the number of decisions differs
        assert real[key].shape[1:] == imagined[key].shape[1:] or key in ("task", "start",
               "group", "success", "steps"), key  # fmt: skip
    first = real["obs/observation.state"][0]
    assert np.array_equal(first[0], first[1])  # a group starts from one state
    assert list(real["group"]) == [0, 0]
    assert np.array_equal(real["reward"].sum(0), real["success"].astype(np.float32))

    config = _config(checkpoints, tmp_path, iterations=5, env="mujoco", task="lift",
                     real_episodes=5)  # fmt: skip
    config.algo.starts, config.algo.group_size = 1, 2
    result = finetune(config)
    rows = [json.loads(x) for x in (tmp_path / "ft/metrics.jsonl").read_text().splitlines()]
    assert [(r["iteration"], r["episodes"], r["real_episodes"]) for r in rows] == [
        (1, 2, 2), (2, 2, 4)]  # a third iteration would spend 6 > 5  # fmt: skip
    before, after = weights(policy), weights(result)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_rl_in_mujoco_refuses_what_it_cannot_do(checkpoints, tmp_path):
    from embodied.rl.refresh import RefreshSettings

    cases = [
        ({"env": "sim"}, "--env must be one of"),
        ({"env": "mujoco"}, "needs MuJoCo tasks"),
        ({"env": "mujoco", "task": "lift", "refresh": RefreshSettings(every=1)}, "no world model"),
        ({"env": "mujoco", "task": "lift", "real_episodes": 3}, "does not pay for one iteration"),
    ]
    for extra, message in cases:
        with pytest.raises(ConfigError, match=message):
            finetune(_config(checkpoints, tmp_path, **extra))
    assert not (tmp_path / "ft").exists()


def test_rl_in_mujoco_shares_the_tasks_out_among_the_starts(checkpoints):
    from embodied.rl.mujoco_worker import FIRST_START_SEED, MujocoWorker
    from embodied.rl.rollout_worker import WorkerSpec

    policy, world_model, data = checkpoints
    spec = WorkerSpec(str(policy), str(world_model), data, starts=4, group_size=2, horizon=10,
                      n_action_steps=0, temperature=1.0, env="mujoco",
                      task="lift,lang_cubes")  # fmt: skip
    worker = MujocoWorker(spec)
    for seed in range(5):
        specs, seeds, texts = worker.starts(seed)
        names = [s.name for s in specs]
        assert sorted(names) == ["lang_cubes"] * 4 + ["lift"] * 4  # two starts each
        assert names[0::2] == names[1::2] and seeds[0::2] == seeds[1::2]  # groups of 2
        assert all(s >= FIRST_START_SEED for s in seeds)  # never an evaluation seed
        assert all(t in s.instructions for s, t in zip(specs, texts, strict=True))
    assert worker.starts(3) == worker.starts(3)


def test_a_ray_address_is_never_ignored(checkpoints, tmp_path, capsys):
    """Given an address and no worker count, finetune goes to that cluster (here: stops,
    since nothing listens) instead of quietly running in this process; the CLI says why in
    one line."""
    from embodied.cli import main

    config = _config(checkpoints, tmp_path, ray=RaySettings(address="127.0.0.1:1"))
    with pytest.raises(ConnectionError, match="cannot reach the Ray cluster at '127.0.0.1:1'"):
        finetune(config)
    policy, world_model, data = checkpoints
    args = [f"--policy.path={policy}", f"--world_model.path={world_model}",
            f"--dataset.root={data.root}", f"--output_dir={tmp_path / 'cli'}",
            "--ray.address=127.0.0.1:1"]  # fmt: skip
    assert main(["finetune", *args]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith("embodied finetune: cannot reach the Ray cluster at '127.0.0.1:1'")
    )
