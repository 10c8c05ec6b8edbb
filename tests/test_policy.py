"""Contract tests of the VLA policy, its LeRobot plugin, training and evaluation."""

import json
import math
import shutil

import pytest
import torch

from embodied.data.dataset import CachedDataset
from embodied.data.source import DatasetConfig, open_metadata
from embodied.policy_io import CheckpointError, load_policy, vla_config_for
from embodied.types import ACTION
from policies.action_head import ChunkGaussian

TINY = {"dim": 32, "depth": 1, "heads": 2, "vision_channels": (8, 16), "vision_grid": 2}


@pytest.fixture(scope="module")
def setup(recorded):
    from policies.vla.modeling_vla import VLAPolicy
    from policies.vla.processor_vla import make_embodied_vla_pre_post_processors

    root, _ = recorded
    meta = open_metadata(DatasetConfig(root=str(root)))
    config = vla_config_for(meta, {**TINY, "device": "cpu"})
    torch.manual_seed(0)
    policy = VLAPolicy(config)
    pre, post = make_embodied_vla_pre_post_processors(config, meta.stats)
    chunk = [i / meta.fps for i in range(config.chunk_size)]
    raw = CachedDataset(meta, {ACTION: chunk}).batch(list(range(0, 64, 4)))
    return meta, policy, pre, post, pre(dict(raw)), raw


def test_shapes_and_backward(setup):
    _, policy, _, _, batch, _ = setup
    dist = policy.distribution(batch)
    assert dist.mean.shape == (16, policy.config.chunk_size, 7)
    loss, info = policy(batch)
    loss.backward()
    assert torch.isfinite(loss) and set(info) == {"mse", "nll"}
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in policy.parameters())
    policy.zero_grad()


def test_loss_decreases_on_a_fixed_batch(setup):
    from policies.vla.modeling_vla import VLAPolicy

    _, policy, _, _, batch, _ = setup
    model = VLAPolicy(policy.config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(30):
        loss, _ = model(batch)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.7 * first


def test_sample_log_prob_and_entropy_are_exact():
    torch.manual_seed(0)
    mean, log_std = torch.randn(2, 3, 4), torch.randn(2, 3, 4) * 0.3
    dist = ChunkGaussian(mean, log_std)
    actions = dist.sample(temperature=1.5)
    reference = torch.distributions.Normal(mean, log_std.exp() * 1.5)
    expected = reference.log_prob(actions).sum((1, 2))
    assert torch.allclose(dist.log_prob(actions, temperature=1.5), expected, atol=1e-5)
    assert torch.allclose(dist.entropy(temperature=1.5), reference.entropy().sum((1, 2)), atol=1e-5)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    masked = (reference.log_prob(actions).sum(-1) * mask).sum(-1)
    assert torch.allclose(dist.log_prob(actions, mask=mask, temperature=1.5), masked, atol=1e-5)
    assert torch.equal(dist.mode, mean)
    many = ChunkGaussian(torch.zeros(20000, 1, 1), torch.zeros(20000, 1, 1)).sample(temperature=2.0)
    assert math.isclose(many.std().item(), 2.0, rel_tol=0.05)


def test_select_action_replans_every_n_action_steps(setup):
    _, policy, _, _, batch, _ = setup
    policy.eval()
    single = {k: v[:1] for k, v in batch.items() if k.startswith("observation") or k == "task"}
    policy.reset()
    chunk = policy.predict_action_chunk(single)[0]
    actions = [policy.select_action(single)[0] for _ in range(policy.config.n_action_steps)]
    assert torch.allclose(torch.stack(actions), chunk[: policy.config.n_action_steps])
    assert len(policy._queue) == 0


def test_save_load_round_trip_through_lerobot_factory(setup, tmp_path):
    from lerobot.policies.factory import get_policy_class
    from lerobot.utils.import_utils import register_third_party_plugins

    _, policy, pre, post, batch, raw = setup
    policy.eval()
    for part in (policy, pre, post):
        part.save_pretrained(tmp_path)
    register_third_party_plugins()  # imports the lerobot_policy_embodied_vla distribution
    cls = get_policy_class("embodied_vla")
    loaded = cls.from_pretrained(tmp_path)
    assert torch.equal(loaded.predict_action_chunk(batch), policy.predict_action_chunk(batch))
    ours, ours_pre, ours_post = load_policy(tmp_path)
    chunk = ours.predict_action_chunk(ours_pre(dict(raw)))
    assert torch.equal(chunk, policy.predict_action_chunk(batch))
    assert torch.equal(ours_post(chunk), post(chunk))


def test_bad_checkpoints_are_refused(setup, tmp_path):
    _, policy, pre, post, _, _ = setup
    good = tmp_path / "good"
    for part in (policy, pre, post):
        part.save_pretrained(good)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_policy(tmp_path / "nothing")
    missing = tmp_path / "missing"
    shutil.copytree(good, missing)
    (missing / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"\['model.safetensors'\] missing"):
        load_policy(missing)
    other = tmp_path / "other"
    shutil.copytree(good, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "type": "act"}))
    with pytest.raises(CheckpointError, match="type 'act'"):
        load_policy(other)
    truncated = tmp_path / "truncated"
    shutil.copytree(good, truncated)
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="does not load"):
        load_policy(truncated)


