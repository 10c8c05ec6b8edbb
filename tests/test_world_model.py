"""Contract tests of every world-model family, the world-model environment, its training
and evaluation commands, and the bad inputs each must refuse."""

import json
import shutil

import numpy as np
import pytest
import torch

from embodied.data.dataset import CachedDataset
from embodied.data.source import DatasetConfig, DatasetError, open_metadata
from embodied.train_world_model import world_model_config_for
from embodied.types import ACTION, STATE, SUCCESS, TASK
from world_models.base import WorldModelCheckpointError
from world_models.registry import FAMILIES, build, load_world_model
from world_models.windows import window_deltas

TINY = {"channels": (8, 16, 16), "latent_channels": 4, "dynamics_width": 16,
        "dynamics_blocks": 1, "text_dim": 8, "train_horizon": 3}  # fmt: skip


def _context(batch: dict, k: int) -> dict:
    return {key: v[:, :k] if torch.is_tensor(v) and v.dim() > 1 else v for key, v in batch.items()}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request, recorded):
    root, _ = recorded
    meta = open_metadata(DatasetConfig(root=str(root)))
    config = world_model_config_for(meta, {"type": request.param, **TINY})
    torch.manual_seed(0)
    model = build(config)
    dataset = CachedDataset(meta, window_deltas(config, meta.fps))
    return model, dataset, dataset.batch(np.arange(0, 96, 6))


def test_shapes_loss_and_backward(family):
    model, _, batch = family
    loss, info = model(batch)
    loss.backward()
    assert torch.isfinite(loss) and {"image", "state", "judge"} <= set(info)
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    model.zero_grad()
    with torch.no_grad():
        carry = model.start(_context(batch, model.config.context))
        _, pred = model.step(carry, batch[ACTION][:, 0])
    n, c = len(batch[TASK]), model.config
    assert set(pred.images) == set(c.image_keys)
    assert all(v.shape == (n, 3, c.image_size, c.image_size) for v in pred.images.values())
    assert pred.state.shape == (n, c.state_dim) and pred.success.shape == (n,)
    assert ((pred.success >= 0) & (pred.success <= 1)).all()


