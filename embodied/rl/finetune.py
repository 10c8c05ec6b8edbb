"""`embodied finetune`: RL fine-tuning of the VLA inside world-model rollouts, on Ray.

Each iteration: the learner (this process) sends the policy's weights to the rollout
workers (`RolloutWorker`, long-lived Ray actors, each with its own world model and policy
copy); each imagines `starts x group_size` episodes from real start frames; the learner
computes advantages (GRPO: group-relative success; PPO: GAE with a value head on the
policy's features) and updates the policy for a few epochs. Every `eval_every` iterations
the policy also runs in MuJoCo, and its true success is logged next to the world model's
estimate, so reward hacking shows as the two drifting apart. With `--refresh.every=K` the
world model is fine-tuned every K iterations on the policy's own MuJoCo episodes
(`embodied.rl.refresh`), so what the policy exploits gets corrected.

Why Ray core and not RLlib: RLlib 2.60 has no GRPO, and its episodes hold one action per
step while our policy acts in chunks whose log-probability is one quantity; expressing both
in RLlib took connectors, a custom learner and a custom vector env, and ran ~15 % slower
than this loop of long-lived actors (measured; see ../shared/DESIGN.md). What RLlib would
give us, we keep: actors restart when killed (`max_restarts`) and their task is retried
(`max_task_retries`), and a rollout is a function of (weights, seed), so a retried one is
identical.

Checkpoints use the training loop's layout (`checkpoints/<iteration>/pretrained_model` is a
LeRobot policy folder); a rerun with the same output_dir resumes exactly.
"""

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embodied.config import ConfigError, to_dict
from embodied.data.source import EPISODES_SIDECAR, DatasetConfig
from embodied.ray_utils import RaySettings
from embodied.refs import PolicyRef, WorldModelRef
from embodied.rl.refresh import REFRESH_DIR, WORLD_MODELS_DIR, RefreshSettings
from embodied.stats import rates_by


@dataclass
class AlgoSettings:
    """Attributes:
    type: grpo or ppo.
    group_size: G, imagined episodes per start state.
    starts: start states per worker per iteration.
    temperature: sampling temperature (scales the policy's standard deviation).
    clip_low, clip_high: asymmetric ratio clipping (1 - low, 1 + high).
    min_group_rate, max_group_rate: GRPO drops groups whose success rate is outside
        (min, max); the defaults drop groups that all succeed or all fail.
    kl_coef: weight of a KL penalty to the pretrained policy (0: none, the recipe's default).
    epochs: passes over each iteration's decisions.
    minibatch_size: decisions per gradient step.
    lr: learning rate of the policy. Small, because Adam moves every weight by about lr per
        step and a chunk's log-probability sums over every executed action dimension: on the
        quickstart policy one step at 3e-5 moved it by 0.7 nats on average, clipped most
        samples and wrecked the policy within one iteration; 1e-6 moves it by 0.02.
    value_lr: learning rate of PPO's value head (a fresh layer, so much larger).
    gamma, gae_lambda, value_coef: PPO's discount, GAE lambda and value-loss weight.
    entropy_coef: weight of an entropy bonus.
    """

    type: str = "grpo"
    group_size: int = 8
    starts: int = 4
    temperature: float = 1.0
    clip_low: float = 0.2
    clip_high: float = 0.28
    min_group_rate: float = 0.0
    max_group_rate: float = 1.0
    kl_coef: float = 0.0
    epochs: int = 2
    minibatch_size: int = 64
    lr: float = 1e-6
    value_lr: float = 1e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    value_coef: float = 0.5
    entropy_coef: float = 0.0


