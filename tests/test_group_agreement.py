"""The figures of benchmarks/group_agreement on hand-made groups (the benchmark itself needs a
finished quickstart run)."""

import numpy as np

from benchmarks.group_agreement import ForkedSampler, at_temperature, mixed, within_group_auroc


def test_within_group_auroc_counts_only_pairs_inside_a_group():
    groups = np.array([0, 0, 0, 1, 1, 1])
    real = np.array([True, False, False, True, True, False])
    # group 0: the success outranks both failures; group 1: one success loses, one ties
    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.5, 0.5])
    assert within_group_auroc(scores, real, groups) == (2 + 0 + 0.5) / 4
    # a high score in another group does not count: group 0's failure beats nothing of its own
    assert within_group_auroc(np.array([0.1, 0.2, 0.0]), np.array([True, False, False]),
                              np.array([0, 0, 1])) == 0.0  # fmt: skip
    assert within_group_auroc(scores, np.ones(6, dtype=bool), groups) is None


def test_mixed_groups():
    groups = np.repeat([0, 1, 2], 2)
    assert mixed(np.array([True, False, True, True, False, False]), groups) == 1 / 3


class _Sampler:
    temperature = 1.0

    def __call__(self, obs):
        return self.temperature


def test_the_forked_sampler_acts_with_the_mean_until_the_fork():
    actor = ForkedSampler(_Sampler(), fork=2)
    assert [actor({"t": i}) for i in range(4)] == [0.0, 0.0, 1.0, 1.0]
    assert [o["t"] for o in actor.seen] == [0, 1, 2, 3]


def test_the_temperature_is_the_runs_unless_given():
    run = {"algo": {"temperature": 1.0, "lr": 2e-6}, "horizon": 150}
    assert at_temperature(run, -1.0) is run
    lower = at_temperature(run, 0.5)
    assert lower == {"algo": {"temperature": 0.5, "lr": 2e-6}, "horizon": 150}
    assert run["algo"]["temperature"] == 1.0  # the run's settings are left as they were
