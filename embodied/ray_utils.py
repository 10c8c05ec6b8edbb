"""The one place the runtime connects to Ray: a local cluster or an existing one by address."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embodied.types import UserInputError


class ClusterUnreachable(UserInputError, ConnectionError):
    """The Ray cluster a `--ray.address` names does not answer."""


@dataclass
class RaySettings:
    """Attributes:
    num_workers: Ray workers to spread the work over (0 or 1: run in this process, unless
        an address is given).
    address: an existing cluster ("HOST:PORT" or "auto"); empty starts a local one. Never
        ignored: with an address the work runs on that cluster (one worker at least), or
        the command stops with the reason it cannot reach it.
    gpus_per_worker: GPUs each worker asks Ray for (rollout actors imagining in the world
        model, episode runners, Ray Train workers); 0 on CPU machines, the same code path.
    max_failures: restarts of a Ray Train run whose worker or node failed; each restart
        resumes from the last checkpoint in --output_dir (-1: without limit). The same
        bound holds for a placed learner (`learner_gpus`) whose node is lost.
    learner_gpus: GPUs RL's learner asks Ray for (`embodied finetune`): above 0 the learner
        (updates, MuJoCo checks, refreshes) runs as a Ray task placed on a node that has
        them, and computes there on cuda; 0: in this process, on CPU.
    """

    num_workers: int = 0
    address: str = ""
    gpus_per_worker: float = 0.0
    max_failures: int = 3
    learner_gpus: float = 0.0

    @property
    def on_cluster(self) -> bool:
        """The work goes to Ray: several workers, or a cluster named by its address."""
        return self.num_workers > 1 or bool(self.address)

    @property
    def workers(self) -> int:
        """How many Ray workers (actors, or Ray Train workers) the work gets."""
        return max(1, self.num_workers)


def connect(address: str = "", num_cpus: int | None = None) -> None:
    """Attach to the cluster at `address`, or start a local one; clear error if unreachable."""
    import ray

    if ray.is_initialized():
        return
    if address and address != "auto":
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=True)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ClusterUnreachable(f"cannot reach the Ray cluster at {address!r}: {err}") from None


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Ray retries an unreachable address for minutes; a TCP probe says so in seconds."""
    import socket

    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as err:
        raise ClusterUnreachable(f"cannot reach the Ray cluster at {address!r}: {err}") from None


# what every actor's process needs: MuJoCo renders headless through EGL, and one math
# thread per actor (each has one CPU; more threads only fight over it)
ACTOR_ENV = {"MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}


Paths = dict[str, str] | None  # flag -> path, as the user gave them


def require_shared(reads: Paths = None, writes: Paths = None) -> None:
    """On a cluster of several nodes, every node must read the paths its workers are handed:
    `reads` (flag -> a checkpoint or dataset that must exist there) and `writes` (flag -> a
    folder the driver and the workers write for each other, checked with a file written
    here). A path one node cannot see is a one-line error naming the nodes, before any work:
    otherwise the run fails, or silently writes each node's part to its own disk."""
    import uuid

    import ray

    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) <= 1:
        return
    probes = {flag: Path(path).resolve() for flag, path in (reads or {}).items() if path}
    marks = []
    for flag, folder in (writes or {}).items():
        Path(folder).mkdir(parents=True, exist_ok=True)
        marks.append(Path(folder).resolve() / f".shared-check-{uuid.uuid4().hex}")
        marks[-1].touch()
        probes[flag] = marks[-1]
    try:
        for flag, path in probes.items():
            seen = _seen_by(nodes, path)
            blind = [n["NodeManagerAddress"] for n, ok in zip(nodes, seen, strict=True) if not ok]
            if blind:
                raise UserInputError(
                    f"{flag} {path.parent if path in marks else path} is not on storage every "
                    f"Ray node reads: node(s) {blind} cannot see it; put it on a shared "
                    "filesystem (NFS, a mounted bucket)"
                )
    finally:
        for mark in marks:
            mark.unlink(missing_ok=True)


