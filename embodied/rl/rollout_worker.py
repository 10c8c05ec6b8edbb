"""RL's rollout workers, behind one interface: each holds a copy of the policy and an
environment, and returns a batch of sampled episodes for the policy's current weights.

- `embodied.rl.imagined_worker.ImaginedWorker`: episodes imagined in the world model from
  real start frames, judged by the reward model (RL in the world model).
- `embodied.rl.mujoco_worker.MujocoWorker`: the same groups run in MuJoCo, judged by the
  simulator (RL directly on real episodes: the equal-budget baseline).

Both return the same batch (`PolicyWorker.batch`), which the one learner
(`embodied.rl.learner`) consumes. A worker runs in the learner's process (tests,
`--ray.num_workers=0`) or as a long-lived Ray actor (`Workers`, from the runtime's one actor
pool). Rollouts are a function of (weights, seed): a restarted actor that repeats a task
returns the same episodes, which keeps runs reproducible through worker failures.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from embodied.types import STATE

RL_ENVS = ("world_model", "mujoco")


@dataclass
class Models:
    """What the workers imagine with; it changes at refreshes and goes with every call, so
    an actor restarted from its spec imagines as the others do (MuJoCo workers ignore it).

    Attributes:
        world_model: the world model's checkpoint folder.
        reward_model: the reward model's (empty: the world model's own success head).
        start_roots: datasets of the policy's own real episodes to start from as well.
        imagined_threshold: the threshold imagined episodes are judged at, when matched to
            the policy's real success rate (`embodied.rl.calibration`); -1: the reward
            model's own, chosen on real frames.
    """

    world_model: str
    reward_model: str = ""
    start_roots: tuple[str, ...] = ()
    imagined_threshold: float = -1.0


@dataclass
class WorkerSpec:
    """What a worker needs to build itself (plain data, so it travels to Ray actors).

    Attributes:
        policy_path, world_model_path: checkpoint folders.
        dataset: `DatasetConfig` of the start frames.
        starts: start states per batch; each is repeated `group_size` times.
        group_size: G, episodes per start state.
        horizon: env steps before an imagined episode is truncated.
        n_action_steps: actions of each chunk executed before re-planning (0: the policy's).
        temperature: sampling temperature (scales the policy's standard deviation).
        success_threshold: success probability at which an imagined episode succeeds (the
            world model's own head; a reward model brings its own threshold).
        reward_model_path: the reward model judging imagined episodes (empty: the world
            model's success head).
        keyframe_every: also start from every n-th frame (before success) of the real
            episodes, the dataset's and the policy's own (0: episode starts only).
        env: where episodes run: "world_model" (imagined) or "mujoco".
        task: the MuJoCo tasks of `env="mujoco"` (comma-separated), shared out among a
            batch's start states.
    """

    policy_path: str
    world_model_path: str
    dataset: Any
    starts: int
    group_size: int
    horizon: int
    n_action_steps: int
    temperature: float
    success_threshold: float = 0.5
    reward_model_path: str = ""
    keyframe_every: int = 0
    env: str = "world_model"
    task: str = ""


class PolicyWorker:
    """What both workers share: the policy copy, its weights, its sampler and the batch."""

    def __init__(self, spec: WorkerSpec, device: str = "cpu"):
        from embodied.policy_io import load_policy

        self.spec, self.device = spec, device
        path = spec.policy_path
        self.policy, self.pre, self.post = load_policy(path, device, policy_type="embodied_vla")
        self.policy.eval()
        self.image_keys = sorted(self.policy.config.image_features)

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        import torch

        # Ray hands the arrays over read-only; torch.tensor copies them
        self.policy.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})

    def sampler(self, seed: int):
        """RL's actor: chunks sampled at the temperature, seeded."""
        import torch

        from embodied.acting import ChunkSampler

        n = self.spec.n_action_steps or self.policy.config.n_action_steps
        generator = torch.Generator().manual_seed(seed)
        return ChunkSampler(self.policy, self.pre, self.post, n, self.spec.temperature, generator)

    def observed(self):
        """The callback keeping the observations each decision was made on."""
        from embodied.imagination import Observations

        return Observations([*self.image_keys, STATE])

    def batch(self, result: Any, seen: Any, start: np.ndarray, success: np.ndarray,
              steps: np.ndarray) -> dict[str, np.ndarray]:  # fmt: skip
        """The batch the learner takes, per decision t and episode b: `obs/<key>`
        (T, B, ...), `actions` (T, B, H, A) normalized chunks, `log_prob` (T, B), `reward`
        (T, B), `alive` (T, B), and per episode `task` (instruction), `start`, `group`,
        `success`, `steps` (env steps) (B,)."""
        spec = self.spec
        return {
            **{f"obs/{k}": v for k, v in seen.stacked().items()},
            "actions": result.extras["chunk"],
            "log_prob": result.extras["log_prob"],
            "alive": result.alive,
            "reward": result.rewards,
            "task": np.array(result.instructions),
            "start": start,
            "group": np.repeat(np.arange(spec.starts), spec.group_size),
            "success": success,
            "steps": steps,
        }

    def use(self, models: Models) -> None:
        """Switch to the models a refresh produced (nothing to switch in MuJoCo)."""


def make_worker(spec: WorkerSpec, device: str = "cpu") -> PolicyWorker:
    """The worker of `spec.env`, computing on `device` (the class travels to Ray actors
    through `WorkerActor`)."""
    if spec.env == "mujoco":
        from embodied.rl.mujoco_worker import MujocoWorker

        return MujocoWorker(spec, device)
    from embodied.rl.imagined_worker import ImaginedWorker

    return ImaginedWorker(spec, device)


class WorkerActor:
    """A worker as a Ray actor: built from its spec inside the actor's process, on the GPU
    Ray gave it (`--ray.gpus_per_worker`), if any."""

    def __init__(self, spec: WorkerSpec):
        from embodied.ray_utils import placed_device

        self.worker = make_worker(spec, placed_device())

    def sample(self, weights: dict, seed: int, models: Models | None = None) -> dict:
        return self.worker.sample(weights, seed, models)


class Workers:
    """The rollout workers: Ray actors, or one worker in this process."""

    def __init__(self, spec: WorkerSpec, ray: Any, output_dir: str = ""):
        """`output_dir`: where refreshes write the models the actors switch to."""
        from embodied.ray_utils import actors

        self.count = ray.workers
        self.local = make_worker(spec) if ray.num_workers <= 0 and not ray.address else None
        reads = {"--policy.path": spec.policy_path, "--world_model.path": spec.world_model_path,
                 "--reward_model.path": spec.reward_model_path,
                 "--dataset.root": getattr(spec.dataset, "root", "")}  # fmt: skip
        writes = {"--output_dir": output_dir} if output_dir else {}
        self.actors = [] if self.local else actors(WorkerActor, ray, spec, reads=reads,
                                                   writes=writes)  # fmt: skip

    def sample(self, weights: dict[str, np.ndarray], seeds: list[int], models: Models) -> list:
        """One batch per worker, imagined with `models`."""
        if self.local is not None:
            return [self.local.sample(weights, s, models) for s in seeds]
        import ray

        ref = ray.put(weights)
        calls = [a.sample.remote(ref, s, models) for a, s in zip(self.actors, seeds, strict=True)]
        return ray.get(calls)

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