@dataclass
class FinetuneConfig:
    """Attributes:
    policy: --policy.path=CKPT, an embodied_vla checkpoint (RL needs its exact log-probs).
    world_model: --world_model.path=CKPT, with a success head (the reward).
    dataset: where the real start frames come from (episode first frames and instructions).
    algo: the RL algorithm and its settings.
    output_dir: run directory: checkpoints/, metrics.jsonl, finetune_config.json.
    iterations: learner updates in total (a resumed run continues up to this number).
    horizon: env steps before an imagined episode is truncated. The tasks' own horizon
        (150 for lift and lang_cubes): the world model judges many successes late, and at 80
        steps the quickstart's policy had no imagined success at all.
    n_action_steps: actions of each chunk executed before re-planning (0: the policy's).
    success_threshold: success probability at which an imagined episode succeeds.
    eval_task: MuJoCo tasks for the periodic check of true success (empty: none).
    eval_every: iterations between MuJoCo checks (and one at the end).
    eval_episodes: episodes per task in each check.
    save_every: iterations between checkpoints (one is always written at the end).
    refresh: world-model refresh on the policy's MuJoCo episodes (off by default).
    seed: seeds start states, sampling and minibatch order.
    ray: --ray.num_workers=N rollout actors (0: roll out in this process);
        --ray.address=HOST:PORT uses an existing cluster.
    """

    policy: PolicyRef = field(default_factory=PolicyRef)
    world_model: WorldModelRef = field(default_factory=WorldModelRef)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    algo: AlgoSettings = field(default_factory=AlgoSettings)
    output_dir: str = ""
    iterations: int = 20
    horizon: int = 150
    n_action_steps: int = 0
    success_threshold: float = 0.5
    eval_task: str = ""
    eval_every: int = 10
    eval_episodes: int = 6
    save_every: int = 5
    refresh: RefreshSettings = field(default_factory=RefreshSettings)
    seed: int = 0
    ray: RaySettings = field(default_factory=lambda: RaySettings(num_workers=2))


def check_compatible(policy_config: Any, world_model_config: Any) -> None:
    """Fail before any rollout when the policy cannot act in the world model."""
    wm_keys = set(world_model_config.image_keys)
    missing = sorted(set(policy_config.image_features) - wm_keys)
    if missing:
        raise ValueError(
            f"the policy reads cameras {missing} the world model does not predict "
            f"({sorted(wm_keys)})"
        )
    for key, feature in policy_config.image_features.items():
        size = world_model_config.image_size
        if tuple(feature.shape) != (3, size, size):
            raise ValueError(
                f"the policy takes {key} as {tuple(feature.shape)}; "
                f"the world model predicts (3, {size}, {size})"
            )
    if policy_config.action_feature.shape[0] != world_model_config.action_dim:
        raise ValueError(
            f"the policy outputs {policy_config.action_feature.shape[0]}-D actions; "
            f"the world model takes {world_model_config.action_dim}-D"
        )
    if policy_config.robot_state_feature.shape[0] != world_model_config.state_dim:
        raise ValueError("the policy's state size differs from the world model's")
    if not world_model_config.success_head:
        raise ValueError("the world model has no success head: it cannot reward the policy")


def finetune(config: FinetuneConfig) -> Path:
    """Run (or resume) the fine-tune; returns the final policy checkpoint folder."""
    from embodied.data.source import open_metadata
    from embodied.policy_io import load_policy
    from world_models.registry import load_world_model

    if not config.output_dir:
        raise ConfigError("finetune needs --output_dir=DIR")
    if config.algo.type not in ("grpo", "ppo"):
        raise ConfigError(f"--algo.type must be grpo or ppo, not {config.algo.type!r}")
    if config.refresh.every > 0:
        from envs.tasks import parse_tasks

        if not (config.refresh.task or config.eval_task):
            raise ConfigError("--refresh.every needs MuJoCo tasks: --refresh.task or --eval_task")
        parse_tasks(config.refresh.task or config.eval_task)
    policy, pre, post = load_policy(config.policy.path, policy_type="embodied_vla")
    world_model = load_world_model(config.world_model.path)
    check_compatible(policy.config, world_model.config)
    open_metadata(config.dataset)
    n = config.n_action_steps or policy.config.n_action_steps
    if not 1 <= n <= policy.config.chunk_size:
        raise ConfigError(f"--n_action_steps={n}: the policy predicts {policy.config.chunk_size}")
    if n % world_model.config.frame_stride:
        raise ConfigError(
            f"the policy executes {n} actions per chunk; the world model steps "
            f"{world_model.config.frame_stride} at a time (frame_stride): use a multiple"
        )
    learner = Learner(config, policy, pre, post, n)
    workers = Workers(config, n)
    try:
        return learner.run(workers)
    finally:
        workers.close()