def _seen_by(nodes: list[dict], path: Path) -> list[bool]:
    """Whether `path` exists, asked on each node."""
    import os

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    exists = ray.remote(num_cpus=0)(os.path.exists)
    return ray.get([
        exists.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
        .remote(str(path))
        for n in nodes
    ])  # fmt: skip


def require_gpus(asked: float, what: str) -> None:
    """A one-line error when the cluster has fewer GPUs than `asked` (Ray would otherwise
    wait for them for ever, with no word why)."""
    import ray

    have = ray.cluster_resources().get("GPU", 0.0)
    if asked > have:
        raise UserInputError(f"{what} ask(s) Ray for {asked:g} GPU(s); the cluster has {have:g} "
                             "(set them to 0 on CPU nodes)")  # fmt: skip


def placed_device() -> str:
    """Where this Ray worker computes: cuda when Ray gave it a GPU and torch sees one; else
    cpu (said on stderr when a GPU was given that torch cannot see)."""
    import sys

    import ray
    import torch

    if not (ray.is_initialized() and ray.get_gpu_ids()):
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    print(f"Ray gave this worker GPU(s) {ray.get_gpu_ids()}, but torch sees no CUDA device: "
          "computing on CPU", file=sys.stderr)  # fmt: skip
    return "cpu"


def run_placed(fn: Callable, *args, gpus: float, retries: int) -> Any:
    """`fn(*args)` as a Ray task asking for `gpus` GPUs (and no CPU slot, so it never waits
    for the workers it starts), retried on a lost node up to `retries` times (-1: always);
    its result, or the error it raised (a user's error stays one line)."""
    import ray
    from ray.exceptions import RayTaskError

    task = ray.remote(num_cpus=0, num_gpus=gpus, max_retries=retries)(fn).options(
        runtime_env={"env_vars": {"MUJOCO_GL": ACTOR_ENV["MUJOCO_GL"]}}
    )
    try:
        return ray.get(task.remote(*args))
    except RayTaskError as err:
        if isinstance(err.cause, UserInputError):
            raise err.cause from None
        raise


def actors(cls: type, settings: RaySettings, *args, restarts: int = -1,
           reads: Paths = None, writes: Paths = None) -> list:  # fmt: skip
    """`settings.num_workers` long-lived actors `cls(*args)`, one CPU each, on the cluster at
    `settings.address` (a local one when empty), spread over its nodes. The one actor pool of
    the runtime: an actor that dies (killed, or its node lost) is restarted, on another node
    if need be, and its task retried, up to `restarts` times (-1: always). `reads` and
    `writes` are the paths the actors share with the driver (`require_shared`)."""
    import ray

    connect(settings.address, num_cpus=settings.workers)
    require_shared(reads, writes)
    require_gpus(settings.gpus_per_worker * settings.workers, "--ray.gpus_per_worker")
    remote = ray.remote(num_cpus=1, num_gpus=settings.gpus_per_worker)(cls).options(
        max_restarts=restarts, max_task_retries=restarts, scheduling_strategy="SPREAD",
        runtime_env={"env_vars": ACTOR_ENV},
    )  # fmt: skip
    return [remote.remote(*args) for _ in range(settings.workers)]


def actor_table(class_name: str) -> dict[str, dict]:
    """Actor id -> {"node", "pid", "state", "restarts"} of every actor of `class_name` the
    cluster has known, dead ones included: where the work ran, for tests and benchmarks.
    Read from the cluster's control store, so it needs no dashboard (Ray's state API does)."""
    from ray._private.state import actors as table

    return {
        actor_id: {"node": a["Address"]["NodeID"], "pid": a["Pid"], "state": a["State"],
                   "restarts": a["NumRestarts"]}
        for actor_id, a in table().items()
        if a["ActorClassName"] == class_name
    }  # fmt: skip
