"""Contract tests of the VLA policy, its LeRobot plugin, training and evaluation."""

import json
import math
import shutil

import numpy as np
import pytest
import torch

from embodied.data.dataset import CachedDataset
from embodied.data.source import DatasetConfig, open_metadata
from embodied.policy_io import CheckpointError, load_policy, policy_config_for
from embodied.types import ACTION
from policies.action_head import ChunkGaussian

TINY = {"dim": 32, "depth": 1, "heads": 2, "vision_channels": (8, 16), "vision_grid": 2}


@pytest.fixture(scope="module")
def setup(recorded):
    from policies.vla.modeling_vla import VLAPolicy
    from policies.vla.processor_vla import make_embodied_vla_pre_post_processors

    root, _ = recorded
    meta = open_metadata(DatasetConfig(root=str(root)))
    config = policy_config_for(meta, {**TINY, "device": "cpu"})
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
    with pytest.raises(CheckpointError, match="type 'act'; expected 'embodied_vla'"):
        load_policy(other, policy_type="embodied_vla")
    with pytest.raises(CheckpointError, match="not a valid 'act' config"):
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
        policy_config_for(meta, TINY, cameras=("agentview",))


def _train(tmp_path, root, steps, out="run", policy=TINY, **extra):
    from embodied.train_policy import TrainPolicyConfig, train_policy

    config = TrainPolicyConfig(
        dataset=DatasetConfig(root=str(root)),
        output_dir=str(tmp_path / out),
        policy=dict(policy),
        steps=steps,
        batch_size=8,
        log_every=2,
        save_every=3,
        **extra,
    )
    return train_policy(config)


