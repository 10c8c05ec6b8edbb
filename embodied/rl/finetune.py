"""`embodied finetune`: RL fine-tuning of the VLA inside world-model rollouts, on Ray.

Each iteration: the learner (this process) sends the policy's weights to the rollout
workers (`embodied.rl.rollout_worker`, long-lived Ray actors, each with its own world model
and policy copy); each imagines `starts x group_size` episodes from real start frames; the
learner (`embodied.rl.learner`) computes advantages with the algorithm
(`embodied.rl.algorithms`: GRPO's group-relative success, or PPO's GAE with a value head)
and updates the policy. Every `eval_every` iterations the policy also runs in MuJoCo, and
its true success is logged next to the world model's estimate, so reward hacking shows as
the two drifting apart. With `--refresh.every=K` the world model is fine-tuned every K
iterations on the policy's own MuJoCo episodes (`embodied.rl.refresh`), so what the policy
exploits gets corrected; not after the last iteration, when nothing would imagine with the
refitted models (on the quickstart that spent 8 real episodes and ~100 s). With
`--env=mujoco` the same workers and learner run the groups in MuJoCo instead
(`embodied.rl.mujoco_worker`): RL on real episodes, the baseline that RL in the world model
must beat at the same `real_episodes` budget (`embodied.rl.budget`).

Why Ray core and not RLlib: RLlib 2.60 has no GRPO, and its episodes hold one action per
step while our policy acts in chunks whose log-probability is one quantity; expressing both
in RLlib took connectors, a custom learner and a custom vector env, and ran ~15 % slower
than this loop of long-lived actors (measured; see ../shared/DESIGN.md). What RLlib would
give us, we keep: actors restart when killed and their task is retried, and a rollout is a
function of (weights, seed), so a retried one is identical.

Checkpoints (`embodied.rl.checkpoint`) use the training loop's layout; a rerun with the same
output_dir resumes exactly, also with more iterations than the run it resumes.
"""

import json
import time
from pathlib import Path
from typing import Any

from embodied.config import to_dict
from embodied.rl.budget import RealBudget
from embodied.rl.checkpoint import load_policy_into, load_run, save_run
from embodied.rl.guards import stop_reason
from embodied.rl.learner import Learner
from embodied.rl.metrics import episode_figures, progress_line
from embodied.rl.mujoco_check import checked_policy, mujoco_check
from embodied.rl.refresh import refresh, remove_later_refreshes
from embodied.rl.rollout_worker import Models, Workers, WorkerSpec
from embodied.rl.settings import AlgoSettings, FinetuneConfig, check_config
from embodied.seeds import RL_STREAMS, derive_seed

__all__ = ["AlgoSettings", "FinetuneConfig", "finetune"]

STOPPED_FILE = "stopped.json"  # the guard's reason for stopping, in the run directory


def finetune(config: FinetuneConfig) -> Path:
    """Run (or resume) the fine-tune; returns the final policy checkpoint folder. The
    learner runs here, or on a GPU node with `--ray.learner_gpus` (`embodied.rl.placement`)."""
    from embodied.rl.placement import run_learner

    return run_learner(config, _finetune)


def _finetune(config: FinetuneConfig, device: str) -> Path:
    """The fine-tune, its learner computing on `device`."""
    from embodied.data.source import open_metadata
    from embodied.policy_io import load_policy
    from world_models.base import read_config
    from world_models.registry import FAMILIES
    from world_models.reward_model import REWARD_FAMILIES

    policy, pre, post = load_policy(config.policy.path, device, policy_type="embodied_vla")
    world = reward = None
    if config.env == "world_model":
        if config.reward_model.path:
            reward = read_config(Path(config.reward_model.path), REWARD_FAMILIES)
        world = read_config(Path(config.world_model.path), FAMILIES)
        open_metadata(config.dataset)
    n = check_config(config, policy.config, world, reward)
    learner = Learner(config.algo, config.seed, policy, pre, post, n, device)
    a = config.algo
    spec = WorkerSpec(str(config.policy.path), str(config.world_model.path), config.dataset,
                      a.starts, a.group_size, config.horizon, n, a.temperature,
                      config.success_threshold, str(config.reward_model.path),
                      config.keyframe_every, config.env,
                      config.task or config.eval_task)  # fmt: skip
    workers = Workers(spec, config.ray, config.output_dir)
    try:
        return Run(config, learner, workers, n).loop()
    finally:
        workers.close()


def _due(done: int, every: int, last: int) -> bool:
    """A schedule hook fires every `every` iterations (never when 0) and at the last one."""
    return every > 0 and (done % every == 0 or done == last)


