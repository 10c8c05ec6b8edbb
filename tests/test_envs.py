"""Contract tests run over every registered task."""

import numpy as np
import pytest

from embodied.types import STATE, TASK, image_key
from envs.robosuite_env import ACTION_DIM, STATE_DIM, make_env
from envs.tasks import TASKS

pytestmark = pytest.mark.sim


@pytest.fixture(scope="module", params=sorted(TASKS))
def env(request):
    env = make_env(request.param, cameras=("agentview", "wrist"), image_size=32)
    yield env
    env.close()


def _actions(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, ACTION_DIM)).astype(np.float32)


def test_observation_matches_spec(env):
    obs, info = env.reset(seed=1)
    assert set(obs) == {image_key("agentview"), image_key("wrist"), STATE, TASK}
    for key in (image_key("agentview"), image_key("wrist")):
        assert obs[key].shape == (32, 32, 3) and obs[key].dtype == np.uint8
        assert obs[key].std() > 0, "camera image is blank"
    assert obs[STATE].shape == (STATE_DIM,) and obs[STATE].dtype == np.float32
    assert obs[TASK] in env.spec_task.instructions
    assert env.observation_space.contains(obs)
    assert info["is_success"] is False
    obs, reward, terminated, truncated, info = env.step(_actions(1)[0])
    assert env.observation_space.contains(obs)
    assert isinstance(reward, float) and terminated is False and truncated is False


def test_seeded_reset_is_deterministic(env):
    first, _ = env.reset(seed=7)
    env.reset(seed=8)
    again, _ = env.reset(seed=7)
    for key in first:
        assert np.array_equal(first[key], again[key]) if key != TASK else first[key] == again[key]


def test_replay_from_state_is_exact(env):
    env.reset(seed=3)
    for action in _actions(5, seed=1):
        env.step(action)
    state = env.get_state()
    actions = _actions(5, seed=2)
    expected = [env.step(a)[0] for a in actions]
    env.reset(seed=99)
    env.reset_to(state)
    replayed = [env.step(a)[0] for a in actions]
    for a, b in zip(expected, replayed, strict=True):
        assert np.array_equal(a[STATE], b[STATE])
        assert np.array_equal(a[image_key("agentview")], b[image_key("agentview")])