def test_resume_equals_uninterrupted_training(recorded, tmp_path, weights):
    root, _ = recorded
    whole = _train(tmp_path, root, 6, out="whole")
    _train(tmp_path, root, 3, out="split")
    resumed = _train(tmp_path, root, 6, out="split")
    a, b = weights(whole), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    lines = (tmp_path / "split/metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [2, 3, 4, 6]  # 3 is the interrupted run's end


def test_successful_only_imitates_only_episodes_that_succeed(recorded, lerobot_fixture):
    from embodied.config import ConfigError
    from embodied.data.dataset import CachedDataset
    from embodied.data.source import DatasetConfig
    from embodied.train_policy import successful_rows

    dataset = CachedDataset.open(DatasetConfig(root=str(recorded[0])))
    episode = np.asarray(dataset.arrays["episode_index"])
    success = np.asarray(dataset.arrays["next.success"]).reshape(-1)
    sabotaged = episode == episode.max()  # a recorded failure: success labels all cleared
    dataset.arrays = {**dataset.arrays, "next.success": np.where(sabotaged, 0, success)}
    rows = successful_rows(dataset)
    kept = set(episode[rows])
    assert kept == {e for e in set(episode) if success[(episode == e) & ~sabotaged].any()}
    assert episode.max() not in kept and len(kept) >= 1
    assert np.array_equal(rows, np.flatnonzero(np.isin(episode, list(kept))))

    unlabeled = CachedDataset.open(DatasetConfig(root=str(lerobot_fixture("aloha_sim_fixture"))))
    with pytest.raises(ConfigError, match="needs a `next.success` column"):
        successful_rows(unlabeled)


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
    from embodied.evaluate import EvalConfig, evaluate
    from embodied.mujoco_eval import EnvSettings, EvalSettings
    from embodied.refs import PolicyRef

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
    assert all(isinstance(r["achieved"], list) for r in rows)
    following = saved["per_task"]["lang_cubes"]["instruction_following"]
    assert set(following) == {"given_goal", "other_goal"}
    assert "instruction_following" not in saved["per_task"]["lift"]
    assert (tmp_path / "eval" / rows[0]["video"]).stat().st_size > 1000


def test_instruction_following_counts_the_goal_of_the_given_text():
    from embodied.mujoco_eval import instruction_following

    red, green = "lift the red cube", "lift the green cube"
    rows = [  # shuffled: the policy read the other instruction
        {"task": "cubes", "instruction": red, "given_instruction": green, "achieved": [green]},
        {"task": "cubes", "instruction": green, "given_instruction": red, "achieved": [red]},
        {"task": "cubes", "instruction": red, "given_instruction": green, "achieved": [red]},
        {"task": "cubes", "instruction": green, "given_instruction": red, "achieved": []},
        {"task": "lift", "instruction": red, "given_instruction": red, "achieved": [red]},
    ]
    out = instruction_following(rows)
    assert set(out) == {"cubes"}
    assert out["cubes"]["given_goal"]["success_rate"] == 0.5
    assert out["cubes"]["other_goal"]["success_rate"] == 0.25
    assert out["cubes"]["given_goal"]["episodes"] == 4


BASELINES = {
    "act": {"type": "act", "chunk_size": 10, "n_action_steps": 10, "dim_model": 32,
            "dim_feedforward": 64, "n_encoder_layers": 1, "latent_dim": 8},
    "diffusion": {"type": "diffusion", "horizon": 8, "n_action_steps": 4, "down_dims": [16, 32],
                  "diffusion_step_embed_dim": 16, "num_inference_steps": 2},
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(BASELINES))
def test_lerobot_baselines_train_and_reload(recorded, tmp_path, kind):
    """ACT and Diffusion train on our data with LeRobot's presets and reload exactly."""
    from lerobot.policies.factory import get_policy_class

    root, _ = recorded
    checkpoint = _train(tmp_path, root, 3, policy=BASELINES[kind])
    policy, pre, post = load_policy(checkpoint)
    assert (
        type(policy) is get_policy_class(kind) and policy.config.pretrained_backbone_weights is None
    )
    rows = [json.loads(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in rows)
    with pytest.raises(CheckpointError, match=f"type '{kind}'; expected 'embodied_vla'"):
        load_policy(checkpoint, policy_type="embodied_vla")


@pytest.mark.sim
def test_eval_runs_an_act_baseline_with_its_own_replanning(recorded, tmp_path):
    from embodied.evaluate import EvalConfig, evaluate
    from embodied.mujoco_eval import EnvSettings, EvalSettings
    from embodied.refs import PolicyRef

    root, _ = recorded
    checkpoint = _train(tmp_path, root, 2, policy=BASELINES["act"])
    config = EvalConfig(
        policy=PolicyRef(str(checkpoint)),
        env=EnvSettings(task="lift"),
        eval=EvalSettings(n_episodes=1, videos=0, n_action_steps=5),
        output_dir=str(tmp_path / "eval"),
    )
    assert evaluate(config)["episodes"] == 1
    config.eval.n_action_steps = 11
    with pytest.raises(ValueError, match="predicts 10 actions"):
        evaluate(config)


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

    from embodied.evaluate import EvalConfig, evaluate
    from embodied.mujoco_eval import EnvSettings, EvalSettings
    from embodied.ray_utils import RaySettings
    from embodied.refs import PolicyRef

    root, _ = recorded
    checkpoint = str(_train(tmp_path, root, 2))
    results = []
    for workers in (0, 2):
        config = EvalConfig(
            policy=PolicyRef(checkpoint),
            env=EnvSettings(task="lift"),
            eval=EvalSettings(n_episodes=2, videos=1, batch_size=1),
            ray=RaySettings(num_workers=workers),
            output_dir=str(tmp_path / f"eval{workers}"),
        )
        try:
            evaluate(config)
        finally:
            ray.shutdown()
        lines = (tmp_path / f"eval{workers}/episodes.jsonl").read_text().splitlines()
        results.append([(r["seed"], r["success"], r["length"]) for r in map(json.loads, lines)])
    assert results[0] == results[1]


@pytest.fixture(scope="module")
def hf_encoders(tmp_path_factory):
    """Tiny Hugging Face image and text models saved to local folders, as a user's would be."""
    from transformers import BertConfig, BertModel, BertTokenizerFast, ViTConfig, ViTModel

    root = tmp_path_factory.mktemp("hf")
    torch.manual_seed(1)
    vit = ViTModel(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32, image_size=32, patch_size=8))  # fmt: skip
    vit.save_pretrained(root / "vit")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "lift", "the", "red", "green", "cube"]
    (root / "vocab.txt").write_text("\n".join(words))
    BertTokenizerFast(vocab_file=str(root / "vocab.txt")).save_pretrained(root / "bert")
    bert = BertModel(BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1,
                                num_attention_heads=2, intermediate_size=32))  # fmt: skip
    bert.save_pretrained(root / "bert")
    return root / "vit", root / "bert", vit