class Workers:
    """The rollout workers: Ray actors, or one worker in this process."""

    def __init__(self, config: FinetuneConfig, n_action_steps: int):
        from embodied.rl.rollout_worker import RolloutWorker, WorkerSpec

        algo = config.algo
        self.spec = WorkerSpec(
            policy_path=str(config.policy.path),
            world_model_path=str(config.world_model.path),
            dataset=config.dataset,
            starts=algo.starts,
            group_size=algo.group_size,
            horizon=config.horizon,
            n_action_steps=n_action_steps,
            temperature=algo.temperature,
            success_threshold=config.success_threshold,
        )
        self.count = max(1, config.ray.num_workers)
        self.local = None
        if config.ray.num_workers <= 0:
            self.local = RolloutWorker(self.spec)
            return
        import ray

        from embodied.ray_utils import connect

        connect(config.ray.address, num_cpus=config.ray.num_workers)
        actor = ray.remote(num_cpus=1)(RolloutWorker).options(
            max_restarts=-1, max_task_retries=-1, runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}}
        )
        self.actors = [actor.remote(self.spec) for _ in range(self.count)]

    def sample(
        self, weights: dict[str, np.ndarray], seeds: list[int], world_model_path: str
    ) -> list[dict]:
        """One batch per worker. The world model goes by path with every call, so an actor
        restarted from its spec still imagines with the refreshed model."""
        if self.local is not None:
            return [self.local.sample(weights, s, world_model_path) for s in seeds]
        import ray

        ref = ray.put(weights)
        return ray.get(
            [
                a.sample.remote(ref, s, world_model_path)
                for a, s in zip(self.actors, seeds, strict=True)
            ]
        )

    def close(self) -> None:
        if self.local is None:
            import ray

            for actor in self.actors:
                ray.kill(actor)


