"""The real-episode budget of a fine-tune: every MuJoCo episode RL learns from is counted.

RL in the world model spends real episodes in its refreshes (the policy's own episodes
recorded to refit the world model and the reward model); RL in MuJoCo spends every episode
it practises. `FinetuneConfig.real_episodes` caps the total (0: no cap), so the two can be
compared at the same budget. The MuJoCo checks only measure and are not counted.
"""

from pathlib import Path

from embodied.rl.refresh import real_episodes


def mujoco_episodes_per_iteration(config) -> int:
    """The MuJoCo episodes one iteration of RL in MuJoCo runs: workers x starts x G."""
    return config.ray.workers * config.algo.starts * config.algo.group_size


class RealBudget:
    def __init__(self, config):
        from envs.tasks import parse_tasks

        self.limit = config.real_episodes
        # episodes one iteration runs in MuJoCo (RL in MuJoCo), one refresh records
        mujoco = config.env == "mujoco"
        self.per_iteration = mujoco_episodes_per_iteration(config) if mujoco else 0
        tasks = config.refresh.task or config.eval_task
        self.per_refresh = config.refresh.episodes * len(parse_tasks(tasks)) if tasks else 0

    def spent(self, out: Path, done: int) -> int:
        """Real episodes learned from after `done` iterations."""
        return real_episodes(out, done) + done * self.per_iteration

    def allows(self, spent: int, more: int) -> bool:
        return not self.limit or spent + more <= self.limit
