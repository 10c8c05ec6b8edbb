"""Where RL's learner runs: in this process on CPU, or, with `--ray.learner_gpus`, as a Ray
task placed on a node with those GPUs, computing there on cuda.

The learner owns the policy update, the MuJoCo checks and the refreshes, so on a cluster it
belongs on a GPU node while the driver may sit on a CPU-only head. Placed, it is a retried
Ray task: a lost node reruns it elsewhere, and it resumes from the last checkpoint in
`--output_dir` (which every node must read; checked before it starts).
"""

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

LEARNER_FILE = "learner.json"  # in the run directory: the node and device of the learner


def run_learner(config: Any, loop: Callable[[Any, str], Path]) -> Path:
    """`loop(config, device)` here on CPU, or placed on a GPU node when the config asks."""
    if config.ray.learner_gpus <= 0:
        return loop(config, "cpu")
    from embodied.ray_utils import connect, require_gpus, require_shared, run_placed

    config = absolute_paths(config)
    connect(config.ray.address, num_cpus=config.ray.workers)
    asked = config.ray.learner_gpus + config.ray.gpus_per_worker * config.ray.workers
    require_gpus(asked, "--ray.learner_gpus and --ray.gpus_per_worker")
    require_shared(writes={"--output_dir": config.output_dir})
    gpus, retries = config.ray.learner_gpus, config.ray.max_failures
    return run_placed(_placed, loop, config, gpus=gpus, retries=retries)


def _placed(loop: Callable[[Any, str], Path], config: Any) -> Path:
    """Inside the Ray task: say where the learner landed, then run it there, with the
    node's cores as a driver would have them (Ray gives a task without CPUs one thread)."""
    import os

    import ray
    import torch

    from embodied.files import write_text_atomically
    from embodied.ray_utils import placed_device

    torch.set_num_threads(os.cpu_count() or 1)
    device = placed_device()
    where = {"node": ray.get_runtime_context().get_node_id(), "device": device,
             "gpu_ids": [str(i) for i in ray.get_gpu_ids()]}  # fmt: skip
    Path(config.output_dir).mkdir(parents=True, exist_ok=True)
    write_text_atomically(Path(config.output_dir) / LEARNER_FILE, json.dumps(where))
    print(f"finetune: the learner runs on node {where['node'][:12]} ({device})")
    return loop(config, device)


def absolute_paths(config: Any) -> Any:
    """`FinetuneConfig` with every path it names made absolute (a task on another node
    starts in another folder)."""

    def full(path: str) -> str:
        return str(Path(path).resolve()) if path else path

    return replace(
        config, output_dir=full(config.output_dir),
        policy=replace(config.policy, path=full(config.policy.path)),
        world_model=replace(config.world_model, path=full(config.world_model.path)),
        reward_model=replace(config.reward_model, path=full(config.reward_model.path)),
        dataset=replace(config.dataset, root=full(config.dataset.root)),
    )  # fmt: skip