def test_wrong_action_shape_is_refused(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action must have shape"):
        env.step(np.zeros(6))


def test_unknown_task_camera_and_instruction_are_refused():
    with pytest.raises(KeyError, match="unknown task 'juggle'.*known tasks"):
        make_env("juggle")
    with pytest.raises(ValueError, match="unknown camera"):
        make_env("lift", cameras=("ceiling",))
    env = make_env("lift", cameras=())
    with pytest.raises(ValueError, match="does not understand the instruction"):
        env.reset(options={"task": "open the door"})


def test_fast_visuals_survive_hard_resets():
    import robosuite
    from robosuite.controllers import load_composite_controller_config

    from envs.lean_robosuite import lean_env_class

    cls = lean_env_class(robosuite.environments.REGISTERED_ENVS["Lift"], fast_render=True)
    sim_env = cls(
        robots="Panda",
        controller_configs=load_composite_controller_config(controller="BASIC", robot="Panda"),
        has_renderer=False,
        has_offscreen_renderer=False,
        use_camera_obs=False,
        hard_reset=True,
    )
    for _ in range(2):
        sim_env.reset()  # a hard reset rebuilds the model from XML
        quality = sim_env.sim.model._model.vis.quality
        assert (quality.shadowsize, quality.offsamples) == (0, 0)
        assert np.all(sim_env.sim.model._model.mat_reflectance == 0)
    sim_env.close()


def test_success_depends_on_the_instruction():
    """In lang_cubes, lifting the red cube succeeds only when that is what was asked."""
    from envs.experts import EXPERTS, expert_frames

    env = make_env("lang_cubes", cameras=())
    frames = list(expert_frames(env, EXPERTS["lang_cubes"], 0, "lift the red cube", success_hold=0))
    assert frames[-1].success
    assert env.achieved() == ["lift the red cube"]
    env.instruction = "lift the green cube"
    assert not env.is_success()
    assert env.achieved() == ["lift the red cube"]  # what was done, whatever was asked


def test_fast_rendering_leaves_physics_untouched():
    """Simplified meshes are visual-only: trajectories match robosuite's own model exactly."""
    states = []
    for fast in (True, False):
        env = make_env("lift", cameras=(), fast_render=fast)
        env.reset(seed=4)
        for action in _actions(10, seed=5):
            obs = env.step(action)[0]
        states.append(obs[STATE])
        env.close()
    assert np.array_equal(states[0], states[1])


def test_large_visual_meshes_are_simplified_and_cached(tmp_path, monkeypatch):
    import xml.etree.ElementTree as ET

    from envs.rendering import mesh_cache_dir, with_fast_visuals

    monkeypatch.setenv("EMBODIED_CACHE_DIR", str(tmp_path))
    env = make_env("lift", cameras=(), fast_render=False)
    xml = env.sim_env.model.get_xml()
    fast = ET.fromstring(with_fast_visuals(xml))
    files = {m.get("name"): m.get("file") for m in fast.iter("mesh")}
    original = {m.get("name"): m.get("file") for m in ET.fromstring(xml).iter("mesh")}
    simplified = [name for name in files if files[name] != original[name]]
    assert "robot0_link1_vis" in simplified and "robot0_link1" not in simplified
    assert all(files[n].startswith(str(mesh_cache_dir())) for n in simplified)
    assert with_fast_visuals(xml) == with_fast_visuals(xml)  # second call served from cache


@pytest.mark.sim
def test_cameras_render_only_when_looked_at_and_stay_bit_identical():
    """Chunks of 5 with rendering only at each chunk's end give the same physics, rewards,
    success and (bit for bit) the same frames as rendering every step, with a fifth of the
    renders; an episode truncated inside a chunk still returns its frames."""
    import numpy as np

    from envs.batched import BatchedTaskEnv

    actions = np.random.default_rng(0).uniform(-1, 1, (2, 15, 7)).astype(np.float32)
    every = BatchedTaskEnv("lift", 2, look_every_step=True, horizon=12)
    lazy = BatchedTaskEnv("lift", 2, horizon=12)
    renders = {}
    for name, batched in (("every", every), ("lazy", lazy)):
        renders[name] = 0
        for env in batched.envs:
            sim, render = env.sim_env.sim, env.sim_env.sim.render

            def counted(*args, name=name, render=render, **kwargs):
                renders[name] += 1
                return render(*args, **kwargs)

            sim.render = counted
    first, _ = every.reset(seed=7)
    again, _ = lazy.reset(seed=7)
    for start in range(0, 15, 5):
        a = every.step(actions[:, start : start + 5])
        b = lazy.step(actions[:, start : start + 5])
        ended_inside = start == 10  # truncated at step 12: rendered when it ended
        for key in a[0]:
            if key != "task" and not (ended_inside and key.startswith("observation.images")):
                assert np.array_equal(a[0][key], b[0][key]), (start, key)
        for x, y in zip(a[1:4], b[1:4], strict=True):
            assert np.array_equal(x, y)
        assert np.array_equal(a[4]["is_success"], b[4]["is_success"])
    assert b[3].all() and b[0]["observation.images.agentview"].shape == (2, 64, 64, 3)
    assert (renders["every"], renders["lazy"]) == (52, 16)  # 2 envs x 2 cameras x (1 + 12 | 1 + 3)
    every.close()
    lazy.close()


@pytest.mark.sim
def test_our_speed_ups_leave_the_physics_as_robosuite_computes_it():
    """The lean classes (`envs.lean_robosuite`: the arm controller reading MuJoCo by cached
    ids, the robots' action size computed once, observations returned by name only) give, bit
    for bit, the torques, trajectory and frames of robosuite's own classes."""
    import numpy as np

    from envs.lean_robosuite import restore_robosuite_classes
    from envs.robosuite_env import make_env

    ours, theirs = (make_env("lift", cameras=("agentview",)) for _ in range(2))
    restore_robosuite_classes(theirs.sim_env)
    assert "robot0_proprio-state" in theirs.sim_env._get_observations()
    assert "robot0_proprio-state" not in ours.sim_env._get_observations()
    rng = np.random.default_rng(1)
    for seed in (11, 12):
        arms = []
        for env in (ours, theirs):
            env.reset(seed=seed)  # robosuite builds new controllers on every reset
            arms.append(env.sim_env.robots[0].composite_controller.part_controllers["right"])
        assert [type(arm).__name__ for arm in arms] == ["LeanOSC", "OperationalSpaceController"]
        # wide moves, then down and grip: contacts as well as free motion
        actions = np.concatenate([rng.uniform(-1, 1, (15, 7)),
                                  np.tile([0, 0, -1, 0, 0, 0, 1.0], (10, 1))])  # fmt: skip
        for action in actions:
            a, b = ours.step(action), theirs.step(action)
            assert np.array_equal(arms[0].torques, arms[1].torques)
            for key in a[0]:
                assert np.array_equal(a[0][key], b[0][key]), key
        assert np.array_equal(ours.get_state()["mujoco_state"], theirs.get_state()["mujoco_state"])
    ours.close()
    theirs.close()


@pytest.mark.sim
def test_robosuite_camera_names_sizes_and_named_observables():
    """Observations as robosuite's own datasets hold them: its camera names, each camera at
    its own size, a state composed of named observables (what `embodied.obs_spec` builds
    from a checkpoint trained on robomimic-style data)."""
    from embodied.obs_spec import state_observables

    names = [f"robot0_eef_pos.{i}" for i in range(3)] + [f"robot0_eef_quat.{i}" for i in
             range(4)] + ["robot0_gripper_qpos.0", "robot0_gripper_qpos.1"]  # fmt: skip
    state = state_observables(names, 9)
    assert state == (("robot0_eef_pos", 3), ("robot0_eef_quat", 4), ("robot0_gripper_qpos", 2))
    env = make_env("lift", cameras=("robot0_eye_in_hand", "agentview"),
                   camera_sizes=((84, 84), (48, 64)), state=state)  # fmt: skip
    obs, _ = env.reset(seed=3)
    assert obs[image_key("robot0_eye_in_hand")].shape == (84, 84, 3)
    assert obs[image_key("agentview")].shape == (48, 64, 3)
    raw = env.privileged
    expected = np.concatenate([raw["robot0_eef_pos"], raw["robot0_eef_quat"],
                               raw["robot0_gripper_qpos"]])  # fmt: skip
    assert np.allclose(obs[STATE], expected) and env.observation_space[STATE].shape == (9,)
    env.close()
    with pytest.raises(ValueError, match=r"no observable \['robot0_eef_vel'\].*robot0_eef_pos"):
        make_env("lift", cameras=(), state=(("robot0_eef_vel", 3),))
    env = make_env("lift", cameras=(), state=(("robot0_eef_pos", 4),))
    with pytest.raises(ValueError, match="robot0_eef_pos of task lift has 3 values"):
        env.reset(seed=0)
    assert state_observables([], 8) == ()  # our layout, named or not
    with pytest.raises(ValueError, match="9-D state without naming"):
        state_observables([], 9)
