"""Checks between a policy's actions and a real arm: what reaches the motors.

`ActionGuard` is built once per robot and refuses to start when the policy's actions do not
fit the robot (dimension, or the names of each dimension when the checkpoint records them).
Then each action is:
- held back (None, with the reason logged and kept in `reason`) when it holds NaN or inf;
- clipped to the action range of the checkpoint's training data;
- limited in its change per tick (`max_delta`, LeRobot's `max_relative_target` idea), against
  the last action sent or the arm's present position when given.

`ChunkedRemotePolicy` runs a server's chunks through the guard: a chunk every
`n_action_steps` ticks, and when the server refuses, misses its deadline or sends a bad
action, the arm holds (nothing is sent) until the next tick asks again.
"""

import logging
from collections import deque

import numpy as np

from embodied.deploy.spec import PolicySpec

log = logging.getLogger("embodied.safety")


class SafetyError(ValueError):
    """The policy's actions cannot drive this robot; raised before the first action."""


class ActionGuard:
    """Args:
    spec: the served policy's spec (action size, names and range).
    robot_action_names: the robot's `action_features` keys, in order.
    max_delta: largest change of any action dimension per tick (a number, or one per
        dimension); None for no limit.
    """

    def __init__(self, spec: PolicySpec, robot_action_names: list[str], max_delta=None):
        names = list(robot_action_names)
        if spec.action_dim != len(names):
            raise SafetyError(
                f"the policy gives {spec.action_dim} action values; the robot takes "
                f"{len(names)} ({names})"
            )
        if spec.action_names and list(spec.action_names) != names:
            raise SafetyError(
                f"the policy's actions mean {spec.action_names}; the robot's are {names}"
            )
        self.names = names
        self.low, self.high = spec.bounds
        self.max_delta = None if max_delta is None else np.broadcast_to(
            np.asarray(max_delta, float), self.low.shape
        )  # fmt: skip
        self.last: np.ndarray | None = None
        self.reason = ""

    def __call__(self, action: np.ndarray, present: np.ndarray | None = None):
        """The action to send (float, clipped and rate-limited), or None to hold."""
        action = np.asarray(action, dtype=float)
        if action.shape != self.low.shape or not np.isfinite(action).all():
            return self.hold(f"action {action.tolist()} is not {len(self.low)} finite values")
        safe = np.clip(action, self.low, self.high)
        reference = self.last if present is None else np.asarray(present, dtype=float)
        if self.max_delta is not None and reference is not None:
            safe = np.clip(safe, reference - self.max_delta, reference + self.max_delta)
        self.last, self.reason = safe, ""
        return safe

    def hold(self, reason: str) -> None:
        self.reason = f"holding position: {reason}"
        log.warning(self.reason)
        return None

    def as_robot_action(self, action: np.ndarray) -> dict[str, float]:
        """LeRobot's action dict, `send_action`'s argument."""
        return {name: float(v) for name, v in zip(self.names, action, strict=True)}


class ChunkedRemotePolicy:
    """A policy server's chunks, one guarded action per tick.

    Args:
        client: a connected `PolicyClient`.
        guard: the robot's `ActionGuard`.
    """

    def __init__(self, client, guard: ActionGuard):
        self.client, self.guard = client, guard
        self._queue: deque[np.ndarray] = deque()

    def reset(self) -> None:
        self._queue.clear()
        self.guard.last = None

    def __call__(self, obs: dict, present: np.ndarray | None = None) -> np.ndarray | None:
        """The next action to send for `obs`, or None to hold (reason in `guard.reason`)."""
        from embodied.deploy.client import ServerError

        if not self._queue:
            try:
                chunk = self.client.infer(obs)
            except ServerError as err:
                return self.guard.hold(str(err))
            self._queue.extend(chunk[: self.client.spec.n_action_steps])
        action = self.guard(self._queue.popleft(), present)
        if action is None:
            self._queue.clear()  # the rest of a chunk with a bad action is not trusted
        return action