def test_loss_decreases_on_a_fixed_batch(family):
    model, _, batch = family
    fresh = build(model.config)
    optimizer = torch.optim.Adam(fresh.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, _ = fresh(batch)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.6 * losses[0]


def test_save_load_gives_identical_predictions(family, tmp_path):
    model, _, batch = family
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = load_world_model(tmp_path)
    with torch.no_grad():
        a = model.step(model.start(_context(batch, 2)), batch[ACTION][:, 0])[1]
        b = loaded.step(loaded.start(_context(batch, 2)), batch[ACTION][:, 0])[1]
    assert all(torch.equal(a.images[k], b.images[k]) for k in a.images)
    assert torch.equal(a.state, b.state) and torch.equal(a.success, b.success)


def test_corrupt_checkpoints_are_refused(family, tmp_path):
    model, _, _ = family
    good = tmp_path / "good"
    model.save_pretrained(good)
    with pytest.raises(WorldModelCheckpointError, match="does not exist"):
        load_world_model(tmp_path / "nothing")
    for name, damage, message in [
        ("missing", lambda f: (f / "model.safetensors").unlink(), "lacks"),
        ("truncated", lambda f: (f / "model.safetensors").write_bytes(b"\0" * 64), "does not load"),
        ("corrupt", lambda f: (f / "config.json").write_text("{"), "corrupt"),
        ("alien", lambda f: (f / "config.json").write_text('{"type": "sora"}'), "type 'sora'"),
    ]:
        folder = tmp_path / name
        shutil.copytree(good, folder)
        damage(folder)
        with pytest.raises(WorldModelCheckpointError, match=message):
            load_world_model(folder)


def test_bad_context_and_actions_are_refused(family):
    model, _, batch = family
    context = _context(batch, 2)
    small = {
        **context,
        model.config.image_keys[0]: context[model.config.image_keys[0]][..., :32, :32],
    }
    with pytest.raises(ValueError, match=r"frames are \(3, 32, 32\)"):
        model.start(small)
    missing = {k: v for k, v in context.items() if k != model.config.image_keys[0]}
    with pytest.raises(ValueError, match="context lacks"):
        model.start(missing)
    with pytest.raises(ValueError, match="trained on 7-D actions"):
        model.step(model.start(context), batch[ACTION][:, 0, :6])


# --- the world model as an environment ----------------------------------------------------


@pytest.fixture(scope="module")
def wm_env(family):
    from world_models.env import StartBank, WorldModelEnv

    model, dataset, _ = family
    bank = StartBank.from_dataset(dataset, model.config)
    # an untrained model judges at random: a threshold above 1 keeps episodes running
    return WorldModelEnv(model, bank, num_envs=3, horizon=5, success_threshold=1.1), bank, dataset


def test_keyframe_starts_are_every_nth_frame_before_success_with_their_instruction(family):
    from world_models.env import StartBank

    model, dataset, _ = family
    episode = np.asarray(dataset.arrays["episode_index"])
    frame = np.asarray(dataset.arrays["frame_index"])
    success = np.asarray(dataset.arrays[SUCCESS]).reshape(-1) > 0
    first_success = {e: frame[(episode == e) & success].min(initial=10**9) for e in set(episode)}
    expected = [i for i in range(len(frame))
                if frame[i] % 10 == 0 and frame[i] < first_success[episode[i]]]  # fmt: skip
    bank = StartBank.from_dataset(dataset, model.config, keyframe_every=10)
    plain = StartBank.from_dataset(dataset, model.config)
    assert len(plain) == len(np.unique(episode)) and len(bank) == len(expected)
    tasks = dataset.batch(np.array(expected))[TASK]
    assert bank.instructions == tasks  # each keyframe keeps its episode's instruction
    now = dataset.with_deltas({}).batch(np.array(expected))
    key = model.config.image_keys[0]
    last = (now[key].movedim(-3, -1) * 255).round().to(torch.uint8).numpy()
    assert np.array_equal(bank.images[key][:, -1], last)  # the context ends at the keyframe
    both = StartBank.concatenate([plain, bank])
    assert len(both) == len(plain) + len(bank) and both.instructions[-1] == bank.instructions[-1]


@pytest.mark.sim
def test_observations_match_the_mujoco_task(wm_env):
    from envs.robosuite_env import make_env

    env, _, _ = wm_env
    sim = make_env("lift", cameras=("agentview", "wrist"), image_size=64)
    sim_obs, _ = sim.reset(seed=0)
    obs, _ = env.reset(seed=0)
    assert set(obs) == set(sim_obs)
    for key, value in sim_obs.items():
        if key == TASK:
            assert all(isinstance(t, str) for t in obs[TASK])
            continue
        assert obs[key].dtype == value.dtype and obs[key].shape == (3, *value.shape), key
        assert env.single_observation_space[key] == sim.observation_space[key]
    assert env.single_action_space == sim.action_space


def test_reset_starts_from_the_dataset_start_frames(wm_env):
    env, bank, dataset = wm_env
    obs, info = env.reset(options={"starts": [1, 1, 0]})
    plain = dataset.with_deltas({})
    starts = np.asarray(dataset.meta.episodes["dataset_from_index"])
    first = plain.batch(starts[[1, 1, 0]])
    for key in env.model.config.image_keys:
        real = (first[key].movedim(1, -1) * 255).round().to(torch.uint8).numpy()
        assert np.array_equal(obs[key], real)
    assert np.allclose(obs[STATE], first[STATE].numpy())
    assert obs[TASK] == first[TASK]


def test_rollouts_are_deterministic_and_round_trip_through_zarr(wm_env, tmp_path):
    from embodied.rollouts import read_zarr, rollout, write_zarr, zarr_to_mp4

    env, _, _ = wm_env

    def act(obs):
        return np.tile(np.linspace(-0.5, 0.5, 7, dtype=np.float32), (3, 2, 1))

    a = rollout(env, act, max_calls=3, seed=7, record=True)
    b = rollout(env, act, max_calls=3, seed=7, record=True)
    assert all(np.array_equal(a.frames[k], b.frames[k]) for k in a.frames)
    assert np.array_equal(a.rewards, b.rewards) and a.actions.shape == (3, 3, 2, 7)
    write_zarr(tmp_path / "imagined.zarr", a)
    c = read_zarr(tmp_path / "imagined.zarr")
    assert all(np.array_equal(a.frames[k], c.frames[k]) for k in a.frames)
    assert np.array_equal(a.actions, c.actions) and c.instructions == a.instructions
    videos = zarr_to_mp4(tmp_path / "imagined.zarr", tmp_path / "videos")
    assert len(videos) == 3 and all(v.stat().st_size > 500 for v in videos)


@pytest.mark.sim
def test_one_policy_and_one_rollout_driver_for_mujoco_and_the_world_model(wm_env, recorded):
    from lerobot.policies.factory import make_pre_post_processors

    from embodied.acting import ChunkSampler
    from embodied.policy_io import policy_config_for
    from embodied.rollouts import rollout
    from envs.batched import BatchedTaskEnv
    from policies.vla.modeling_vla import VLAPolicy

    env, _, dataset = wm_env
    settings = {"dim": 16, "depth": 1, "heads": 2, "vision_channels": (8,), "vision_grid": 2}
    config = policy_config_for(dataset.meta, settings)
    policy = VLAPolicy(config).eval()
    pre, post = make_pre_post_processors(config, dataset_stats=dataset.meta.stats)
    act = ChunkSampler(policy, pre, post, config.n_action_steps, 1.0, torch.Generator())
    sim = BatchedTaskEnv("lift", num_envs=2, cameras=("agentview", "wrist"), image_size=64)
    for target in (env, sim):
        result = rollout(target, act, max_calls=2, seed=3)
        assert result.actions.shape[2:] == (config.n_action_steps, 7)
        assert np.isfinite(result.actions).all()


def test_env_refuses_bad_starts_and_actions(wm_env):
    from world_models.env import StartBank, WorldModelEnv

    env, bank, _ = wm_env
    key = env.model.config.image_keys[0]
    small = StartBank(
        {**bank.images, key: bank.images[key][:, :, :32, :32]}, bank.state, bank.instructions
    )
    with pytest.raises(ValueError, match="start frames"):
        WorldModelEnv(env.model, small, num_envs=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="trained on 7-D actions"):
        env.step(np.zeros((3, 6), dtype=np.float32))


# --- training and evaluation commands -------------------------------------------------------


def _train(tmp_path, root, steps, out="run", model=None, **extra):
    from embodied.train_world_model import TrainWorldModelConfig, train_world_model

    config = TrainWorldModelConfig(
        dataset=DatasetConfig(root=str(root)),
        output_dir=str(tmp_path / out),
        world_model={**TINY, **(model or {})},
        holdout_every=2,
        steps=steps,
        batch_size=4,
        log_every=2,
        save_every=3,
        **extra,
    )
    return train_world_model(config)


def test_resume_equals_uninterrupted_training(recorded, tmp_path, weights):
    """Also with the learning rate decaying, whose schedule must resume where it was."""
    root, _ = recorded
    constant = _train(tmp_path, root, 6, out="constant")
    decay = {"final_lr_fraction": 0.1}
    whole = _train(tmp_path, root, 6, out="whole", model=decay)
    split = tmp_path / "split"  # the same run, interrupted after its step-3 checkpoint
    shutil.copytree(tmp_path / "whole", split)
    shutil.rmtree(split / "checkpoints/0000006")
    (split / "checkpoints/last.json").write_text(json.dumps({"dir": "0000003"}))
    resumed = _train(tmp_path, root, 6, out="split", model=decay)
    a, b = weights(whole), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], v) for k, v in weights(constant).items())