def test_dataset_without_what_the_policy_needs_is_refused(lerobot_fixture):
    from embodied.data.source import DatasetError

    meta = open_metadata(DatasetConfig(root=str(lerobot_fixture("pusht_fixture"))))
    with pytest.raises(DatasetError, match="lacks"):
        vla_config_for(meta, TINY, cameras=("agentview",))


def _train(tmp_path, root, steps, out="run", **extra):
    from embodied.train_policy import TrainPolicyConfig, train_policy

    config = TrainPolicyConfig(
        dataset=DatasetConfig(root=str(root)),
        output_dir=str(tmp_path / out),
        policy=dict(TINY),
        steps=steps,
        batch_size=8,
        log_every=2,
        save_every=3,
        **extra,
    )
    return train_policy(config)


def test_resume_equals_uninterrupted_training(recorded, tmp_path):
    from safetensors.torch import load_file

    root, _ = recorded
    whole = _train(tmp_path, root, 6, out="whole")
    _train(tmp_path, root, 3, out="split")
    resumed = _train(tmp_path, root, 6, out="split")
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lines = (tmp_path / "split/metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [2, 3, 4, 6]  # 3 is the interrupted run's end


def test_nan_loss_stops_training_with_a_clear_error(recorded, tmp_path, monkeypatch):
    from policies.vla.modeling_vla import VLAPolicy

    root, _ = recorded
    real = VLAPolicy.forward
    monkeypatch.setattr(
        VLAPolicy,
        "forward",
        lambda self, b: (real(self, b)[0] * float("nan"), {"mse": 0, "nll": 0}),
    )
    with pytest.raises(FloatingPointError, match="loss is nan at step 0"):
        _train(tmp_path, root, 4)
    assert not (tmp_path / "run/checkpoints/last.json").exists()


@pytest.mark.sim
def test_eval_writes_summary_records_and_videos(recorded, tmp_path):
    from embodied.evaluate import EnvSettings, EvalConfig, EvalSettings, PolicyRef, evaluate

    root, _ = recorded
    checkpoint = _train(tmp_path, root, 2)
    config = EvalConfig(
        policy=PolicyRef(str(checkpoint)),
        env=EnvSettings(task="lift,lang_cubes", shuffle_instructions=True),
        eval=EvalSettings(n_episodes=2, videos=1),
        output_dir=str(tmp_path / "eval"),
    )
    summary = evaluate(config)
    saved = json.loads((tmp_path / "eval/summary.json").read_text())
    assert saved["episodes"] == 4 and set(saved["per_task"]) == {"lift", "lang_cubes"}
    assert 0.0 <= saved["ci_low"] <= saved["success_rate"] <= saved["ci_high"] <= 1.0
    assert summary["episodes"] == 4
    rows = [json.loads(x) for x in (tmp_path / "eval/episodes.jsonl").read_text().splitlines()]
    cubes = [r for r in rows if r["task"] == "lang_cubes"]
    assert all(r["given_instruction"] != r["instruction"] for r in cubes)
    assert (tmp_path / "eval" / rows[0]["video"]).stat().st_size > 1000


@pytest.mark.ray
def test_ray_train_two_workers_data_parallel(recorded, tmp_path):
    import ray

    from embodied.ray_utils import RaySettings

    root, _ = recorded
    try:
        checkpoint = _train(tmp_path, root, 4, ray=RaySettings(num_workers=2))
    finally:
        ray.shutdown()
    policy, _, _ = load_policy(checkpoint)
    assert all(torch.isfinite(p).all() for p in policy.parameters())
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 4 and rows[-1]["workers"] == 2


def test_unreachable_ray_address_fails_before_work(recorded, tmp_path):
    from embodied.ray_utils import RaySettings

    root, _ = recorded
    with pytest.raises(ConnectionError, match="cannot reach the Ray cluster"):
        _train(tmp_path, root, 2, ray=RaySettings(num_workers=2, address="127.0.0.1:1"))
    assert not (tmp_path / "run").exists()


@pytest.mark.ray
@pytest.mark.sim
def test_eval_on_two_ray_workers_matches_in_process(recorded, tmp_path):
    import ray

    from embodied.evaluate import EnvSettings, EvalConfig, EvalSettings, PolicyRef, evaluate

    root, _ = recorded
    checkpoint = str(_train(tmp_path, root, 2))
    results = []
    for workers in (0, 2):
        config = EvalConfig(
            policy=PolicyRef(checkpoint),
            env=EnvSettings(task="lift"),
            eval=EvalSettings(n_episodes=2, videos=1, workers=workers),
            output_dir=str(tmp_path / f"eval{workers}"),
        )
        try:
            evaluate(config)
        finally:
            ray.shutdown()
        lines = (tmp_path / f"eval{workers}/episodes.jsonl").read_text().splitlines()
        results.append([(r["seed"], r["success"], r["length"]) for r in map(json.loads, lines)])
    assert results[0] == results[1]
