"""Every seed the runtime derives from a run's seed, by one formula each."""

import numpy as np

# independent random streams of an RL run, each seeded by (run seed, iteration, stream, ...)
RL_STREAMS = {"rollout": 0, "refresh_episodes": 1, "refresh_training": 2}


def derive_seed(*keys: int) -> int:
    """A 32-bit seed from several integers (run seed, iteration, stream, worker): different
    keys give statistically independent streams, the same keys the same one."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def episode_seed(base: int, task_index: int, episode: int) -> int:
    """Episode `episode` of the `task_index`-th task of a recording: tasks never share a
    start state (`collect`, the RL refresh)."""
    return base + 100_000 * task_index + episode