class Run:
    """One fine-tune: the loop, its schedule hooks (MuJoCo checks, refreshes, checkpoints)
    and its files."""

    def __init__(self, config: FinetuneConfig, learner: Learner, workers: Workers, n: int):
        self.config, self.learner, self.workers, self.n = config, learner, workers, n
        self.out = Path(config.output_dir)
        self.models = Models(str(config.world_model.path), str(config.reward_model.path))
        self.budget = RealBudget(config)
        self.refreshed = -1  # the last iteration whose refresh was due (done or unaffordable)

    def loop(self) -> Path:
        from embodied.training import MODEL_DIR, last_checkpoint, metrics_up_to

        config = self.config
        folder = last_checkpoint(self.out)
        start = self._resume(folder) if folder is not None else 0
        # rows after the checkpoint (a fresh start: every row) are done again
        self.rows = metrics_up_to(self.out / "metrics.jsonl", start or -1, key="iteration")
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "finetune_config.json").write_text(json.dumps(to_dict(config), indent=2))
        if start:
            self._refresh_skipped_at_end(start)
        checks, refreshes = config.eval_task, config.refresh.every
        with open(self.out / "metrics.jsonl", "a") as metrics:
            if start == 0:
                remove_later_refreshes(self.out, -1)  # a fresh start redoes every refresh
                (self.out / STOPPED_FILE).unlink(missing_ok=True)
                at_start = refreshes > 0 and config.refresh.at_start
                row = self._hooks(0, {"iteration": 0}, bool(checks), at_start)
                if len(row) > 1:
                    self._log(metrics, row)
            for iteration in range(start, config.iterations):
                if (self.out / STOPPED_FILE).exists() or not self._affordable(iteration):
                    break
                done = iteration + 1
                check = bool(checks) and _due(done, config.eval_every, config.iterations)
                # none after the last iteration: nothing imagines with what it would refit
                refresh_now = refreshes > 0 and done % refreshes == 0 and done < config.iterations
                row = self._hooks(done, self._iteration(iteration), check, refresh_now)
                self._log(metrics, row)
                print(progress_line(row, config.iterations))
                if _due(done, config.save_every, config.iterations) or "stopped" in row:
                    folder = self._save(done)
        return (folder if folder is not None else self._save(start)) / MODEL_DIR

    def _log(self, metrics: Any, row: dict) -> None:
        metrics.write(json.dumps(row) + "\n")
        metrics.flush()
        self.rows.append(row)

    def _guard(self, row: dict) -> None:
        """The guards (`embodied.rl.guards`): when one fires, `stopped.json` says why and no
        update follows (a rerun keeps to it); the gap guard puts the checked policy back."""
        why, back = stop_reason([*self.rows, row], self.config)
        if back is not None:
            load_policy_into(self.learner, checked_policy(self.out, back))
        if why is None:
            return
        row["stopped"] = f"{why}; no update after iteration {row['iteration']}"
        print(f"finetune: {row['stopped']}")
        (self.out / STOPPED_FILE).write_text(json.dumps(row))

    def _hooks(self, done: int, row: dict, check: bool, refresh: bool) -> dict:
        """After iteration `done`: the MuJoCo check, then the refresh, when they are due."""
        if check:
            row.update(mujoco_check(self.learner, self.config, done, self.n))
        spent = self.budget.spent(self.out, done)  # this refresh is not recorded yet
        if refresh and not self.budget.allows(spent, self.budget.per_refresh):
            print(f"finetune: the real-episode budget ({self.config.real_episodes}) is spent")
        elif refresh:
            self.models, figures = self._refresh(done)
            row.update(figures)
        if refresh:
            self.refreshed = done
        self._guard(row)
        if len(row) > 1:  # iteration 0 has a row only when a check or a refresh ran
            row["real_episodes"] = self.budget.spent(self.out, done)
        return row

    def _refresh_skipped_at_end(self, start: int) -> None:
        """A run skips the refresh after its last iteration. Resumed with more iterations, it
        does that refresh first, as a run this long would have done it then: the resumed
        checkpoint's row gains its figures, and the checkpoint its models."""
        from embodied.files import write_text_atomically

        every, stopped = self.config.refresh.every, (self.out / STOPPED_FILE).exists()
        finished = start >= self.config.iterations  # a rerun of a finished run changes nothing
        if every <= 0 or start % every or self.refreshed == start or stopped or finished:
            return
        remove_later_refreshes(self.out, start - 1)  # what a catch-up killed halfway left
        last = self.rows[-1] if self.rows and self.rows[-1]["iteration"] == start else None
        self.rows = [r for r in self.rows if r is not last]
        row = self._hooks(start, last or {"iteration": start}, False, True)
        self.rows.append(row)
        lines = "".join(json.dumps(r) + "\n" for r in self.rows)
        write_text_atomically(self.out / "metrics.jsonl", lines)
        self._save(start)

    def _affordable(self, iteration: int) -> bool:
        """Whether the budget pays for this iteration's MuJoCo episodes (RL in MuJoCo)."""
        spent = self.budget.spent(self.out, iteration)
        if self.budget.allows(spent, self.budget.per_iteration):
            return True
        print(f"finetune: the real-episode budget ({self.config.real_episodes}) is spent "
              f"after {iteration} iterations")  # fmt: skip
        return False

    def _refresh(self, done: int) -> tuple[str, dict]:
        return refresh(self.learner, self.config, done, self.models, self.n)

    def _iteration(self, iteration: int) -> dict:
        tick = time.perf_counter()
        weights = self.learner.weights()
        sync = time.perf_counter() - tick
        seeds = [derive_seed(self.config.seed, iteration, RL_STREAMS["rollout"], w)
                 for w in range(self.workers.count)]  # fmt: skip
        tick = time.perf_counter()
        batches = self.workers.sample(weights, seeds, self.models)
        rollout = time.perf_counter() - tick
        tick = time.perf_counter()
        stats = self.learner.update(batches, iteration)
        learn = time.perf_counter() - tick
        return {
            "iteration": iteration + 1,
            **episode_figures(batches, self.config.env),
            **stats,
            "time_rollout_s": rollout,
            "time_learn_s": learn,
            "time_sync_s": sync,
        }

    def _save(self, iteration: int) -> Path:
        return save_run(self.out, iteration, self.learner, self.models, self.refreshed)

    def _resume(self, checkpoint: Path) -> int:
        step, self.models, self.refreshed = load_run(checkpoint, self.learner)
        remove_later_refreshes(self.out, step)
        return step
