import numpy as np
import pytest

from envs.experts import EXPERTS, ExpertConfig, expert_frames
from envs.robosuite_env import make_env
from envs.tasks import TASKS

pytestmark = pytest.mark.sim

CASES = [(task, instruction) for task in sorted(TASKS) for instruction in TASKS[task].instructions]


@pytest.mark.parametrize("task, instruction", CASES)
def test_expert_succeeds_on_a_few_seeds(task, instruction):
    env = make_env(task, cameras=())
    for seed in range(3):
        frames = list(expert_frames(env, EXPERTS[task], seed, instruction, success_hold=0))
        assert frames[-1].success, f"{task} / {instruction} failed on seed {seed}"


def test_noisy_expert_still_succeeds_and_varies():
    env = make_env("lift", cameras=())
    noisy = ExpertConfig(noise_std=0.1, perturb_prob=0.05)
    runs = [list(expert_frames(env, EXPERTS["lift"], 0, config=c)) for c in (ExpertConfig(), noisy)]
    assert runs[1][-1].success
    clean = np.stack([f.action for f in runs[0][:20]])
    varied = np.stack([f.action for f in runs[1][:20]])
    assert not np.allclose(clean, varied)


def test_sabotaged_expert_records_failures():
    env = make_env("lift", cameras=())
    outcomes = [
        list(expert_frames(env, EXPERTS["lift"], seed, config=ExpertConfig(fail=True)))[-1].success
        for seed in range(4)
    ]
    assert not any(outcomes)


def test_a_near_miss_grasps_beside_the_cube_and_gives_up():
    """The failure a policy makes: the gripper closes beside the cube and lifts nothing."""
    env = make_env("lift", cameras=())
    for seed in (0, 1, 3):
        frames = list(
            expert_frames(env, EXPERTS["lift"], seed, config=ExpertConfig(near_miss=True))
        )
        assert not frames[-1].success
        grip = np.stack([f.action[6] for f in frames])
        assert (grip > 0).any()  # it did close, once: no second attempt after the miss
        closed = np.flatnonzero(grip > 0)
        assert (np.diff(closed) == 1).all()


@pytest.mark.slow
def test_every_expert_reaches_95_percent_over_50_seeds(tmp_path):
    from embodied.experts_check import ExpertsCheckConfig, check_experts

    rates = check_experts(ExpertsCheckConfig(episodes=50, json=str(tmp_path / "experts.json")))
    assert len(rates) == len(CASES)
    assert all(rate >= 0.95 for rate in rates.values()), rates
