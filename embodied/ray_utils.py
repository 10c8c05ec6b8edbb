"""The one place the runtime connects to Ray: a local cluster or an existing one by address."""

from dataclasses import dataclass

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
    """

    num_workers: int = 0
    address: str = ""

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


def actors(cls: type, settings: RaySettings, *args, restarts: int = -1) -> list:
    """`settings.num_workers` long-lived actors `cls(*args)`, one CPU each, on the cluster at
    `settings.address` (a local one when empty). The one actor pool of the runtime: a killed
    actor is restarted and its task retried, up to `restarts` times (-1: always)."""
    import ray

    connect(settings.address, num_cpus=settings.workers)
    remote = ray.remote(num_cpus=1)(cls).options(
        max_restarts=restarts, max_task_retries=restarts, runtime_env={"env_vars": ACTOR_ENV}
    )
    return [remote.remote(*args) for _ in range(settings.workers)]