class Learner:
    """The policy (and PPO's value head) being trained, its optimizer, checkpoints and logs."""

    def __init__(self, config: FinetuneConfig, policy, pre, post, n_action_steps: int):
        import torch

        self.config, self.policy, self.pre, self.post = config, policy, pre, post
        self.n_action_steps = n_action_steps
        self.out = Path(config.output_dir)
        torch.manual_seed(config.seed)
        self.value_head = torch.nn.Linear(policy.config.dim, 1)
        groups = [
            {"params": list(policy.parameters())},
            {"params": list(self.value_head.parameters()), "lr": config.algo.value_lr},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=config.algo.lr, weight_decay=0.0)
        self.reference = None
        if config.algo.kl_coef > 0:
            import copy

            self.reference = copy.deepcopy(policy).eval().requires_grad_(False)
        self.image_keys = sorted(policy.config.image_features)
        self.world_model_path = str(config.world_model.path)

    # --- the loop -------------------------------------------------------------------
    def run(self, workers: Workers) -> Path:
        from embodied.training import last_checkpoint

        config = self.config
        resume = last_checkpoint(self.out)
        start = self._load(resume) if resume is not None else 0
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "finetune_config.json").write_text(json.dumps(to_dict(config), indent=2))
        folder = resume
        with open(self.out / "metrics.jsonl", "a") as metrics:
            if start == 0:
                _remove_later_refreshes(self.out, -1)  # a fresh start redoes every refresh
                row = {"iteration": 0}
                if config.eval_task:
                    row.update(self._mujoco_check(0))
                if config.refresh.every > 0 and config.refresh.at_start:
                    row.update(self._refresh(0))
                if len(row) > 1:
                    metrics.write(json.dumps(row) + "\n")
            for iteration in range(start, config.iterations):
                row = self._iteration(workers, iteration)
                done = iteration + 1
                if config.eval_task and (
                    done % config.eval_every == 0 or done == config.iterations
                ):
                    row.update(self._mujoco_check(done))
                if config.refresh.every > 0 and done % config.refresh.every == 0:
                    row.update(self._refresh(done))
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
                print(_progress_line(row, config.iterations))
                if done % config.save_every == 0 or done == config.iterations:
                    folder = self._save(done)
        if folder is None:
            folder = self._save(start)
        from embodied.training import MODEL_DIR

        return folder / MODEL_DIR

    def _iteration(self, workers: Workers, iteration: int) -> dict:
        tick = time.perf_counter()
        weights = {k: v.detach().cpu().numpy() for k, v in self.policy.state_dict().items()}
        sync = time.perf_counter() - tick
        seeds = [
            int(np.random.SeedSequence([self.config.seed, iteration, w]).generate_state(1)[0])
            for w in range(workers.count)
        ]
        tick = time.perf_counter()
        batches = workers.sample(weights, seeds, self.world_model_path)
        rollout = time.perf_counter() - tick
        tick = time.perf_counter()
        stats = self._update(batches, iteration)
        learn = time.perf_counter() - tick
        success = np.concatenate([b["success"] for b in batches])
        instructions = np.concatenate([b["task"] for b in batches])
        decisions = sum(int(b["alive"].sum()) for b in batches)
        steps = int(sum(b["steps"].sum() for b in batches))
        return {
            "iteration": iteration + 1,
            "wm_success": float(success.mean()),
            "wm_success_by_instruction": rates_by(success, instructions),
            "episodes": len(success),
            "decisions": decisions,
            "imagined_steps": steps,
            **stats,
            "time_rollout_s": rollout,
            "time_learn_s": learn,
            "time_sync_s": sync,
        }

    # --- the update -----------------------------------------------------------------
    def _decisions(self, batches: list[dict]) -> dict:
        """Flatten live decisions of every batch, with per-episode returns and groups."""
        import torch

        rows: dict[str, list] = {k: [] for k in ("actions", "log_prob", "reward", "episode", "t")}
        obs: dict[str, list] = {}
        returns, groups, offset, group_offset = [], [], 0, 0
        for batch in batches:
            t_idx, b_idx = np.nonzero(batch["alive"])
            for key in batch:
                if key.startswith("obs/"):
                    obs.setdefault(key[4:], []).append(batch[key][t_idx, b_idx])
            rows["actions"].append(batch["actions"][t_idx, b_idx])
            rows["log_prob"].append(batch["log_prob"][t_idx, b_idx])
            rows["reward"].append(batch["reward"][t_idx, b_idx])
            rows["episode"].append(b_idx + offset)
            rows["t"].append(t_idx)
            obs.setdefault("task", []).append(batch["task"][b_idx])
            returns.append(batch["success"].astype(np.float32))
            groups.append(batch["group"] + group_offset)
            offset += batch["alive"].shape[1]
            group_offset += int(batch["group"].max()) + 1
        flat = {k: np.concatenate(v) for k, v in rows.items()}
        flat["obs"] = {k: np.concatenate(v) for k, v in obs.items()}
        flat["returns"] = torch.from_numpy(np.concatenate(returns))
        flat["groups"] = torch.from_numpy(np.concatenate(groups))
        return flat

    def _advantages(self, data: dict) -> tuple[Any, Any, Any]:
        """Per decision: (advantages, keep mask, value targets or None)."""
        import torch

        from embodied.rl.losses import gae, group_advantages

        algo = self.config.algo
        episode = torch.from_numpy(data["episode"])
        if algo.type == "grpo":
            adv, keep = group_advantages(
                data["returns"], data["groups"], algo.min_group_rate, algo.max_group_rate
            )
            return adv[episode], keep[episode], None
        with torch.no_grad():
            values = torch.cat(
                [
                    self._value(self._obs(data, idx))
                    for idx in np.array_split(np.arange(len(episode)), max(1, len(episode) // 256))
                ]
            )
        n_eps, T = int(episode.max()) + 1, int(data["t"].max()) + 1
        grid = {name: torch.zeros(T, n_eps) for name in ("reward", "value", "alive")}
        t = torch.from_numpy(data["t"])
        grid["reward"][t, episode] = torch.from_numpy(data["reward"])
        grid["value"][t, episode] = values
        grid["alive"][t, episode] = 1.0
        adv, returns = gae(
            grid["reward"], grid["value"], grid["alive"] > 0, algo.gamma, algo.gae_lambda
        )
        adv, returns = adv[t, episode], returns[t, episode]
        adv = (adv - adv.mean()) / (adv.std() + 1e-6)
        return adv, torch.ones_like(adv, dtype=torch.bool), returns

    def _obs(self, data: dict, idx: np.ndarray) -> dict:
        from embodied.acting import policy_batch

        obs = {k: v[idx] for k, v in data["obs"].items()}
        return self.pre(policy_batch(obs, self.image_keys))

    def _value(self, batch: dict):
        _, features = self.policy.distribution(batch, with_features=True)
        return self.value_head(features).squeeze(-1)

    def _update(self, batches: list[dict], iteration: int) -> dict:
        import torch

        from embodied.acting import executed_steps
        from embodied.rl.losses import clipped_surrogate, gaussian_kl

        algo = self.config.algo
        data = self._decisions(batches)
        adv, keep, value_targets = self._advantages(data)
        n = len(adv)
        chunk = self.policy.config.chunk_size
        mask = executed_steps(chunk, self.n_action_steps)
        actions = torch.from_numpy(data["actions"])
        old_log_prob = torch.from_numpy(data["log_prob"])
        rng = np.random.default_rng([self.config.seed, iteration])
        totals: dict[str, list[float]] = {}
        kept = keep.nonzero().squeeze(-1).numpy()
        self.policy.train()
        for _ in range(algo.epochs if len(kept) else 0):
            order = rng.permutation(kept)
            for start in range(0, len(order), algo.minibatch_size):
                idx = order[start : start + algo.minibatch_size]
                batch = self._obs(data, idx)
                dist, features = self.policy.distribution(batch, with_features=True)
                step_mask = mask.expand(len(idx), -1)
                log_prob = dist.log_prob(actions[idx], mask=step_mask, temperature=algo.temperature)
                loss, info = clipped_surrogate(
                    log_prob,
                    old_log_prob[idx],
                    adv[idx],
                    torch.ones(len(idx), dtype=torch.bool),
                    algo.clip_low,
                    algo.clip_high,
                )
                info["policy_loss"] = loss.item()
                if value_targets is not None:
                    value_loss = (
                        (self.value_head(features).squeeze(-1) - value_targets[idx]).pow(2).mean()
                    )
                    loss = loss + algo.value_coef * value_loss
                    info["value_loss"] = value_loss.item()
                entropy = dist.entropy(mask=step_mask, temperature=algo.temperature).mean()
                loss = loss - algo.entropy_coef * entropy
                info["entropy"] = entropy.item()
                if self.reference is not None:
                    ref = self.reference.distribution(batch)
                    kl = gaussian_kl(
                        dist.mean[:, mask],
                        dist.log_std[:, mask],
                        ref.mean[:, mask],
                        ref.log_std[:, mask],
                    ).mean()
                    loss = loss + algo.kl_coef * kl
                    info["kl_ref"] = kl.item()
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"RL loss is {loss.item()} at iteration {iteration + 1}"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                info["grad_norm"] = torch.nn.utils.clip_grad_norm_(
                    self.policy.parameters(), 1.0
                ).item()
                self.optimizer.step()
                for k, v in info.items():
                    totals.setdefault(k, []).append(v)
        self.policy.eval()
        stats = {k: float(np.mean(v)) for k, v in totals.items()}
        stats["kept_fraction"] = float(len(kept) / max(n, 1))
        return stats

    # --- MuJoCo check, checkpoints ----------------------------------------------------
    def _mujoco_check(self, iteration: int) -> dict:
        """True success of the current policy in MuJoCo (same seeds every time)."""
        from embodied.files import folder_written_atomically
        from embodied.mujoco_eval import EnvSettings, EvalSettings, evaluate_policy

        folder = self.out / "mujoco_checks" / f"{iteration:05d}"
        with folder_written_atomically(folder / "policy") as tmp:
            self._save_policy(tmp)
        settings = EvalSettings(n_episodes=self.config.eval_episodes, videos=0,
                                n_action_steps=self.n_action_steps)  # fmt: skip
        summary = evaluate_policy(
            str(folder / "policy"), EnvSettings(task=self.config.eval_task), settings, folder
        )
        return {
            "mujoco_success": summary["success_rate"],
            "mujoco_episodes": summary["episodes"],
            "mujoco_success_by_task": {
                task: s["success_rate"] for task, s in summary["per_task"].items()
            },
        }

    def _refresh(self, iteration: int) -> dict:
        """Record the policy's MuJoCo episodes and fine-tune the world model on them (and on
        every earlier refresh's); the workers imagine with the result from now on."""
        from embodied.rl.refresh import record_policy_episodes, refresh_world_model
        from world_models.base import read_config
        from world_models.registry import FAMILIES

        config, settings = self.config, self.config.refresh
        tick = time.perf_counter()
        wm_config = read_config(Path(self.world_model_path), FAMILIES)
        root = record_policy_episodes(
            self.out / REFRESH_DIR / f"{iteration:05d}",
            self.policy,
            self.pre,
            self.post,
            settings.task or config.eval_task,
            settings.episodes,
            seed=int(np.random.SeedSequence([config.seed, iteration, 7]).generate_state(1)[0]),
            n_action_steps=self.n_action_steps,
            temperature=config.algo.temperature,
            image_keys=list(wm_config.image_keys),
            image_size=wm_config.image_size,
        )
        rows = [json.loads(x) for x in (root / EPISODES_SIDECAR).read_text().splitlines()]
        path, loss = refresh_world_model(
            self.world_model_path,
            config.dataset,
            _refresh_datasets(self.out, iteration),
            settings,
            seed=config.seed + iteration,
            out=self.out / WORLD_MODELS_DIR / f"{iteration:05d}",
            cache_dir=self.out / REFRESH_DIR / "cache",
        )
        self.world_model_path = str(path)
        judged = self._judge_original_episodes(path) or {}
        return {
            "refresh_success": float(np.mean([r["success"] for r in rows])),
            "refresh_episodes": len(rows),
            "refresh_wm_loss": loss,
            "refresh_wm_recall": judged.get("recall"),
            "refresh_wm_false_positive_rate": judged.get("false_positive_rate"),
            "time_refresh_s": time.perf_counter() - tick,
        }

    def _judge_original_episodes(self, path: Path) -> dict | None:
        """How the refreshed world model judges the original data's real episodes, replayed
        as RL imagines: a refresh that makes the success head miss real successes leaves
        RL without reward (on the CPU benchmark, a fixed half of each batch from a dozen
        mostly failed episodes cut the held-out recall from 0.76 to 0.36)."""
        from embodied.data.dataset import CachedDataset
        from embodied.imagination import judge_episodes
        from world_models.registry import load_world_model

        dataset = CachedDataset.open(self.config.dataset)
        episodes = list(range(dataset.meta.total_episodes))
        model = load_world_model(path)
        return judge_episodes(model, dataset, episodes, self.config.success_threshold)

    def _save_policy(self, folder: Path) -> None:
        for part in (self.policy, self.pre, self.post):
            part.save_pretrained(folder)

    def _save(self, iteration: int) -> Path:
        from embodied.training import Trainable, save_checkpoint

        job = Trainable(self.policy, self.optimizer, None, 0, None, self._save_policy)
        return save_checkpoint(
            self.out,
            iteration,
            job,
            extra=self._save_state,
        )

    def _save_state(self, state: Path) -> None:
        from safetensors.torch import save_file

        save_file(self.value_head.state_dict(), state / "value_head.safetensors")
        (state / WORLD_MODEL_STATE).write_text(json.dumps({"path": self.world_model_path}))

    def _load(self, checkpoint: Path) -> int:
        from safetensors.torch import load_file

        from embodied.policy_io import load_policy
        from embodied.training import MODEL_DIR, STATE_DIR, Trainable, load_training_state

        policy, _, _ = load_policy(checkpoint / MODEL_DIR, policy_type="embodied_vla")
        self.policy.load_state_dict(policy.state_dict())
        self.value_head.load_state_dict(
            load_file(checkpoint / STATE_DIR / "value_head.safetensors")
        )
        load_training_state(
            Trainable(self.policy, self.optimizer, None, 0, None, None), checkpoint / STATE_DIR
        )
        self.world_model_path = json.loads(
            (checkpoint / STATE_DIR / WORLD_MODEL_STATE).read_text()
        )["path"]
        step = json.loads((checkpoint / STATE_DIR / "step.json").read_text())["step"]
        _remove_later_refreshes(self.out, step)
        return step


WORLD_MODEL_STATE = "world_model.json"  # in training_state: the world model imagined with


def _refresh_datasets(out: Path, up_to: int) -> list[Path]:
    """The finished refresh datasets of iterations <= up_to, oldest first."""
    folder = out / REFRESH_DIR
    return sorted(
        p for p in folder.glob("[0-9]" * 5) if p.is_dir() and int(p.name) <= up_to
    ) if folder.is_dir() else []  # fmt: skip


def _remove_later_refreshes(out: Path, step: int) -> None:
    """A resumed run redoes what came after its checkpoint: refresh episodes and world
    models of later iterations are removed, so they are not trained on twice."""
    import shutil

    for name in (REFRESH_DIR, WORLD_MODELS_DIR):
        for path in (out / name).glob("[0-9]" * 5 + "*"):
            if int(path.name[:5]) > step:
                shutil.rmtree(path)


def _progress_line(row: dict, total: int) -> str:
    text = f"finetune {row['iteration']}/{total}: imagined success {row['wm_success']:.0%}"
    if "mujoco_success" in row:
        text += f", MuJoCo success {row['mujoco_success']:.0%}"
    if "refresh_success" in row:
        text += f", refresh episodes' success {row['refresh_success']:.0%}"
    if row.get("refresh_wm_recall") is not None:
        text += f", refreshed model's recall of real successes {row['refresh_wm_recall']:.0%}"
    text += f", kept {row.get('kept_fraction', 0):.0%}"
    return text + f", rollout {row['time_rollout_s']:.1f}s, learn {row['time_learn_s']:.1f}s"