def _evaluate(tmp_path, root, checkpoint, **extra) -> dict:
    from embodied.eval_world_model import EvalWorldModelConfig, evaluate_world_model
    from embodied.refs import WorldModelRef

    config = EvalWorldModelConfig(
        world_model=WorldModelRef(str(checkpoint)),
        dataset=DatasetConfig(root=str(root)),
        open_loop_steps=10,
        videos=1,
        output_dir=str(tmp_path / "eval"),
        **extra,
    )
    return evaluate_world_model(config)


def test_eval_world_model_writes_the_figures(recorded, tmp_path):
    root, _ = recorded
    checkpoint = _train(tmp_path, root, 2)
    assert load_world_model(checkpoint).config.holdout_every == 2  # the split travels with it
    report_path = tmp_path / "wm.json"
    _evaluate(tmp_path, root, checkpoint, json=str(report_path))
    report = json.loads(report_path.read_text())
    for key in ("psnr_gain_db_h10", "success_auroc", "shuffled_action_penalty"):
        assert key in report
    assert len(report["curves"]["psnr"]) == 10 and report["held_out_episodes"] == [1, 3]
    assert (tmp_path / "eval" / "videos").is_dir() and report["shuffled_action_penalty"] > 0
    judged = report["episode_success"]
    assert judged["episodes"] == 2 and 0.0 <= judged["agreement"] <= 1.0