def test_pretrained_encoders_from_local_folders(setup, hf_encoders, tmp_path):
    """Vision and text encoders swap for Hugging Face models; weights load, train and save."""
    from policies.vla.modeling_vla import VLAPolicy

    meta, _, pre, _, _, raw = setup
    vit_path, bert_path, vit = hf_encoders
    settings = {**TINY, "vision_encoder": str(vit_path), "text_encoder": str(bert_path)}
    policy = VLAPolicy(policy_config_for(meta, {**settings, "freeze_encoders": True}))
    encoder = policy.model.vision.model
    assert torch.equal(encoder.embeddings.patch_embeddings.projection.weight,
                       vit.embeddings.patch_embeddings.projection.weight)  # fmt: skip
    assert not any(p.requires_grad for p in encoder.parameters())
    batch = pre(dict(raw))
    loss, _ = policy(batch)
    loss.backward()
    assert torch.isfinite(loss) and policy.model.vision.project.weight.grad is not None
    policy.eval()
    policy.save_pretrained(tmp_path)
    loaded = VLAPolicy.from_pretrained(tmp_path, strict=True)
    assert torch.equal(loaded.predict_action_chunk(batch), policy.predict_action_chunk(batch))
    with pytest.raises(ValueError, match="cannot load the pretrained encoder"):
        VLAPolicy(policy_config_for(meta, {**TINY, "vision_encoder": str(tmp_path / "none")}))


@pytest.mark.sim
def test_chunked_acting_follows_the_same_trajectory_as_acting_step_by_step(recorded, tmp_path):
    """Evaluation executes the VLA's chunks whole, so cameras render only where it re-plans:
    the simulator ends in exactly the state that step-by-step acting reaches."""
    import numpy as np

    from embodied.acting import PolicyActor
    from embodied.rollouts import rollout
    from envs.batched import BatchedTaskEnv

    root, _ = recorded
    policy, pre, post = load_policy(_train(tmp_path, root, 2))
    states = {}
    for chunked in (False, True):
        env = BatchedTaskEnv("lift", 2, look_every_step=not chunked, horizon=12)
        actor = PolicyActor(policy, pre, post, chunked=chunked)
        result = rollout(env, actor, options={"seeds": [3, 4], "tasks": ["lift the red cube"] * 2})
        states[chunked] = [e.get_state()["mujoco_state"] for e in env.envs]
        assert result.info["steps"].tolist() == [12, 12]
        env.close()
    assert all(np.array_equal(a, b) for a, b in zip(states[False], states[True], strict=True))
    with pytest.raises(ValueError, match="deterministic mean chunk only"):
        PolicyActor(policy, pre, post, temperature=1.0, chunked=True)


@pytest.mark.sim
def test_eval_refuses_what_the_tasks_cannot_observe_before_any_episode(recorded, tmp_path,
                                                                         capsys):  # fmt: skip
    import re

    from embodied import cli

    root, _ = recorded
    checkpoint = _train(tmp_path, root, 1)
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["state_names"][:2] == ["eef_x", "eef_y"]  # recorded from the dataset
    cases = {
        "state_names": ([f"robot0_joint_torque.{i}" for i in range(8)],
                        r"has no observable \['robot0_joint_torque'\] .*'robot0_eef_pos'"),
        "action_names": ([f"joint_{i}" for i in range(7)],
                         r"outputs 7-D actions \['joint_0'.*the tasks take 7-D OSC deltas \['dx'"),
    }  # fmt: skip
    for key, (value, said) in cases.items():
        bad = tmp_path / key
        shutil.copytree(checkpoint, bad)
        (bad / "config.json").write_text(json.dumps({**config, key: value}))
        out = tmp_path / f"eval_{key}"
        argv = ["eval", f"--policy.path={bad}", "--eval.n_episodes=1", "--eval.videos=0",
                f"--output_dir={out}"]  # fmt: skip
        assert cli.main(argv) == 2
        said_lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("embodied")]
        assert len(said_lines) == 1 and re.search(said, said_lines[0]), said_lines
        assert not (out / "episodes.jsonl").exists()