def test_whole_episodes_are_judged_as_rl_judges_them(recorded, tmp_path):
    from embodied.imagination import judge_episodes

    root, _ = recorded
    model = load_world_model(_train(tmp_path, root, 2))
    dataset = CachedDataset.open(DatasetConfig(root=str(root)))
    index, success = (np.asarray(dataset.arrays[k]) for k in ("episode_index", SUCCESS))
    labels = [bool(success[index == e].any()) for e in range(4)]
    assert any(labels)
    # every probability passes a threshold of 0: all judged successes at the first step
    always = judge_episodes(model, dataset, [0, 1, 2, 3], threshold=0.0)
    assert always["recall"] == 1.0 and always["agreement"] == pytest.approx(np.mean(labels))
    never = judge_episodes(model, dataset, [0, 1, 2, 3], threshold=1.0)
    assert never["recall"] == 0.0 and never["successes"] == sum(labels)


def test_a_strided_model_imagines_whole_chunks(recorded, tmp_path):
    """frame_stride=5: windows hold frames 5 steps apart and the 5 actions between them;
    the environment feeds chunks 5 actions at a time and counts environment steps."""
    from embodied.imagination import judge_episodes
    from world_models.env import StartBank, WorldModelEnv

    root, _ = recorded
    checkpoint = _train(tmp_path, root, 2, model={"frame_stride": 5})
    model = load_world_model(checkpoint)
    assert model.config.frame_stride == 5
    deltas = window_deltas(model.config, 10.0)
    assert deltas[model.config.image_keys[0]][:3] == [-0.5, 0.0, 0.5]
    assert len(deltas[ACTION]) == 5 * model.config.train_horizon
    dataset = CachedDataset.open(DatasetConfig(root=str(root)))
    bank = StartBank.from_dataset(dataset, model.config)
    env = WorldModelEnv(model, bank, num_envs=2, horizon=12, success_threshold=1.1)
    env.reset(seed=0)
    chunk = np.zeros((2, 10, 7), dtype=np.float32)
    _, _, _, truncated, info = env.step(chunk)
    assert info["steps"].tolist() == [10, 10] and not truncated.any()
    _, _, _, truncated, info = env.step(chunk)
    assert info["steps"].tolist() == [15, 15] and truncated.all()  # horizon 12, whole steps
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"steps 5 actions at a time.*chunk of 3"):
        env.step(chunk[:, :3])
    with pytest.raises(ValueError, match=r"\(B, 5, 7\).*frame_stride=5"):
        model.check_action(torch.zeros(2, 7))  # what step() checks first
    always = judge_episodes(model, dataset, [0, 1], threshold=0.0)
    assert always["recall"] in (1.0, None) and always["false_positive_rate"] in (1.0, None)
    report = _evaluate(tmp_path, root, checkpoint)
    assert len(report["curves"]["psnr"]) == 10 and report["frame_stride"] == 5


def test_any_lerobot_dataset_trains_and_unlabelled_data_is_refused(lerobot_fixture, tmp_path):
    pusht = lerobot_fixture("pusht_fixture")
    from embodied.train_world_model import TrainWorldModelConfig, train_world_model

    config = TrainWorldModelConfig(
        dataset=DatasetConfig(root=str(pusht)),
        output_dir=str(tmp_path / "pusht"),
        world_model=dict(TINY),
        holdout_every=0,
        steps=1,
        batch_size=2,
    )
    checkpoint = train_world_model(config)
    assert load_world_model(checkpoint).config.image_keys == ("observation.image",)
    aloha = lerobot_fixture("aloha_sim_fixture")
    config.dataset, config.output_dir = DatasetConfig(root=str(aloha)), str(tmp_path / "aloha")
    with pytest.raises(DatasetError, match=r"lacks \['next.success'\].*success_head=false"):
        train_world_model(config)
    assert not (tmp_path / "aloha").exists()
